"""``serve_in_container``, the demo's container path: it serves the pushed digest and cleans up."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tools.container.client import predict_labels, probes_answer
from tools.container.image import BuiltImage
from tools.container.local_registry import free_port, port_is_free
from tools.container.serve import serve_in_container

if TYPE_CHECKING:
    import docker

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


def test_serves_the_digest_from_the_registry_and_leaves_nothing_running(
    docker_engine: docker.DockerClient, service_image: BuiltImage
) -> None:
    from model.digits import holdout

    pixels, labels = holdout()
    port = free_port()
    before = {c.id for c in docker_engine.containers.list(all=True)}
    with serve_in_container(registry_port=port) as base_url:
        assert probes_answer(base_url)["ready"] == 200
        assert not port_is_free(port), "the registry should be running while serving"
        (started,) = [
            c
            for c in docker_engine.containers.list()
            if c.id not in before and c.name.startswith("torch-eks-pod-")
        ]
        image_refs = started.attrs["Config"]["Image"]
        assert image_refs.startswith(f"127.0.0.1:{port}/torch-eks-inference@sha256:")
        assert docker_engine.images.get(image_refs).id == service_image.image_id
        rows = pixels[:16].astype(float).tolist()
        predicted = predict_labels(base_url, rows)
        correct = sum(p == str(e) for p, e in zip(predicted, labels[:16].tolist(), strict=True))
        assert correct >= 15
    assert started.id not in {c.id for c in docker_engine.containers.list(all=True)}
    assert port_is_free(port)
    tags = [tag for tag in docker_engine.images.get(service_image.tag).tags if str(port) in tag]
    assert tags == []
