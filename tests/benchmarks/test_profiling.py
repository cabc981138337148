"""Parsing py-spy's raw output into per-thread innermost frames."""

from __future__ import annotations

import pytest

from benchmarks.profiling import ProfileError, parse_raw, summarize, summarize_gil

RAW = """\
thread (0x7F00): MainThread;<module> (service/__main__.py:9);Runner.run (runners.py:118) 150
thread (0x7F00): MainThread;<module> (service/__main__.py:9);uuid4 (/usr/lib/uuid.py:723) 50
thread (21488): inference-worker;Thread.run (threading.py:982);_work (batching.py:10);\
Condition.wait (threading.py:320) 120
thread (21488): inference-worker;Thread.run (threading.py:982);_execute (batching.py:20);\
forward (model_loader.py:99) 60
thread (21488): inference-worker;Thread.run (threading.py:982);_execute (batching.py:20);\
forward (model_loader.py:101) 20
"""


def test_parse_raw_groups_samples_by_thread_and_innermost_function() -> None:
    profile = parse_raw(RAW, seconds=1, rate_hz=200)
    assert set(profile.threads) == {"MainThread", "inference-worker"}
    main = profile.threads["MainThread"]
    assert main.samples == 200
    assert main.own["Runner.run (runners.py)"] == 150
    assert main.own["uuid4 (uuid.py)"] == 50
    worker = profile.threads["inference-worker"]
    # Two lines of one function are one entry.
    assert worker.own["forward (model_loader.py)"] == 80
    assert profile.expected_samples == 200


def test_summarize_gives_shares_of_each_threads_samples() -> None:
    text = summarize(parse_raw(RAW, seconds=1, rate_hz=200), ("MainThread", "missing"))
    assert "`Runner.run (runners.py)` 75%" in text
    assert "`uuid4 (uuid.py)` 25%" in text
    assert "thread `missing`: no samples" in text


def test_parse_raw_rejects_lines_without_a_count() -> None:
    with pytest.raises(ProfileError, match="not a py-spy raw line"):
        parse_raw("thread (1): MainThread;f (a.py:1)\n", seconds=1, rate_hz=100)


GIL_RAW = """\
thread (1): MainThread;<module> (service/__main__.py:9);send (httptools_impl.py:1) 120
thread (2): inference-worker;_execute (batching.py:20);forward (model_loader.py:99) 40
"""


def test_summarize_gil_gives_each_threads_share_of_the_wall_time() -> None:
    text = summarize_gil(parse_raw(GIL_RAW, seconds=1, rate_hz=200))
    assert "GIL held 80% of the wall time" in text
    assert "by `MainThread` 60%: `send (httptools_impl.py)` 60%" in text
    assert "by `inference-worker` 20%" in text
