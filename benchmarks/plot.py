"""The throughput-latency plot of the service benchmark, drawn from results.md's Servers table.

    python -m benchmarks.plot        # redraws benchmarks/throughput_latency.png from results.md

One panel per model. Each server is one line through its cells on ``/predict`` at concurrency 1,
8 and 64: throughput (median req/s) on x, p99 latency on y (log scale; the p50 is drawn as a
dotted line of the same colour). A point further right serves more; a point lower answers
faster; a line that bends up at the right has saturated. The figures are read from the *service*
section of results.md, so the plot always shows the run the tables show; ``benchmarks.run``
redraws it after every run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")  # files only, no display: must precede pyplot's import
import matplotlib.pyplot as plt

from benchmarks.report import section_of
from benchmarks.service_curve import servers_rows

RESULTS: Final = Path(__file__).resolve().parent / "results.md"
PLOT: Final = Path(__file__).resolve().parent / "throughput_latency.png"
ROUTE: Final = "predict"
_SECTION: Final = "service"


@dataclass(frozen=True)
class Series:
    """One server's cells on one model: points ordered by concurrency."""

    model: str
    server: str
    concurrency: tuple[int, ...]
    throughput: tuple[float, ...]
    p50_ms: tuple[float, ...]
    p99_ms: tuple[float, ...]


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def service_section(text: str) -> str:
    """The service benchmark's section of a results file (the whole text if it has none)."""
    section = section_of(text, _SECTION)
    return text if section is None else section


def series_from_results(text: str) -> list[Series]:
    """Every (model, server) pair of the Servers table with its ``/predict`` cells."""
    grouped: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in servers_rows(service_section(text)):
        if row.get("route") == ROUTE:
            grouped.setdefault((row["model"], row["server"]), []).append(row)
    series = []
    for (model, server), rows in grouped.items():
        rows.sort(key=lambda r: int(r["c"]))
        series.append(
            Series(
                model,
                server,
                tuple(int(r["c"]) for r in rows),
                tuple(_number(r["req/s (median)"]) for r in rows),
                tuple(_number(r["p50 ms"]) for r in rows),
                tuple(_number(r["p99 ms"]) for r in rows),
            )
        )
    if not series:
        raise ValueError(f"the Servers table has no {ROUTE!r} rows to plot (run `make bench`)")
    return series


def draw(series: Sequence[Series], out: Path, title: str = "") -> None:
    """Write the plot of ``series`` to ``out`` as a PNG."""
    models = sorted({s.model for s in series})
    servers = sorted({s.server for s in series})
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(servers)}
    figure, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 5), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        for line in (s for s in series if s.model == model):
            colour = colours[line.server]
            axis.plot(line.throughput, line.p99_ms, "o-", color=colour, label=line.server)
            axis.plot(line.throughput, line.p50_ms, ":", color=colour, alpha=0.7)
            for x, y, c in zip(line.throughput, line.p99_ms, line.concurrency, strict=True):
                axis.annotate(
                    f"c={c}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
        axis.set_yscale("log")
        axis.set_xlabel("throughput, req/s (median of repeats)")
        axis.set_ylabel("latency ms: p99 (solid), p50 (dotted)")
        axis.set_title(f"{model} model, /{ROUTE}, one row per request")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="best", framealpha=0.6)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(out, format="png", dpi=100)
    plt.close(figure)


def plot_results(results: Path = RESULTS, out: Path = PLOT) -> list[Series]:
    """Redraw ``out`` from the Servers table in ``results``; returns what was drawn."""
    series = series_from_results(results.read_text())
    draw(series, out, "wrk closed loop at concurrency 1, 8, 64; see benchmarks/results.md")
    return series


def main(argv: Sequence[str] | None = None) -> int:
    """Redraw the plot from results.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=PLOT)
    args = parser.parse_args(argv)
    drawn = plot_results(args.results, args.out)
    print(f"wrote {args.out} ({len(drawn)} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
