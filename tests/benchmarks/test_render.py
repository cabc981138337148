"""The results section: method, targets, ceiling, servers and profiles, written into a file."""

from __future__ import annotations

from pathlib import Path

from benchmarks import profiling, tables
from benchmarks.cpu import CpuShares
from benchmarks.loadgen import LoadResult
from benchmarks.report import write_section
from benchmarks.run import Plan, ProfileNote, render
from benchmarks.stats import CeilingFigures, Cell, ServerMetrics

RUN = LoadResult(
    seconds=5.0, requests=5000, failed=0, socket_errors=0, p50_ms=2, p90_ms=3, p99_ms=9, mean_ms=2
)


def test_render_writes_every_part_of_the_section(tmp_path: Path) -> None:
    cells = [
        Cell(
            "heavy",
            tables.OURS,
            "predict",
            64,
            32,
            [RUN],
            [CpuShares(1.2, 0.1, 0.4)],
            ServerMetrics(30.0, 0.9, 31.0),
        )
    ]
    ceilings = {"heavy": {32: CeilingFigures(32, [1200.0], 26.0)}}
    raw = "thread (1): MainThread;run (runners.py:1) 10\n"
    profile = profiling.parse_raw(raw, seconds=1, rate_hz=10)
    note = ProfileNote("heavy", 64, profile, profile, RUN)
    crowded = {"heavy": CeilingFigures(32, [900.0], 35.0)}
    markdown = render(Plan.quick(), 1, 32, 5.0, ceilings, crowded, cells, [note])
    for heading in ("### Targets", "### Ceiling", "### Servers", "### Where our server"):
        assert heading in markdown
    assert "0.83 x" in markdown  # 1000 req/s against a 1200 rows/s ceiling
    assert "used 0.40 to 0.40 cores" in markdown
    assert "| heavy | 32, other core running a Python loop | 35.00 | 900 |" in markdown
    assert "26.0 ms alone and 35.0 ms while a Python loop kept the other core busy" in markdown
    results = tmp_path / "results.md"
    write_section("service", markdown, results)
    assert "<!-- service:start -->" in results.read_text()
