"""Running the image exactly as the Kubernetes pod runs it, with ``docker run``.

The pod's restricted security context maps onto docker flags one for one: read-only root file
system with a tmpfs at ``/tmp`` (the pod's memory-backed emptyDir), UID/GID 10001, every
capability dropped, no privilege escalation; plus the pod's CPU and memory limits and the
environment the Deployment sets, every name taken from ``service.contract``.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from service import contract
from tools.container.engine import DockerCli, DockerError, default_cli, progress
from tools.container.local_registry import free_port

#: The pod's limits (infra/k8s/pod.py ContainerResources; a test keeps the two equal).
CPU_LIMIT = "2"
MEMORY_LIMIT = "4Gi"
TMP_SIZE_LIMIT = "256Mi"
#: Longest a model may take to become ready: the startupProbe's whole budget.
STARTUP_TIMEOUT_S = (
    contract.PROBES.startup_period_seconds * contract.PROBES.startup_failure_threshold
)
#: Seconds between two readiness polls: fine enough to time a start-up to the 10 ms.
POLL_INTERVAL_S = 0.01
#: Seconds between two checks that the container still runs. Each is a `docker inspect`: about
#: 50 ms of CPU (CLI and dockerd) taken from the container that is starting on the same cores.
STATE_CHECK_INTERVAL_S = 0.5


def docker_quantity(quantity: str) -> str:
    """A Kubernetes memory quantity (``4Gi``, ``256Mi``) as docker writes it (``4g``, ``256m``)."""
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    for suffix, short in units.items():
        if quantity.endswith(suffix) and quantity[: -len(suffix)].isdigit():
            return quantity[: -len(suffix)] + short
    raise ValueError(f"memory quantity {quantity!r} must be a whole number of Ki, Mi or Gi")


def pod_environment(
    device: str = "cpu", overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment the Deployment gives the container (contract names and defaults)."""
    if device not in contract.DEVICES:
        raise ValueError(f"device {device!r} is not one of {', '.join(contract.DEVICES)}")
    env = contract.ENV
    values = {
        env.PORT: str(contract.DEFAULT_PORT),
        env.MODEL_NAME: contract.DEFAULT_MODEL_NAME,
        env.DEVICE: device,
        env.MAX_BATCH_SIZE: str(contract.DEFAULT_MAX_BATCH_SIZE),
        env.BATCH_TIMEOUT_MS: str(contract.DEFAULT_BATCH_TIMEOUT_MS),
        env.MAX_REQUEST_BYTES: str(contract.DEFAULT_MAX_REQUEST_BYTES),
        env.LOG_LEVEL: contract.DEFAULT_LOG_LEVEL,
        env.TORCH_THREADS: str(contract.DEFAULT_TORCH_THREADS),
    }
    return {**values, **(overrides or {})}


@dataclass(frozen=True)
class PodSpec:
    """What ``docker run`` needs to imitate the pod: image, limits, environment, GPUs."""

    image: str
    cpus: str = CPU_LIMIT
    memory: str = MEMORY_LIMIT
    tmp_size: str = TMP_SIZE_LIMIT
    device: str = "cpu"
    env: Mapping[str, str] = field(default_factory=dict)
    gpus: bool = False
    #: Docker log driver; None keeps the engine's default (json-file), as a user's run would.
    log_driver: str | None = None

    def run_args(self, name: str, host_port: int) -> list[str]:
        """The ``docker run`` arguments (after ``run``) for this pod."""
        uid_gid = f"{contract.RUN_AS_UID}:{contract.RUN_AS_GID}"
        memory = docker_quantity(self.memory)
        tmpfs = f"{contract.WRITABLE_DIR}:rw,nosuid,nodev,size={docker_quantity(self.tmp_size)}"
        args = [
            "--detach",
            "--name", name,
            "--read-only",
            "--tmpfs", tmpfs,
            "--user", uid_gid,
            "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "--cpus", self.cpus,
            "--memory", memory,
            "--memory-swap", memory,
            "--publish", f"127.0.0.1:{host_port}:{contract.DEFAULT_PORT}",
        ]  # fmt: skip
        if self.gpus:
            args += ["--gpus", "all"]
        if self.log_driver is not None:
            args += ["--log-driver", self.log_driver]
        for key, value in sorted(pod_environment(self.device, self.env).items()):
            args += ["--env", f"{key}={value}"]
        return [*args, self.image]


