"""The service's measured load curve, read from ``benchmarks/results.md``.

The scaling target and the scaling simulation both need one pod's answer to "at concurrency c,
how many requests per second, and how slow?". That answer is the service benchmark's *Servers*
table (written by ``python -m benchmarks.run``), so it is parsed from there rather than
typed in again.

The table is read from the ``scaling-calibration`` section of results.md when there is one: a
copy of the Servers table of the run the simulation and ``RECOMMENDED`` were calibrated on, so a
new ``make bench`` (which rewrites the ``service`` section) does not move the deployed scaling
defaults by itself. Re-calibrating is a deliberate step: copy the new run's Servers table and its
"Measured by" line into that section, run ``make simulate`` and update ``RECOMMENDED`` with it.

Two rows of that table are used:

- **capacity and latency**: the compute-heavy model served by our server on ``/predict``
  (rows ``heavy | ours | predict``): its worker was busy 98 % of the time at concurrency 64, so
  the model, not the web stack, sets its limit, as on a GPU-bound pod;
- **CPU per request**: the digits model on the same route (rows ``digits | ours | predict``):
  its forward pass costs 0.04-0.23 ms of the ~1-1.4 ms of CPU per request, so its CPU per
  request is what the serving path (HTTP, JSON, batching) costs, which is what a GPU pod's CPU
  still pays once the forward pass runs on the GPU.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.report import section_of

RESULTS: Final = Path(__file__).resolve().parent / "results.md"
#: The rows the curve is read from (model, server, route as the Servers table spells them).
CAPACITY_ROWS: Final = ("heavy", "ours", "predict")
CPU_ROWS: Final = ("digits", "ours", "predict")

_SERVERS_HEADING: Final = "### Servers"
#: The results.md section holding the benchmark run the simulation is calibrated on.
CALIBRATION_SECTION: Final = "scaling-calibration"


def calibration_text(text: str) -> str:
    """The calibration section of a results file, or the whole text when it has none."""
    section = section_of(text, CALIBRATION_SECTION)
    return text if section is None else section


@dataclass(frozen=True)
class CurvePoint:
    """One measured cell: a closed-loop load at ``concurrency`` and what the pod did."""

    concurrency: float
    throughput_rps: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class ServiceCurve:
    """One pod's throughput and latency as functions of its in-flight requests.

    Between measured concurrencies the figures are interpolated linearly; below the first one
    throughput falls linearly to zero (Little's law with the latency of concurrency 1); above
    the last one throughput stays at its saturated value and latency grows in proportion to the
    concurrency (the extra requests queue behind a pod that cannot go faster).
    """

    points: tuple[CurvePoint, ...]
    #: (concurrency, CPU ms per answered request) of the serving path.
    cpu_ms_per_request: tuple[tuple[float, float], ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("a service curve needs at least two measured concurrencies")
        cs = [p.concurrency for p in self.points]
        if cs != sorted(cs) or len(set(cs)) != len(cs):
            raise ValueError(f"concurrencies {cs} must be strictly increasing")
        if not self.cpu_ms_per_request:
            raise ValueError("a service curve needs CPU-per-request figures")

    @property
    def max_throughput_rps(self) -> float:
        """Requests per second of one saturated pod (the highest measured concurrency)."""
        return self.points[-1].throughput_rps

    @property
    def max_concurrency(self) -> float:
        """The highest concurrency the benchmark measured."""
        return self.points[-1].concurrency

    def throughput(self, concurrency: float) -> float:
        """Requests per second one pod answers while holding ``concurrency`` requests."""
        xs = [0.0, *(p.concurrency for p in self.points)]
        ys = [0.0, *(p.throughput_rps for p in self.points)]
        return _interp(concurrency, xs, ys)

    def concurrency_for_rate(self, rate_rps: float) -> float:
        """In-flight requests per pod at which it answers ``rate_rps`` (inverse of throughput).

        Rates at or above saturation return the highest measured concurrency: beyond it the
        pod's queue grows, which the caller tracks as a backlog.
        """
        xs = [0.0, *(p.throughput_rps for p in self.points)]
        ys = [0.0, *(p.concurrency for p in self.points)]
        if any(b <= a for a, b in itertools.pairwise(xs)):
            # A measured dip in throughput: keep the rising envelope so the inverse exists.
            xs, ys = _rising(xs, ys)
        return _interp(min(rate_rps, xs[-1]), xs, ys)

    def latency_ms(self, concurrency: float) -> tuple[float, float]:
        """(p50, p99) latency in ms of one pod holding ``concurrency`` requests."""
        first, last = self.points[0], self.points[-1]
        if concurrency <= first.concurrency:
            return first.p50_ms, first.p99_ms
        if concurrency >= last.concurrency:
            scale = concurrency / last.concurrency
            return last.p50_ms * scale, last.p99_ms * scale
        xs = [p.concurrency for p in self.points]
        return (
            _interp(concurrency, xs, [p.p50_ms for p in self.points]),
            _interp(concurrency, xs, [p.p99_ms for p in self.points]),
        )

    def cpu_cores(self, rate_rps: float, concurrency: float) -> float:
        """CPU cores the serving path uses answering ``rate_rps`` at that concurrency."""
        xs = [c for c, _ in self.cpu_ms_per_request]
        ys = [ms for _, ms in self.cpu_ms_per_request]
        return rate_rps * _interp(concurrency, xs, ys) / 1000.0


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    """Piecewise-linear interpolation, clamped at both ends."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _rising(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    out_x, out_y = [xs[0]], [ys[0]]
    for x, y in zip(xs[1:], ys[1:], strict=True):
        if x > out_x[-1]:
            out_x.append(x)
            out_y.append(y)
    return out_x, out_y


def _number(cell: str) -> float:
    return float(cell.replace(",", "").strip())


def servers_rows(text: str) -> list[dict[str, str]]:
    """The rows of the *Servers* table of a results file, keyed by its header cells."""
    start = text.find(_SERVERS_HEADING)
    if start < 0:
        raise ValueError(f"no {_SERVERS_HEADING!r} table in the results file")
    lines = text[start:].splitlines()[1:]
    table = [ln for ln in _first_table(lines)]
    if len(table) < 3:
        raise ValueError(f"the {_SERVERS_HEADING!r} table has no rows")
    header = [c.strip() for c in table[0].strip().strip("|").split("|")]
    rows = []
    for line in table[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=False)))
    return rows


