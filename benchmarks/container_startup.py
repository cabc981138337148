"""Container start-up: ``docker run`` (pod flags) -> ready, what Docker adds, and its own floor.

    python -m benchmarks.container_startup                  # 5 runs; writes "container-startup"
    python -m benchmarks.container_startup --baseline DIR   # also an image built from DIR

Each run starts the image with the pod's flags (``tools.container.pod``), polls readiness every
10 ms and splits the time with the server's own log: the moment the container's first process
started (its kernel start time, read back from the "ready" line's ``since_process_start_s``) and
the moment the model was ready. Docker's floor is measured in the same run on the same image:
``docker run --rm`` of ``/bin/true`` with the same flags, and ``docker create`` then
``docker start`` of the same. ``--baseline`` builds an older tree (e.g. ``git archive``) with its
own Dockerfile and alternates its runs with this one's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from benchmarks.report import write_section
from benchmarks.startup import span
from tools.container.engine import default_cli
from tools.container.image import build_image
from tools.container.local_registry import free_port
from tools.container.pod import POLL_INTERVAL_S, PodSpec, wait_ready

BASELINE_TAG: Final = "torch-eks-inference:startup-baseline"
READY_MESSAGE: Final = "ready on"


@dataclass(frozen=True)
class ContainerStart:
    """One ``docker run`` -> ready, split with the server's log."""

    label: str
    total_s: float
    run_returned_s: float
    process_started_s: float | None
    ready_in_process_s: float | None


@dataclass(frozen=True)
class DockerFloor:
    """Docker's own cost for a container that does nothing, with the pod's flags."""

    run_true_s: float
    create_s: float
    start_s: float


def _pod_args(image: str, name: str, *, entrypoint: str | None = None) -> list[str]:
    args = PodSpec(image).run_args(name, free_port())
    if entrypoint is not None:
        args = [arg for arg in args if arg != "--detach"]
        args[-1:-1] = ["--entrypoint", entrypoint]
    return args


def ready_line(logs: str) -> tuple[float, float] | None:
    """(wall-clock time the process started, seconds it took to be ready) from the JSON log."""
    for raw in logs.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if READY_MESSAGE in str(line.get("msg", "")) and line.get("since_process_start_s"):
            since = float(line["since_process_start_s"])
            return datetime.fromisoformat(line["ts"]).timestamp() - since, since
    return None


def one_start(label: str, image: str) -> ContainerStart:
    """Start ``image`` like the pod, wait for readiness, remove it."""
    cli = default_cli()
    name = f"startup-{secrets.token_hex(4)}"
    argv = _pod_args(image, name)
    port = argv[argv.index("--publish") + 1].split(":")[1]
    wall, started = time.time(), time.monotonic()
    try:
        cli.run("run", *argv)
        returned = time.monotonic() - started
        total = wait_ready(cli, name, f"http://127.0.0.1:{port}", started, 120)
        logs = cli.run("logs", name).stdout
    finally:
        cli.run("rm", "--force", name, check=False)
    parsed = ready_line(logs)
    process_started = None if parsed is None else parsed[0] - wall
    ready = None if parsed is None else parsed[1]
    return ContainerStart(label, total, returned, process_started, ready)


def docker_floor(image: str) -> DockerFloor:
    """``docker run --rm`` of /bin/true, then ``docker create`` and ``docker start`` of it."""
    cli = default_cli()
    started = time.monotonic()
    cli.run("run", "--rm", *_pod_args(image, f"floor-{secrets.token_hex(4)}", entrypoint="true"))
    run_true = time.monotonic() - started
    name = f"floor-{secrets.token_hex(4)}"
    started = time.monotonic()
    cli.run("create", *_pod_args(image, name, entrypoint="true"))
    created = time.monotonic()
    try:
        cli.run("start", name)
        start = time.monotonic() - created
    finally:
        cli.run("rm", "--force", name, check=False)
    return DockerFloor(run_true, created - started, start)


def render(
    starts: list[ContainerStart], floors: list[DockerFloor], load: tuple[float, float, float]
) -> str:
    """The results section."""
    labels = list(dict.fromkeys(start.label for start in starts))
    lines = [
        "## Start-up in the container: `docker run` (pod flags) -> ready",
        "",
        f"Measured by `python -m benchmarks.container_startup` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on 2 shared cores. Median (range) of "
        f"{len(starts) // len(labels)} alternating runs; readiness polled every "
        f"{POLL_INTERVAL_S * 1000:.0f} ms on the published port.",
        "",
        "| image | `docker run` -> ready s | `docker run -d` returned at s "
        "| container process started at s | ready, counted from the process start s |",
        "|---|---|---|---|---|",
    ]
    for label in labels:
        mine = [start for start in starts if start.label == label]
        lines.append(
            f"| {label} | {span([s.total_s for s in mine])} "
            f"| {span([s.run_returned_s for s in mine])} "
            f"| {span([s.process_started_s for s in mine])} "
            f"| {span([s.ready_in_process_s for s in mine])} |"
        )
    lines += [
        "",
        "Docker's own floor, same image and flags, a container that runs `/bin/true`:",
        "",
        "| what | s |",
        "|---|---|",
        "| `docker run --rm` (create, start, wait, remove) "
        f"| {span([f.run_true_s for f in floors])} |",
        f"| `docker create` | {span([f.create_s for f in floors])} |",
        f"| `docker start` | {span([f.start_s for f in floors])} |",
        "",
        "- The process start is the kernel's start time of the container's first process: runc "
        "forks it, sets up the namespaces, mounts and seccomp, then it becomes Python, so "
        "runc's last steps count as the process's time.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the image(s), alternate the runs, print the section and write it."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.container_startup", description=__doc__
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="an older tree (service/ and its Dockerfile)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    images = [("this branch", build_image("cpu").tag)]
    if args.baseline is not None:
        baseline = build_image("cpu", BASELINE_TAG, context=args.baseline.resolve())
        images.insert(0, ("baseline", baseline.tag))
    starts: list[ContainerStart] = []
    floors: list[DockerFloor] = []
    for _ in range(args.runs):
        starts += [one_start(label, tag) for label, tag in images]
        floors.append(docker_floor(images[-1][1]))
    section = render(starts, floors, os.getloadavg())
    print(section)
    if not args.no_write:
        write_section("container-startup", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
