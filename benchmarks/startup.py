"""Start-up benchmark: process spawn -> ready for the bundled model, and where the time goes.

    python -m benchmarks.startup                      # 5 runs; writes the "startup" section
    python -m benchmarks.startup --baseline DIR       # also time the service package in DIR

Each run spawns ``python -m service`` on the packaged digits model and polls the start-up path
every 10 ms (the startupProbe's path; readiness answers at the same moment). Figures per run:
wall time to the first 200, the CPU seconds the process had used by then (less disturbed by
other work on a shared machine than wall time), and from the server's own log lines the moment
the web stack was imported and the moment the model was ready, both counted from the kernel's
start time of the process. ``--baseline`` runs an older copy of ``service/`` (e.g. extracted
with ``git archive``) alternately with this one, so both see the same machine.

Both copies of ``service/`` are byte-compiled first, as the image is: with
``PYTHONDONTWRITEBYTECODE`` set (as here) every start would otherwise compile them again.
After each pair of starts, ``benchmarks.startup_phases`` times the phases of start-up one by one
in a fresh process (this branch only); their medians make the breakdown table.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.report import write_section
from benchmarks.servers import HOST, free_port
from benchmarks.startup_phases import PHASES
from service import contract

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
POLL_S: Final = 0.01
_TICKS: Final = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class StartupRun:
    """One spawn -> ready."""

    label: str
    wall_s: float
    cpu_s: float
    web_imported_s: float | None
    model_ready_s: float | None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _log_field(log: Path, message_part: str, field: str) -> float | None:
    for raw in log.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if message_part in str(line.get("msg", "")) and line.get(field) is not None:
            return float(line[field])
    return None


def one_start(label: str, model_dir: Path, source_root: Path, log: Path) -> StartupRun:
    """Spawn the server from ``source_root``, wait for ready, stop it."""
    port = free_port()
    env = {
        **os.environ,
        contract.ENV.MODEL_URI: str(model_dir),
        contract.ENV.PORT: str(port),
        "PYTHONPATH": str(source_root),
    }
    url = f"http://{HOST}:{port}{contract.PATHS.READY}"
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "--host", HOST],
            cwd=source_root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{label}: the server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        wall = time.perf_counter() - started
                        cpu = _cpu_seconds(process.pid)
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(POLL_S)
    finally:
        process.terminate()
        process.wait(30)
    return StartupRun(
        label,
        wall,
        cpu,
        _log_field(log, "web stack imported", "since_process_start_s"),
        _log_field(log, "ready on", "since_process_start_s"),
    )


def byte_compile(source_root: Path) -> None:
    """Write the ``.pyc`` files of ``source_root/service`` (the image ships them too)."""
    if not compileall.compile_dir(source_root / "service", quiet=1):
        raise RuntimeError(f"{source_root / 'service'}: byte-compiling failed")


def measure_phases(model_dir: Path, source_root: Path) -> dict[str, tuple[float, float]]:
    """One run of ``benchmarks.startup_phases`` from ``source_root``: (wall, CPU) s per phase."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.startup_phases", str(model_dir)],
        cwd=source_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"startup_phases failed: {done.stderr[-2000:]}")
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: (float(wall), float(cpu)) for name, (wall, cpu) in raw.items()}


def _median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f}" if known else "-"


def span(values: Sequence[float | None]) -> str:
    """``median (lowest-highest)`` of the known values, in seconds; ``-`` if none is known."""
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    return f"{statistics.median(known):.2f} ({min(known):.2f}-{max(known):.2f})"


def render_phases(
    phases: list[dict[str, tuple[float, float]]], ready: list[StartupRun]
) -> list[str]:
    """The breakdown table: each phase's median wall and CPU time, then what the sum leaves."""
    lines = [
        "",
        f"Where the time goes (this branch): each phase alone, one after the other in a fresh "
        f"process (`python -m benchmarks.startup_phases`), median (range) of {len(phases)} runs.",
        "",
        "| phase | what | wall s | CPU s |",
        "|---|---|---|---|",
    ]
    for name, what in PHASES:
        walls = [run[name][0] for run in phases]
        cpus = [run[name][1] for run in phases]
        lines.append(f"| {name} | {what} | {span(walls)} | {span(cpus)} |")
    total = [sum(wall for wall, _ in run.values()) for run in phases]
    lines.append(f"| sum | | {span(total)} | |")
    spawn = statistics.median(run.wall_s for run in ready)
    lines.append(
        f"| server spawn -> ready | the phases, plus uvicorn's start, the preload and "
        f"model-loader threads, the probe | {span([run.wall_s for run in ready])} | |"
    )
    lines.append(
        f"| left after the phases | server start, threads, GIL handoffs, the "
        f"{POLL_S * 1000:.0f} ms poll | {spawn - statistics.median(total):.2f} | |"
    )
    return lines


def render(
    runs: list[StartupRun],
    load: tuple[float, float, float],
    phases: list[dict[str, tuple[float, float]]] | None = None,
) -> str:
    """The results section."""
    labels = list(dict.fromkeys(run.label for run in runs))
    lines = [
        "## Start-up: spawn -> ready, bundled digits model, native",
        "",
        f"Measured by `python -m benchmarks.startup` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on 2 shared cores. Median (range) of "
        f"{len(runs) // len(labels)} alternating runs; readiness polled every "
        f"{POLL_S * 1000:.0f} ms.",
        "",
        "| server | spawn -> ready s | CPU s used by then | web stack imported at s "
        "| model ready at s |",
        "|---|---|---|---|---|",
    ]
    for label in labels:
        mine = [run for run in runs if run.label == label]
        lines.append(
            f"| {label} | {span([r.wall_s for r in mine])} | {span([r.cpu_s for r in mine])} "
            f"| {_median([r.web_imported_s for r in mine])} "
            f"| {_median([r.model_ready_s for r in mine])} |"
        )
    if phases:
        lines += render_phases(phases, [run for run in runs if run.label == labels[-1]])
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="a directory holding an older service/")
    parser.add_argument("--model-dir", type=Path, help="a packaged model (default: package one)")
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        work = Path(tmp)
        model_dir = None if args.model_dir is None else args.model_dir.resolve()
        if model_dir is None:
            from model.package import package_model

            model_dir = work / "model"
            package_model(model_dir)
        sources = [("this branch", REPO_ROOT)]
        if args.baseline is not None:
            sources.insert(0, ("baseline", args.baseline.resolve()))
        for _, root in sources:
            byte_compile(root)
        runs: list[StartupRun] = []
        phases = []
        for n in range(args.runs):
            for label, root in sources:
                log = work / f"{label.replace(' ', '-')}-{n}.log"
                runs.append(one_start(label, model_dir, root, log))
            phases.append(measure_phases(model_dir, REPO_ROOT))
    section = render(runs, os.getloadavg(), phases)
    print(section)
    if not args.no_write:
        write_section("startup", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