def _first_table(lines: list[str]) -> list[str]:
    table: list[str] = []
    for line in lines:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return table


def _select(rows: list[dict[str, str]], key: tuple[str, str, str]) -> list[dict[str, str]]:
    model, server, route = key
    chosen = [
        r
        for r in rows
        if r.get("model") == model and r.get("server") == server and r.get("route") == route
    ]
    if len(chosen) < 2:
        raise ValueError(
            f"the Servers table has {len(chosen)} row(s) for model={model!r} server={server!r} "
            f"route={route!r}; a curve needs at least two concurrencies (run `make bench`)"
        )
    return sorted(chosen, key=lambda r: _number(r["c"]))


def load_curve(results: Path = RESULTS) -> ServiceCurve:
    """The service curve from the benchmark's results file (see the module docstring)."""
    text = calibration_text(results.read_text())
    rows = servers_rows(text)
    capacity = _select(rows, CAPACITY_ROWS)
    cpu = _select(rows, CPU_ROWS)
    measured = re.search(r"Measured by `python -m benchmarks.run` on ([^:]+:\d\d UTC)", text)
    when = measured.group(1) if measured else "an undated run"
    return ServiceCurve(
        points=tuple(
            CurvePoint(
                concurrency=_number(r["c"]),
                throughput_rps=_number(r["req/s (median)"]),
                p50_ms=_number(r["p50 ms"]),
                p99_ms=_number(r["p99 ms"]),
            )
            for r in capacity
        ),
        cpu_ms_per_request=tuple((_number(r["c"]), _number(r["CPU ms/req"])) for r in cpu),
        source=(
            f"{results.name}, Servers table ({when}): {' | '.join(CAPACITY_ROWS)} rows for "
            f"capacity and latency, {' | '.join(CPU_ROWS)} rows for CPU per request"
        ),
    )
