"""The container section keeps the last measured CUDA image size when a run does not rebuild it.

The scaling simulation reads that size from results.md (image pull time of a new GPU node), so a
run without ``--cuda`` must not drop it.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.container import CUDA_ROW, previous_cuda_row
from benchmarks.report import read_section, write_section


def test_a_measured_row_is_kept_with_its_date_and_marked_not_rebuilt() -> None:
    section = (
        "| figure | measured | target | |\n|---|---|---|---|\n"
        f"| {CUDA_ROW} | 5.10 GB (the `--cuda` run of 2026-11-25) | <= 6.0 GB | met |\n"
    )
    kept = previous_cuda_row(section)
    assert kept == (
        f"| {CUDA_ROW} | 5.10 GB (the `--cuda` run of 2026-11-25; not rebuilt in this run) "
        "| <= 6.0 GB | met |"
    )
    # Carried over again, it stays the same row.
    assert previous_cuda_row(kept) == kept


def test_no_earlier_row_means_none() -> None:
    assert previous_cuda_row(None) is None
    assert previous_cuda_row("| CPU image size | 0.94 GB | <= 1.0 GB | met |") is None


def test_sections_are_read_back_as_written(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    assert read_section("container", results) is None
    write_section("container", "## Container\n\nbody", results)
    write_section("other", "x", results)
    assert read_section("container", results) == "\n## Container\n\nbody\n"
    assert read_section("missing", results) is None


def test_the_committed_results_still_hold_the_cuda_size() -> None:
    assert previous_cuda_row(read_section("container")) is not None
