"""CPU time accounting from /proc: what a process group, wrk and everyone else used during a cell.

The machine is shared, so every cell records how much CPU went to processes outside the
benchmark; a cell measured while others were busy says so in the table instead of passing for a
slow server.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PROC: Final = Path("/proc")


def _busy_and_total_seconds() -> tuple[float, float]:
    """Machine-wide busy and total CPU seconds since boot (all cores), from /proc/stat."""
    fields = [int(value) for value in (_PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user..steal; guest time is already inside user
    return (total - idle) / _CLOCK_TICKS, total / _CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid``."""
    seconds = 0.0
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        # The command name may hold spaces and parentheses; the fields after the last ')' do not.
        rest = stat[stat.rindex(")") + 2 :].split()
        if int(rest[2]) == pgid:  # field 5, pgrp
            seconds += (int(rest[11]) + int(rest[12])) / _CLOCK_TICKS  # utime, stime
    return seconds


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuShares:
    """Average cores used during a window by the server, by wrk and by everything else."""

    server: float
    loadgen: float
    other: float


class CpuMeter:
    """Measures the CPU use of a server's process group, of finished children and of the rest.

    ``loadgen`` counts the CPU of child processes that were waited for inside the window (wrk).
    """

    def __init__(self, server_pgid: int | None) -> None:
        self._pgid = server_pgid
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        busy, total = _busy_and_total_seconds()
        server = group_cpu_seconds(self._pgid) if self._pgid is not None else 0.0
        return busy, total, server, _children_cpu_seconds()

    def shares(self) -> CpuShares:
        """Cores used (0..cpu_count) on average since the meter was created."""
        busy, total, server, children = self._sample()
        busy0, total0, server0, children0 = self._start
        cores = os.cpu_count() or 1
        wall = (total - total0) / cores
        if wall <= 0:
            return CpuShares(0.0, 0.0, 0.0)
        server_cores = (server - server0) / wall
        loadgen_cores = (children - children0) / wall
        other = (busy - busy0) / wall - server_cores - loadgen_cores
        return CpuShares(server_cores, loadgen_cores, max(other, 0.0))
