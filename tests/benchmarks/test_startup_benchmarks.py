"""The start-up benchmarks' own logic: the phase breakdown and reading the server's log."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.container_startup import ready_line
from benchmarks.startup import StartupRun, measure_phases, render_phases
from benchmarks.startup_phases import PHASES
from tests.conftest import REPO_ROOT
from tests.model_dirs import tiny_model_dir

__all__ = ["tiny_model_dir"]


def test_every_phase_of_start_up_is_timed_in_a_fresh_process(tiny_model_dir: Path) -> None:
    phases = measure_phases(tiny_model_dir, REPO_ROOT)
    assert list(phases) == [name for name, _ in PHASES]
    assert all(wall >= 0 and cpu >= 0 for wall, cpu in phases.values())
    # A fresh process: importing torch is real work there, not a lookup in sys.modules.
    assert phases["torch"][1] > 0.1


def test_the_breakdown_says_what_the_server_spends_beyond_the_phases() -> None:
    phases = [{name: (0.1, 0.1) for name, _ in PHASES} for _ in range(3)]
    ready = [StartupRun("this branch", wall, 1.0, None, None) for wall in (1.0, 1.2, 1.1)]
    table = "\n".join(render_phases(phases, ready))
    for name, _ in PHASES:
        assert f"| {name} |" in table
    assert "| sum | | 0.80 (0.80-0.80) | |" in table
    assert table.splitlines()[-1].endswith("| 0.30 | |")  # 1.10 median spawn -> ready - 0.80


def test_the_ready_line_gives_the_process_start_and_the_time_to_ready() -> None:
    ready = {
        "ts": "2026-12-01T21:00:02.500+00:00",
        "msg": "model digits ready on cpu after 0.05 s",
        "since_process_start_s": 1.5,
    }
    logs = "\n".join(
        [
            "not json",
            json.dumps({"ts": "2026-12-01T21:00:02.000+00:00", "msg": "web stack imported"}),
            json.dumps(ready),
        ]
    )
    started, since = ready_line(logs) or (0.0, 0.0)
    assert since == 1.5
    assert started == 1_796_158_801.0  # 2026-12-01 21:00:02.5 UTC minus 1.5 s


def test_a_log_without_the_ready_line_gives_nothing() -> None:
    assert ready_line('{"msg": "web stack imported", "since_process_start_s": 1.0}') is None
