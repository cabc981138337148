"""The service curve read from results.md: the rows it takes and the shape it interpolates."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.service_curve import (
    RESULTS,
    CurvePoint,
    ServiceCurve,
    calibration_text,
    load_curve,
    servers_rows,
)


def test_reads_the_heavy_model_rows_of_the_committed_results() -> None:
    curve = load_curve()
    # The three `heavy | ours | predict` rows of the Servers table in the scaling-calibration
    # section of benchmarks/results.md (not the service section that `make bench` rewrites).
    text = calibration_text(RESULTS.read_text())
    assert "scaling-calibration:start" in text
    rows = [r for r in servers_rows(text) if r["model"] == "heavy"]
    ours = [r for r in rows if r["server"] == "ours" and r["route"] == "predict"]
    assert [p.concurrency for p in curve.points] == [float(r["c"]) for r in ours]
    assert curve.points[-1].throughput_rps == float(ours[-1]["req/s (median)"].replace(",", ""))
    assert curve.points[-1].p99_ms == float(ours[-1]["p99 ms"])
    assert "heavy | ours | predict" in curve.source


def test_a_results_file_without_the_rows_is_refused_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "results.md"
    missing.write_text("# Benchmark results\n\nnothing measured yet\n")
    with pytest.raises(ValueError, match="Servers"):
        load_curve(missing)
    text = RESULTS.read_text().replace("| heavy | ours | predict |", "| heavy | other | predict |")
    partial = tmp_path / "partial.md"
    partial.write_text(text)
    with pytest.raises(ValueError, match=r"model='heavy'.*make bench"):
        load_curve(partial)


CURVE = ServiceCurve(
    points=(CurvePoint(1, 300, 3, 5), CurvePoint(8, 560, 14, 20), CurvePoint(64, 760, 70, 240)),
    cpu_ms_per_request=((1, 1.4), (64, 1.0)),
    source="test",
)


def test_throughput_rises_and_the_inverse_undoes_it() -> None:
    rates = [CURVE.throughput(c) for c in (0.5, 1, 4, 8, 30, 64, 100)]
    assert rates == sorted(rates)
    assert CURVE.throughput(100) == CURVE.max_throughput_rps
    for c in (0.5, 3.0, 8.0, 40.0):
        assert CURVE.concurrency_for_rate(CURVE.throughput(c)) == pytest.approx(c)


def test_latency_past_the_measured_concurrency_grows_with_the_queue() -> None:
    assert CURVE.latency_ms(128) == (140, 480)  # twice the requests, twice the wait
    assert CURVE.latency_ms(0.1) == (3, 5)


def test_a_curve_needs_increasing_concurrencies() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        ServiceCurve(
            points=(CurvePoint(8, 1, 1, 1), CurvePoint(1, 2, 2, 2)),
            cpu_ms_per_request=((1, 1),),
            source="x",
        )
