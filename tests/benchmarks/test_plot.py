"""The throughput-latency plot: one line per server and model, read from the Servers table."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.plot import plot_results, series_from_results

HEADER = (
    "| model | server | route | max batch | c | req/s (median) | range | p50 ms | p99 ms |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|\n"
)


def results_with(rows: str) -> str:
    return (
        "# Benchmark results\n\n<!-- service:start -->\n### Servers\n\n"
        + HEADER
        + rows
        + "<!-- service:end -->\n\n<!-- other:start -->\n### Servers\n\n"
        + HEADER
        + "| digits | stale | predict | 32 | 1 | 1 | 1-1 | 1.0 | 1.0 |\n<!-- other:end -->\n"
    )


ROWS = (
    "| digits | ours | predict | 32 | 64 | 3,518 | 3,502-3,817 | 16.72 | 110.14 |\n"
    "| digits | ours | predict | 32 | 1 | 1,591 | 1,405-1,698 | 0.54 | 5.02 |\n"
    "| digits | ours | v2-json | 32 | 64 | 3,234 | 3,182-3,537 | 18.35 | 114.39 |\n"
    "| heavy | LitServe | predict | 32 | 1 | 124 | 122-126 | 8.01 | 12.65 |\n"
    "| heavy | LitServe | predict | 32 | 64 | 1,091 | 1,057-1,108 | 57.24 | 175.95 |\n"
)


def test_each_server_and_model_is_one_line_ordered_by_concurrency() -> None:
    series = {(s.model, s.server): s for s in series_from_results(results_with(ROWS))}
    # Only the service section is read (the stale table in another section is not), and only
    # the /predict rows: the v2 route is a codec comparison, not another server.
    assert sorted(series) == [("digits", "ours"), ("heavy", "LitServe")]
    ours = series[("digits", "ours")]
    assert ours.concurrency == (1, 64)
    assert ours.throughput == (1591.0, 3518.0)
    assert ours.p99_ms == (5.02, 110.14)


def test_the_plot_is_a_png_file(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    results.write_text(results_with(ROWS))
    out = tmp_path / "plot.png"
    drawn = plot_results(results, out)
    assert len(drawn) == 2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_results_file_without_predict_rows_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no 'predict' rows"):
        series_from_results(
            results_with(
                "| digits | ours | v2-json | 32 | 64 | 3,234 | 3,182-3,537 | 18.35 | 1.0 |\n"
            )
        )
