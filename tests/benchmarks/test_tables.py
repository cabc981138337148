"""Aggregation of cells over repeats, ratios to the ceiling, the targets and the tables."""

from __future__ import annotations

import pytest

from benchmarks import tables
from benchmarks.cpu import CpuShares
from benchmarks.loadgen import LoadResult
from benchmarks.stats import CeilingFigures, Cell, ServerMetrics, ceiling_ratio


def _run(rate: float, p50: float = 1.0, p99: float = 5.0, failed: int = 0) -> LoadResult:
    return LoadResult(
        seconds=1.0,
        requests=round(rate) + failed,
        failed=failed,
        socket_errors=0,
        p50_ms=p50,
        p90_ms=p99,
        p99_ms=p99,
        mean_ms=p50,
    )


def _cell(server: str, concurrency: int, rates: list[float], p50: float = 1.0) -> Cell:
    return Cell(
        model="heavy",
        server=server,
        route="predict",
        concurrency=concurrency,
        max_batch_size=32,
        runs=[_run(rate, p50=p50) for rate in rates],
        cpu=[CpuShares(1.0, 0.1, 0.2)],
        metrics=ServerMetrics(mean_batch=30.0, model_busy=0.95, batch_ms=30.0),
    )


CEILINGS = {
    "heavy": {
        1: CeilingFigures(1, [100.0, 110.0, 90.0], forward_ms=2.0),
        8: CeilingFigures(8, [400.0], forward_ms=20.0),
        32: CeilingFigures(32, [1000.0, 1000.0], forward_ms=32.0),
    }
}


def test_cell_reports_medians_and_the_range_of_repeats() -> None:
    cell = _cell(tables.OURS, 64, [900.0, 1000.0, 800.0])
    assert cell.throughput == 900.0
    assert cell.throughput_range == (800.0, 1000.0)
    assert cell.spread == pytest.approx(200 / 900)
    assert cell.ceiling_batch == 32


def test_a_cell_needs_runs() -> None:
    with pytest.raises(ValueError, match="no runs"):
        Cell("m", "s", "predict", 1, 32, runs=[])


def test_ceiling_ratio_uses_the_largest_batch_the_concurrency_can_form() -> None:
    assert ceiling_ratio(_cell(tables.OURS, 8, [200.0]), CEILINGS["heavy"]) == 0.5
    assert ceiling_ratio(_cell(tables.OURS, 64, [900.0]), CEILINGS["heavy"]) == 0.9
    assert ceiling_ratio(_cell(tables.OURS, 64, [900.0]), {}) is None


def test_targets_are_checked_against_their_goals() -> None:
    cells = [
        _cell(tables.OURS, 64, [800.0]),  # 0.80 of the ceiling: missed
        _cell(tables.LITSERVE, 64, [500.0]),  # ours is 1.6 x: met
        _cell(tables.OURS, 1, [90.0], p50=2.4),  # forward 2.0 + 0.5 ms budget: met
    ]
    checks = {check.name: check for check in tables.check_targets(cells, CEILINGS, "heavy")}
    ceiling = checks["throughput at c=64 vs bare forward (batch 32)"]
    assert ceiling.met is False
    assert "batches of 30.0 rows" in ceiling.evidence
    assert "model busy 95%" in ceiling.evidence
    assert "Measured alongside each target" in tables.targets_table([ceiling])
    assert checks["throughput at c=64 vs LitServe"].met is True
    assert checks["p50 at c=1 vs batch-1 forward + 0.5 ms"].met is True
    slow = [_cell(tables.OURS, 1, [90.0], p50=2.6)]
    (latency,) = tables.check_targets(slow, CEILINGS, "heavy")
    assert latency.met is False
    assert "**missed**" in tables.targets_table([latency])


def test_tables_have_one_row_per_cell_and_ceiling() -> None:
    cells = [_cell(tables.OURS, 64, [900.0]), _cell(tables.LITSERVE, 64, [500.0])]
    cell_rows = tables.cell_table(cells, CEILINGS).splitlines()
    assert len(cell_rows) == 2 + len(cells)
    assert "| heavy | ours | predict | 32 | 64 | 900 |" in cell_rows[2]
    assert "0.90 (b32)" in cell_rows[2]
    ceiling_rows = tables.ceiling_table(CEILINGS, threads=1).splitlines()
    assert len(ceiling_rows) == 2 + 3
    assert "| heavy | 32 | 32.00 | 1,000 |" in ceiling_rows[-1]


def test_serving_cost_targets_compare_with_the_minimal_peer_the_floor_and_batching_off() -> None:
    def tail(server: str, concurrency: int, p99: float, rate: float = 100.0) -> Cell:
        return Cell(
            "heavy",
            server,
            "predict",
            concurrency,
            32,
            runs=[_run(rate, p99=p99)],
            cpu=[CpuShares(1.0, 0.1, 0.2)],
        )

    cells = [
        tail(tables.OURS, 64, 50.0, rate=900.0),
        _cell(tables.MINIMAL_BATCHER, 64, [700.0]),  # 1.29 x: missed
        _cell(tables.FLOOR, 64, [1800.0]),  # the same CPU share at twice the rate: 2 x, met
        tail(tables.OURS, 8, 10.0),
        tail(tables.OURS_UNBATCHED, 8, 12.0),  # 0.83 x: met
        tail(tables.OURS_UNBATCHED, 64, 40.0),  # 1.25 x: missed
    ]
    checks = {check.name: check for check in tables.check_targets(cells, CEILINGS, "heavy")}
    assert checks["throughput at c=64 vs minimal asyncio.Queue batcher"].met is False
    assert checks["server CPU per request at c=64 vs HTTP floor"].met is True
    assert checks["p99 with batching vs without at c=8"].met is True
    assert checks["p99 with batching vs without at c=64"].met is False
