"""How the overload benchmark picks the queue bound it recommends."""

from __future__ import annotations

from benchmarks.overload import (
    HONOR_LABEL,
    HONOR_RETRY_AFTER,
    RETRY_STORM,
    CellResult,
    tuning_lines,
)


def cell(label: str, p99_ms: float, accepted: int, mode: str = RETRY_STORM) -> CellResult:
    return CellResult(
        label, 256, 1.0, accepted, 0, 0, 0, 5.0, p99_ms, 1.0, 2.0, 275.0, 276.0, 0.3, mode
    )


def test_the_bound_is_chosen_among_cells_whose_clients_wait_their_retry_after() -> None:
    lines = tuning_lines(
        [
            cell("saturation", 20.0, 1000),
            cell("4x, bounded (default)" + HONOR_LABEL, 30.0, 900, HONOR_RETRY_AFTER),
            cell("4x, unbounded", 21.0, 5000),  # never a candidate
            # Within 2x and the most accepted, but a retry storm: not what the bound is for.
            cell("4x, MAX_QUEUED_ROWS=128", 39.0, 4000),
            cell("4x, MAX_QUEUED_ROWS=96" + HONOR_LABEL, 35.0, 950, HONOR_RETRY_AFTER),
            cell("4x, MAX_QUEUED_ROWS=128" + HONOR_LABEL, 45.0, 990, HONOR_RETRY_AFTER),
        ]
    )
    assert lines[-1].startswith("- Of the bounds tried with clients that wait")
    assert "`MAX_QUEUED_ROWS=96` kept the accepted p99 within 2x" in lines[-1]
    assert not any("unbounded" in line for line in lines)


def test_no_bound_is_recommended_when_none_keeps_the_p99_within_2x() -> None:
    lines = tuning_lines(
        [
            cell("saturation", 20.0, 1000),
            cell("4x, bounded (default)" + HONOR_LABEL, 41.0, 900, HONOR_RETRY_AFTER),
        ]
    )
    assert lines[-1] == "- None of the bounds tried kept the accepted p99 within 2x."