@dataclass
class RunningPod:
    """A container started by ``run_like_pod``."""

    name: str
    container_id: str
    base_url: str
    ready_seconds: float
    exit_code: int | None = None


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """Status code of a GET to ``url``, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def wait_ready(cli: DockerCli, name: str, base_url: str, started: float, timeout_s: float) -> float:
    """Poll readiness until 200; returns seconds since ``started``. Raises if the container dies.

    Readiness is polled every ``POLL_INTERVAL_S``, whether the container still runs only every
    ``STATE_CHECK_INTERVAL_S``.
    """
    deadline = started + timeout_s
    ready_url = base_url + contract.PATHS.READY
    next_check = time.monotonic() + STATE_CHECK_INTERVAL_S
    while time.monotonic() < deadline:
        if http_status(ready_url, timeout_s=contract.PROBES.timeout_seconds) == 200:
            return time.monotonic() - started
        if time.monotonic() >= next_check:
            _raise_if_stopped(cli, name)
            next_check = time.monotonic() + STATE_CHECK_INTERVAL_S
        time.sleep(POLL_INTERVAL_S)
    _raise_if_stopped(cli, name)
    raise DockerError(f"container {name} was not ready at {ready_url} within {timeout_s:.0f} s")


def _raise_if_stopped(cli: DockerCli, name: str) -> None:
    state = cli.run("inspect", "--format", "{{.State.Status}}", name, check=False)
    if state.stdout.strip() not in ("created", "running"):
        logs = cli.run("logs", "--tail", "20", name, check=False)
        raise DockerError(
            f"container {name} stopped before it was ready ({state.stdout.strip()}):\n"
            f"{(logs.stdout + logs.stderr).strip()}"
        )


@contextmanager
def run_like_pod(
    spec: PodSpec,
    *,
    ready_timeout_s: float = STARTUP_TIMEOUT_S,
    cli: DockerCli | None = None,
) -> Iterator[RunningPod]:
    """Start the image like the pod, wait until it is ready, yield it; stop and remove it after.

    The stop is a ``docker stop`` with the pod's grace period, as the kubelet would do; the exit
    code is recorded on the yielded object. The container is removed whatever happens.
    """
    cli = cli or default_cli()
    name = f"torch-eks-pod-{secrets.token_hex(4)}"
    host_port = free_port()
    base_url = f"http://127.0.0.1:{host_port}"
    argv = spec.run_args(name, host_port)
    progress(f"pod: docker run {' '.join(argv)}")
    started = time.monotonic()
    container_id = cli.run("run", *argv).stdout.strip()
    pod = RunningPod(name, container_id, base_url, 0.0)
    try:
        pod.ready_seconds = wait_ready(cli, name, base_url, started, ready_timeout_s)
        progress(f"pod: {name} ready at {base_url} after {pod.ready_seconds:.2f} s")
        yield pod
    finally:
        grace = str(contract.SHUTDOWN.termination_grace_period_seconds)
        cli.run("stop", "--time", grace, name, check=False, timeout=120)
        code = cli.run("inspect", "--format", "{{.State.ExitCode}}", name, check=False)
        pod.exit_code = int(code.stdout.strip()) if code.stdout.strip().isdigit() else None
        cli.run("rm", "--force", name, check=False, timeout=60)
        progress(f"pod: {name} stopped (exit {pod.exit_code}) and removed")
