"""The whole container path as one context manager: build, push, pull by digest, run like the pod.

    with serve_in_container() as base_url:
        ...send requests to base_url...

On exit the container is stopped (SIGTERM, the pod's grace period) and removed, and the local
registry is stopped and its storage deleted, so nothing is left running.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tools.container.engine import DockerError, default_cli, engine_reachable, progress
from tools.container.image import IMAGE_REPOSITORY, build_image
from tools.container.local_registry import local_registry
from tools.container.pod import STARTUP_TIMEOUT_S, PodSpec, run_like_pod


@contextmanager
def serve_in_container(
    variant: str = "cpu",
    *,
    offline: bool = True,
    device: str = "cpu",
    env: Mapping[str, str] | None = None,
    registry_port: int | None = None,
    ready_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[str]:
    """Serve the service image like the pod and yield its base URL (``http://127.0.0.1:PORT``).

    Builds the image (BuildKit's cache makes an unchanged rebuild take seconds), pushes it to a
    local registry, pulls it back by digest, runs that digest with the pod's settings and waits
    for readiness. Raises ``DockerError`` with the reason when any step fails.
    """
    cli = default_cli()
    if not engine_reachable(cli):
        raise DockerError("no Docker engine answers (start one: tools/docker_engine.sh start)")
    built = build_image(variant, offline=offline)
    with local_registry(registry_port) as registry:
        pushed = registry.push(built.tag, IMAGE_REPOSITORY, f"{variant}-{built.image_id[7:19]}")
        try:
            reference = registry.pull(pushed)
            spec = PodSpec(reference, device=device, env=dict(env or {}), gpus=device == "cuda")
            with run_like_pod(spec, ready_timeout_s=ready_timeout_s, cli=cli) as pod:
                yield pod.base_url
        finally:
            # Drop the registry's names for the image (the local tag keeps it), so repeated runs
            # on varying registry ports do not pile up references.
            names = (pushed.reference, f"{pushed.repository}:{pushed.tag}")
            cli.run("image", "rm", *names, check=False)
    progress("container path finished; nothing left running")
