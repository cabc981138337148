"""A local registry standing in for ECR: Debian's ``docker-registry`` on 127.0.0.1.

Debian's packaged configuration enables htpasswd auth and listens on every interface, so this
module writes its own: loopback only, filesystem storage in a scratch directory removed on exit,
deletes enabled. 127.0.0.0/8 is an insecure registry by default, so the engine needs no setting.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.container.engine import BUILD_DIR, DockerCli, DockerError, default_cli, progress

DEFAULT_PORT = 5000
REGISTRY_BINARY = "docker-registry"
_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)

CONFIG_TEMPLATE = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PushedImage:
    """An image in the local registry, addressed by its manifest digest."""

    repository: str
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        """``HOST:PORT/REPOSITORY@sha256:...``: what a Deployment would pin."""
        return f"{self.repository}@{self.digest}"


class LocalRegistry:
    """A running ``docker-registry`` process and the operations the demo and tests need."""

    def __init__(self, port: int, storage: Path, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.storage = storage
        self.process = process

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    def api(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        """One request to the registry's HTTP API; returns status, headers and body."""
        request = urllib.request.Request(f"http://{self.host}{path}", method=method)
        request.add_header("Accept", _MANIFEST_TYPES)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def push(self, image: str, name: str, tag: str, cli: DockerCli | None = None) -> PushedImage:
        """Tag ``image`` as ``HOST/NAME:TAG``, push it and return its digest reference."""
        cli = cli or default_cli()
        repository = f"{self.host}/{name}"
        target = f"{repository}:{tag}"
        cli.run("tag", image, target)
        progress(f"registry: push {target}")
        started = time.monotonic()
        cli.run("push", target, timeout=1800)
        status, headers, _ = self.api(f"/v2/{name}/manifests/{tag}", method="HEAD")
        digest = headers.get("Docker-Content-Digest", "")
        if status != 200 or not digest.startswith("sha256:"):
            raise DockerError(f"registry has no manifest for {target} after the push ({status})")
        progress(f"registry: pushed {repository}@{digest} in {time.monotonic() - started:.1f} s")
        return PushedImage(repository, tag, digest)

    def pull(self, pushed: PushedImage, cli: DockerCli | None = None) -> str:
        """``docker pull`` the image by digest; returns the digest reference."""
        progress(f"registry: pull {pushed.reference}")
        (cli or default_cli()).run("pull", pushed.reference, timeout=1800)
        return pushed.reference

    def manifest(self, name: str, reference: str) -> dict[str, object]:
        """The image manifest stored under ``name`` for a tag or digest."""
        status, _, body = self.api(f"/v2/{name}/manifests/{reference}")
        if status != 200:
            raise DockerError(f"registry: no manifest {name}:{reference} (HTTP {status})")
        document: dict[str, object] = json.loads(body)
        return document


def _wait_ready(registry: LocalRegistry, log: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            raise DockerError(f"docker-registry exited at start:\n{log.read_text()[-2000:]}")
        try:
            if registry.api("/v2/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise DockerError(f"docker-registry did not answer on {registry.host} within {timeout_s} s")


@contextmanager
def local_registry(port: int | None = None) -> Iterator[LocalRegistry]:
    """Run a registry on 127.0.0.1 for the duration of the block, with throwaway storage.

    ``port`` defaults to 5000, or a free port when something already listens there (another
    registry on a shared machine); an explicit port that is taken is an error.
    """
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise DockerError(f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)")
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    elif not port_is_free(port):
        raise DockerError(f"cannot start the registry: 127.0.0.1:{port} is already in use")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="registry-", dir=BUILD_DIR))
    config, log = scratch / "config.yml", scratch / "registry.log"
    config.write_text(CONFIG_TEMPLATE.format(storage=scratch / "storage", port=port))
    progress(f"registry: starting on 127.0.0.1:{port}")
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT
        )
    registry = LocalRegistry(port, scratch / "storage", process)
    try:
        _wait_ready(registry, log)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(scratch, ignore_errors=True)
        progress(f"registry: stopped on 127.0.0.1:{port}")
