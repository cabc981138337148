"""The figures of one benchmark cell, aggregated over its repeats.

A cell is one server configuration driven with one request body at one concurrency for a few
repeats. Single runs on this shared machine vary by up to ~15 %, so every figure is the median of
the repeats and throughput also carries its min-max range.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from benchmarks.cpu import CpuShares
from benchmarks.loadgen import LoadResult


@dataclass(frozen=True)
class CeilingFigures:
    """The bare forward pass of one model at one batch size (see ``benchmarks.ceiling``)."""

    batch: int
    rows_per_s: list[float]
    forward_ms: float

    @property
    def throughput(self) -> float:
        """Median rows per second over the repeats."""
        return statistics.median(self.rows_per_s)


@dataclass(frozen=True)
class ServerMetrics:
    """What the server's own /metrics said about a cell (ours only; LitServe has none)."""

    mean_batch: float
    #: Share of the cell's wall time the worker spent inside forward passes.
    model_busy: float
    #: Mean wall time of one batch in the server (conversions and GIL waits included), ms.
    batch_ms: float


@dataclass(frozen=True)
class Cell:
    """One measured cell and its repeats."""

    model: str
    server: str
    route: str
    concurrency: int
    max_batch_size: int
    runs: list[LoadResult]
    cpu: list[CpuShares] = field(default_factory=list)
    metrics: ServerMetrics | None = None

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError(f"cell {self.label} has no runs")

    @property
    def label(self) -> str:
        """Short name of the cell for messages."""
        return f"{self.model}/{self.server}/{self.route}/c{self.concurrency}"

    @property
    def throughput(self) -> float:
        """Median successful requests per second."""
        return statistics.median(run.throughput for run in self.runs)

    @property
    def throughput_range(self) -> tuple[float, float]:
        """Lowest and highest throughput of the repeats."""
        rates = [run.throughput for run in self.runs]
        return min(rates), max(rates)

    @property
    def spread(self) -> float:
        """Range of the repeats' throughput as a share of the median (0.1 = 10 %)."""
        low, high = self.throughput_range
        return (high - low) / self.throughput if self.throughput > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        """Median over the repeats of each repeat's median latency."""
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        """Median over the repeats of each repeat's 99th-percentile latency."""
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def errors(self) -> int:
        """Failed requests over all repeats."""
        return sum(run.errors for run in self.runs)

    @property
    def other_cores(self) -> float | None:
        """Mean cores used by processes outside the benchmark during the repeats."""
        return statistics.mean(share.other for share in self.cpu) if self.cpu else None

    @property
    def server_cores(self) -> float | None:
        """Mean cores used by the server's processes during the repeats."""
        return statistics.mean(share.server for share in self.cpu) if self.cpu else None

    @property
    def cpu_ms_per_request(self) -> float | None:
        """Server CPU time per successful request, in ms: robust to a busy machine."""
        cores = self.server_cores
        if cores is None or self.throughput <= 0:
            return None
        return cores / self.throughput * 1000

    @property
    def ceiling_batch(self) -> int:
        """The largest batch a closed loop of ``concurrency`` clients can form with this server."""
        return min(self.concurrency, self.max_batch_size)


def ceiling_ratio(cell: Cell, ceilings: dict[int, CeilingFigures]) -> float | None:
    """The cell's throughput as a share of the bare forward pass at the batch it could form."""
    ceiling = ceilings.get(cell.ceiling_batch)
    if ceiling is None or ceiling.throughput <= 0:
        return None
    return cell.throughput / ceiling.throughput
