"""The local registry standing in for ECR: it starts and stops cleanly, and push/pull by digest."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.conftest import require_tool
from tools.container.engine import DockerError
from tools.container.image import IMAGE_REPOSITORY, BuiltImage
from tools.container.local_registry import free_port, local_registry, port_is_free

if TYPE_CHECKING:
    import docker


@pytest.fixture
def registry_tool() -> str:
    """The docker-registry binary (Debian package docker-registry; REQUIRE_DOCKER_REGISTRY=1)."""
    return require_tool("docker-registry", "apt-get install docker-registry")


needs_registry = pytest.mark.usefixtures("registry_tool")


@needs_registry
def test_registry_serves_the_v2_api_on_loopback_and_leaves_nothing_behind() -> None:
    port = free_port()
    with local_registry(port) as registry:
        assert registry.api("/v2/")[0] == 200
        assert registry.api("/v2/_catalog")[2] == b'{"repositories":[]}\n'
        storage_parent = registry.storage.parent
        assert not port_is_free(port)
    assert registry.process.returncode is not None
    assert port_is_free(port)
    assert not storage_parent.exists()


@needs_registry
def test_a_taken_port_is_an_error_naming_it() -> None:
    port = free_port()
    taken = f"127.0.0.1:{port} is already in use"
    with local_registry(port), pytest.raises(DockerError, match=taken), local_registry(port):
        pytest.fail("a second registry started on a taken port")


@needs_registry
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_push_then_pull_by_digest_gives_the_same_image(
    docker_engine: docker.DockerClient, service_image: BuiltImage
) -> None:
    with local_registry(free_port()) as registry:
        pushed = registry.push(service_image.tag, IMAGE_REPOSITORY, "test-push")
        manifest = registry.manifest(IMAGE_REPOSITORY, pushed.digest)
        layers = manifest["layers"]
        assert isinstance(layers, list)
        assert layers
        for layer in layers:
            assert registry.api(f"/v2/{IMAGE_REPOSITORY}/blobs/{layer['digest']}", "HEAD")[0] == 200
        # Forget every registry name of the image, then pull by digest alone.
        tagged = f"{pushed.repository}:{pushed.tag}"
        docker_engine.images.remove(tagged)
        assert (
            pushed.reference not in docker_engine.images.get(service_image.tag).attrs["RepoDigests"]
        )
        reference = registry.pull(pushed)
        try:
            pulled = docker_engine.images.get(reference)
            assert pulled.id == service_image.image_id
            assert reference in pulled.attrs["RepoDigests"]
        finally:
            docker_engine.images.remove(reference)
