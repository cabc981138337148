"""Talking to the Docker engine through its CLI: finding a BuildKit-capable client, running it.

Two Docker CLIs can exist on a Debian machine: a recent one without the buildx plugin (its
``docker build`` falls back to the legacy builder) and Debian's 20.10 one with BuildKit built in.
``buildkit_cli`` picks one that can run ``RUN --mount`` builds; plain commands (run, push, pull,
inspect) work with either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Scratch space of the container tooling (root file systems, wheelhouses, registry storage).
BUILD_DIR = REPO_ROOT / "build" / "container"
#: Debian's own CLI, which has BuildKit built in even where the CLI first in PATH lacks buildx.
DEBIAN_DOCKER_CLI = "/usr/bin/docker"
#: First Docker CLI major version whose builder is buildx only (no built-in BuildKit).
_FIRST_BUILDX_ONLY_MAJOR = 23


class DockerError(RuntimeError):
    """A Docker command failed or no usable Docker CLI/engine was found."""


def progress(message: str) -> None:
    """Print one progress line, so a user watching a long build knows which step is running."""
    print(f"[container {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DockerCli:
    """A Docker CLI binary and the environment it needs for BuildKit builds."""

    path: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        """The argv of ``docker ARGS`` with this binary."""
        return [self.path, *args]

    def run(
        self,
        *args: str,
        capture: bool = True,
        check: bool = True,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS``; on failure raise ``DockerError`` with the command and its stderr."""
        argv = self.command(*args)
        try:
            result = subprocess.run(
                argv,
                env={**os.environ, **self.env},
                capture_output=capture,
                text=True,
                check=False,
                timeout=timeout,
                input=stdin.decode() if stdin is not None else None,
            )
        except FileNotFoundError as exc:
            raise DockerError(f"Docker CLI not found: {self.path}") from exc
        except subprocess.TimeoutExpired as exc:
            raise DockerError(f"`{' '.join(argv)}` did not finish in {timeout} s") from exc
        if check and result.returncode != 0:
            detail = (result.stderr or "").strip()[-2000:] if capture else "see the output above"
            raise DockerError(f"`{' '.join(argv)}` failed with exit {result.returncode}: {detail}")
        return result


def _client_major(path: str) -> int | None:
    """Major version of the Docker CLI at ``path``, or None when it cannot be run."""
    try:
        result = subprocess.run(
            [path, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    head = result.stdout.strip().split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _has_buildx(path: str) -> bool:
    try:
        result = subprocess.run(
            [path, "buildx", "version"], capture_output=True, check=False, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _candidates() -> list[str]:
    found = [shutil.which("docker"), DEBIAN_DOCKER_CLI]
    unique: list[str] = []
    for path in found:
        if path and Path(path).exists() and path not in unique:
            unique.append(path)
    return unique


def default_cli() -> DockerCli:
    """The Docker CLI first in PATH (or Debian's), for commands that do not build."""
    paths = _candidates()
    if not paths:
        raise DockerError("no Docker CLI found (install docker.io or Docker Engine)")
    return DockerCli(paths[0])


def buildkit_cli() -> DockerCli:
    """A Docker CLI whose ``build`` runs on BuildKit (needed for ``RUN --mount``).

    A CLI with the buildx plugin builds with BuildKit by default; a CLI older than 23 has
    BuildKit built in behind ``DOCKER_BUILDKIT=1``; a CLI of 23 or later without buildx has only
    the legacy builder and is skipped.
    """
    for path in _candidates():
        if _has_buildx(path):
            return DockerCli(path)
        major = _client_major(path)
        if major is not None and major < _FIRST_BUILDX_ONLY_MAJOR:
            return DockerCli(path, {"DOCKER_BUILDKIT": "1"})
    raise DockerError(
        "no Docker CLI with BuildKit found: install the buildx plugin, or Debian's docker.io "
        f"whose {DEBIAN_DOCKER_CLI} has BuildKit built in"
    )


def engine_reachable(cli: DockerCli | None = None) -> bool:
    """True when a Docker engine answers ``docker info``."""
    try:
        (cli or default_cli()).run("info", "--format", "{{.ServerVersion}}", timeout=20)
    except DockerError:
        return False
    return True


def image_exists(reference: str, cli: DockerCli | None = None) -> bool:
    """True when the engine has an image called ``reference`` (tag, id or digest reference)."""
    result = (cli or default_cli()).run("image", "inspect", reference, check=False, timeout=30)
    return result.returncode == 0


def inspect_format(reference: str, template: str, cli: DockerCli | None = None) -> str:
    """``docker inspect --format TEMPLATE REFERENCE``, stripped."""
    return (cli or default_cli()).run("inspect", "--format", template, reference).stdout.strip()


def run_streaming(argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Run a long command with its output going straight to the terminal; raise on failure."""
    result = subprocess.run(list(argv), env={**os.environ, **(env or {})}, check=False)
    if result.returncode != 0:
        raise DockerError(f"`{' '.join(argv)}` failed with exit {result.returncode}")
