"""The wrk wrapper: its command line and the parsing of the summary line of wrk_post.lua."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.loadgen import WRK_CORE, Body, LoadgenError, parse_wrk_output, wrk_command

WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:8080/predict
  1 threads and 8 connections
Requests/sec:   1000.00
WRK_JSON {"duration_us": 2000000, "requests": 2000, "bytes": 448440, \
"errors": {"connect": 1, "read": 2, "write": 0, "status": 100, "timeout": 3}, \
"latency_us": {"min": 192, "mean": 2795.6, "p50": 1496, "p90": 7077, "p99": 10293, "max": 13518}}
"""


def test_parse_wrk_output_reads_the_summary_line() -> None:
    result = parse_wrk_output(WRK_OUTPUT)
    assert result.seconds == 2.0
    assert result.requests == 2000
    assert result.failed == 100
    assert result.socket_errors == 6
    assert result.errors == 106
    assert result.p50_ms == pytest.approx(1.496)
    assert result.p99_ms == pytest.approx(10.293)
    # Non-2xx answers are not throughput.
    assert result.throughput == pytest.approx(950.0)


def test_parse_wrk_output_without_summary_fails_with_the_output() -> None:
    with pytest.raises(LoadgenError, match=r"(?s)no WRK_JSON line.*connection refused"):
        parse_wrk_output("unable to connect: connection refused\n")


@pytest.mark.usefixtures("wrk")
def test_wrk_command_pins_one_thread_to_the_load_core(tmp_path: Path) -> None:
    body = Body(tmp_path / "b.body", "application/octet-stream", 123)
    command = wrk_command("http://127.0.0.1:1/x", body, 64, 5)
    assert command[:3] == ["taskset", "-c", str(WRK_CORE)]
    assert "-t1" in command
    assert "-c64" in command
    assert "-d5s" in command
    assert command[-4:] == ["--", str(body.path), "application/octet-stream", "123"]


@pytest.mark.parametrize(("concurrency", "seconds"), [(0, 5), (8, 0.5)])
def test_wrk_command_rejects_bad_arguments(concurrency: int, seconds: float) -> None:
    with pytest.raises(ValueError, match=r"concurrency|seconds"):
        wrk_command(
            "http://127.0.0.1:1/x", Body(Path("b"), "application/json"), concurrency, seconds
        )
