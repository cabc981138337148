"""Fixtures of the container tests: the image, built once per session, and a pod running it.

The image is built offline exactly as ``python -m tools.container build`` builds it (the
debootstrap base and the wheelhouse are cached across runs, BuildKit caches the layers), so a
session with an unchanged tree spends seconds here. Set ``CONTAINER_TEST_IMAGE`` to test an image
built another way (for instance ``docker build -f service/Dockerfile .`` with registry access).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tools.container.image import BuiltImage, build_image
from tools.container.pod import PodSpec, RunningPod, run_like_pod

if TYPE_CHECKING:
    import docker

#: Readiness budget in tests: far above the measured cold start, far below the startupProbe's.
READY_TIMEOUT_S = 120.0


@pytest.fixture(scope="session")
def service_image(docker_engine: docker.DockerClient) -> BuiltImage:
    """The CPU image of the service (tag, id, size), built once per test session."""
    given = os.environ.get("CONTAINER_TEST_IMAGE")
    if given:
        image = docker_engine.images.get(given)
        return BuiltImage(given, image.id, int(image.attrs["Size"]), 0.0)
    return build_image("cpu", offline=True)


@pytest.fixture(scope="session")
def pod(service_image: BuiltImage) -> Iterator[RunningPod]:
    """The image running with the pod's settings, ready; shared by the read-only checks."""
    with run_like_pod(PodSpec(service_image.tag), ready_timeout_s=READY_TIMEOUT_S) as running:
        yield running
