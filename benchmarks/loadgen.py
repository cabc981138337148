"""The load generator: ``wrk`` pinned to one core, driven by ``wrk_post.lua``, parsed into numbers.

wrk is a C, epoll-based closed-loop generator: each of its ``concurrency`` connections sends the
next request as soon as the previous answer arrives. On this 2-core machine a Python client would
eat as much CPU as the server it measures; one wrk thread stays near 10 % of one core, and
``taskset -c 1`` keeps it on one core so the comparison between servers is the same for all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

LUA_SCRIPT: Final = Path(__file__).resolve().parent / "wrk_post.lua"
#: The core wrk is pinned to (the server may use both).
WRK_CORE: Final = 1
#: A request slower than this counts as a wrk timeout error instead of a latency sample.
WRK_TIMEOUT_S: Final = 10
_MARKER: Final = "WRK_JSON "


class LoadgenError(RuntimeError):
    """wrk could not run, or its output did not carry the summary line of ``wrk_post.lua``."""


@dataclass(frozen=True)
class Body:
    """One request body and the headers that describe it."""

    path: Path
    content_type: str
    #: Length of the JSON header for the v2 binary tensor extension, None for plain JSON.
    inference_header_length: int | None = None


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    seconds: float
    #: Responses received, failed ones included.
    requests: int
    #: Responses with a status other than 2xx/3xx.
    failed: int
    #: Connect, read and write errors and requests that timed out (no response at all).
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def throughput(self) -> float:
        """Successful responses per second."""
        return max(self.requests - self.failed, 0) / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        """Every request that did not succeed, whatever the reason."""
        return self.failed + self.socket_errors


def wrk_command(url: str, body: Body, concurrency: int, seconds: float) -> list[str]:
    """The pinned wrk command line of one run (1 thread, ``concurrency`` connections)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if seconds < 1:
        raise ValueError(f"wrk runs for whole seconds >= 1, got {seconds}")
    wrk = shutil.which("wrk")
    if wrk is None:
        raise LoadgenError("wrk is not installed (apt-get install wrk)")
    args = [str(body.path), body.content_type]
    if body.inference_header_length is not None:
        args.append(str(body.inference_header_length))
    return [
        "taskset",
        "-c",
        str(WRK_CORE),
        wrk,
        "-t1",
        f"-c{concurrency}",
        f"-d{round(seconds)}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        *args,
    ]


def parse_wrk_output(text: str) -> LoadResult:
    """The ``LoadResult`` in wrk's output; ``LoadgenError`` when the summary line is missing."""
    for line in text.splitlines():
        if line.startswith(_MARKER):
            data = json.loads(line.removeprefix(_MARKER))
            errors = data["errors"]
            latency = data["latency_us"]
            return LoadResult(
                seconds=data["duration_us"] / 1e6,
                requests=int(data["requests"]),
                failed=int(errors["status"]),
                socket_errors=sum(
                    int(errors[key]) for key in ("connect", "read", "write", "timeout")
                ),
                p50_ms=latency["p50"] / 1000,
                p90_ms=latency["p90"] / 1000,
                p99_ms=latency["p99"] / 1000,
                mean_ms=latency["mean"] / 1000,
            )
    raise LoadgenError(f"no {_MARKER.strip()} line in wrk output:\n{text[-2000:]}")


def run_wrk(url: str, body: Body, concurrency: int, seconds: float) -> LoadResult:
    """Drive ``url`` with ``body`` for ``seconds`` at ``concurrency`` and return the figures."""
    command = wrk_command(url, body, concurrency, seconds)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + WRK_TIMEOUT_S + 30, check=False
    )
    if done.returncode != 0:
        raise LoadgenError(f"wrk exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    return parse_wrk_output(done.stdout)
