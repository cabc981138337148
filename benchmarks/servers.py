"""Start and stop the servers under test: ours (``python -m service``) and the LitServe peer.

Each server runs in a session of its own, so stopping it also ends every process it forked
(LitServe runs its inference worker and its HTTP server as separate processes), and its CPU time
can be read per process group. Output goes to a log file, never to a pipe that could fill up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.http_floor import HEALTH_PATH as FLOOR_HEALTH
from service.contract import ENV, PATHS

HOST: Final = "127.0.0.1"
#: How long a server may take to load and warm its model before the benchmark gives up.
START_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 30.0
#: LitServe's readiness route (200 once its inference workers are up).
LITSERVE_HEALTH: Final = "/health"
#: The servers this module starts: ours, the LitServe peer, the two minimal FastAPI peers
#: (``benchmarks/minimal_peers.py``) and the model-less HTTP floor.
MINIMAL_BATCHER: Final = "minimal-batcher"
MINIMAL_UNBATCHED: Final = "minimal-unbatched"
KINDS: Final = ("ours", "litserve", MINIMAL_BATCHER, MINIMAL_UNBATCHED, "floor")


class ServerError(RuntimeError):
    """A server did not start, did not become ready, or died; the message holds its log tail."""


@dataclass(frozen=True)
class ServerConfig:
    """One server under test: which implementation, which model, which batching settings."""

    kind: str  # one of KINDS
    model_dir: Path
    model_name: str
    max_batch_size: int
    batch_timeout_ms: float
    torch_threads: int


@dataclass(frozen=True)
class RunningServer:
    """A started, ready server."""

    config: ServerConfig
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pgid(self) -> int:
        """Process group of the server and everything it forked."""
        return self.process.pid


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(config: ServerConfig, port: int) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start ``config`` on ``port``."""
    env = dict(os.environ)
    if config.kind == "ours":
        env.update(
            {
                ENV.PORT: str(port),
                ENV.MODEL_URI: str(config.model_dir),
                ENV.MODEL_NAME: config.model_name,
                ENV.DEVICE: "cpu",
                ENV.MAX_BATCH_SIZE: str(config.max_batch_size),
                ENV.BATCH_TIMEOUT_MS: str(config.batch_timeout_ms),
                ENV.TORCH_THREADS: str(config.torch_threads),
            }
        )
        return [sys.executable, "-m", "service", "--host", HOST], env
    if config.kind == "litserve":
        command = [
            sys.executable,
            "-m",
            "benchmarks.litserve_peer",
            "--model-dir",
            str(config.model_dir),
            "--port",
            str(port),
            "--max-batch-size",
            str(config.max_batch_size),
            "--batch-timeout-ms",
            str(config.batch_timeout_ms),
            "--torch-threads",
            str(config.torch_threads),
        ]
        return command, env
    if config.kind in (MINIMAL_BATCHER, MINIMAL_UNBATCHED):
        command = [
            sys.executable,
            "-m",
            "benchmarks.minimal_peers",
            "--model-dir",
            str(config.model_dir),
            "--port",
            str(port),
            "--batched" if config.kind == MINIMAL_BATCHER else "--unbatched",
            "--max-batch-size",
            str(config.max_batch_size),
            "--batch-timeout-ms",
            str(config.batch_timeout_ms),
            "--torch-threads",
            str(config.torch_threads),
        ]
        return command, env
    if config.kind == "floor":
        return [sys.executable, "-m", "benchmarks.http_floor", "--port", str(port)], env
    raise ValueError(f"unknown server kind {config.kind!r}; expected one of {', '.join(KINDS)}")


def ready_path(config: ServerConfig) -> str:
    """The route that answers 200 once the server can take inference requests."""
    if config.kind == "ours":
        return PATHS.READY
    return LITSERVE_HEALTH if config.kind == "litserve" else FLOOR_HEALTH


def _log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _wait_ready(server: RunningServer, timeout_s: float) -> None:
    url = server.base_url + ready_path(server.config)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(
                f"{server.config.kind} server exited with {server.process.returncode} before "
                f"it was ready; log {server.log_path}:\n{_log_tail(server.log_path)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise ServerError(
        f"{server.config.kind} server not ready at {url} after {timeout_s:.0f} s; "
        f"log {server.log_path}:\n{_log_tail(server.log_path)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            process.wait(timeout=STOP_TIMEOUT_S)
    # Forked helpers (LitServe's workers) may outlive their parent; end what is left of the group.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def running_server(
    config: ServerConfig, log_dir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[RunningServer]:
    """Start ``config``, wait until it is ready, yield it, and stop it with its whole group."""
    port = free_port()
    command, env = server_command(config, port)
    env.update(extra_env or {})
    label = f"{config.kind}-{config.model_name}-b{config.max_batch_size}"
    log_path = log_dir / f"{label}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RunningServer(config, process, f"http://{HOST}:{port}", log_path)
    try:
        _wait_ready(server, START_TIMEOUT_S)
        yield server
    finally:
        _stop(process)
