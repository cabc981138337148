"""Run the service as a child process on 127.0.0.1, for the demo, the tests and benchmarks.

:class:`LocalServer` starts ``python -m service`` on a free port, waits for readiness (failing
fast with the server's last log lines if it exits), and stops it the way Kubernetes does: SIGTERM,
then the exit code, with a kill only as the last resort so nothing is ever left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from service.contract import ENV, PATHS, SHUTDOWN

LOOPBACK = "127.0.0.1"
_REPO_ROOT = Path(__file__).resolve().parent.parent


class LocalServerError(RuntimeError):
    """The server did not start, did not become ready, or did not stop cleanly."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class LocalServer:
    """``python -m service`` as a child process; a context manager that always stops it."""

    def __init__(
        self,
        model_uri: str | Path,
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        python: str = sys.executable,
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = log_path
        self._command = [python, "-m", "service", "--host", LOOPBACK]
        self._env = {
            **os.environ,
            ENV.MODEL_URI: str(model_uri),
            ENV.PORT: str(self.port),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalServer:
        """Start the process (its stdout and stderr go to ``log_path``)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._command,
                cwd=_REPO_ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        """GET ``path``; (status, body), with HTTP errors returned rather than raised."""
        try:
            url = self.base_url + path  # always http://127.0.0.1:PORT/...
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Poll readiness until 200; the seconds it took. Raises if the process exits first."""
        started = time.monotonic()
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise LocalServerError(f"the server exited with {code}:\n{self.log_tail()}")
            try:
                status, _ = self.get(PATHS.READY, timeout=1.0)
                if status == 200:
                    return time.monotonic() - started
            except OSError:
                pass  # not listening yet
            if time.monotonic() - started > timeout:
                raise LocalServerError(f"not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def terminate(self, timeout: float = SHUTDOWN.drain_seconds + 10) -> int:
        """Send SIGTERM and wait for the exit code; kill (and raise) if it takes too long."""
        if self.process is None:
            raise LocalServerError("the server was never started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise LocalServerError(
                    f"the server did not exit within {timeout:.0f} s of SIGTERM; killed it"
                ) from None
        return self.process.returncode

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines so far (other lines, if any, are skipped)."""
        lines = []
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                lines.append(record)
        return lines

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote, for error messages."""
        if not self.log_path.exists():
            return "(no output)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalServer:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            # terminate() kills the process itself when SIGTERM is not enough.
            with contextlib.suppress(LocalServerError):
                self.terminate()
