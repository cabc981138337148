"""Session fixtures shared by every test package: a Docker engine, a moto server, the bundled model.

Each fixture starts its resource once per session and stops it at the end, so tests stay fast and
never leave a process or a container behind.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    import docker

# CI explores a fixed, reproducible set of examples (Hypothesis' advice for CI: a red build must
# be reproducible, not a lottery); developers' runs stay random and keep finding new cases.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where the packaged test model is cached between runs, keyed by a hash of its sources.
TEST_MODEL_CACHE = REPO_ROOT / "build" / "test-model"
#: Region and dummy credentials the moto server answers for; nothing here ever reaches AWS.
MOTO_REGION = "us-east-1"
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # a moto dummy, not a secret
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": MOTO_REGION,
    "AWS_REGION": MOTO_REGION,
}


def aws_env(endpoint_url: str) -> dict[str, str]:
    """Environment for a child process that must talk to the moto server instead of AWS."""
    return {**MOTO_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint_url}


def require_tool(name: str, hint: str) -> str:
    """Path of the system tool ``name``; skips without it, fails when ``REQUIRE_<NAME>=1``.

    A newcomer's `make test` (Python and make only) skips what needs wrk, docker-registry ...
    with the reason; `.ci/run` installs them and sets the variable so CI cannot skip silently.
    """
    found = shutil.which(name)
    if found is not None:
        return found
    variable = "REQUIRE_" + name.upper().replace("-", "_")
    reason = f"{name} is not installed ({hint})"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """A client of a Docker engine that answers ``ping()``.

    Skips the test when no engine is reachable, but fails it when ``REQUIRE_DOCKER=1`` so CI on a
    machine that should have Docker cannot silently skip the container tests.
    """
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        reason = f"no Docker engine: {exc} (start one with tools/docker_engine.sh start)"
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto server (every AWS API mocked) on a free port of 127.0.0.1.

    While it runs, this process's AWS credentials and region are dummy values so no test can ever
    sign a request with real ones. Tests pass the URL as ``endpoint_url`` to boto3, or give
    ``aws_env(url)`` to a process they start.
    """
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in MOTO_CREDENTIALS}
    os.environ.update(MOTO_CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _model_sources_digest() -> str:
    """Hash of everything that decides the packaged model's bytes, so a code change re-packages."""
    digest = hashlib.sha256()
    for package in ("torch", "scikit-learn"):
        digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
    sources = [
        REPO_ROOT / "service" / "signature.py",
        REPO_ROOT / "service" / "model_loader.py",
        *sorted((REPO_ROOT / "service" / "model").glob("*.py")),
    ]
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def packaged_model_dir() -> Path:
    """The bundled digits model, trained, gated and packaged once (cached across runs).

    The directory is shared by every test and every later run: copy it before changing anything.
    """
    target = TEST_MODEL_CACHE / _model_sources_digest()
    if not (target / "signature.json").is_file():
        _package_into(target)
    # Models packaged from older sources are never used again.
    for stale in TEST_MODEL_CACHE.iterdir():
        if stale != target and not stale.name.startswith("packaging-"):
            shutil.rmtree(stale, ignore_errors=True)
    return target


def _package_into(target: Path) -> None:
    from model.package import package_model

    TEST_MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    # Package into a scratch dir and rename it into place, so an interrupted run or a parallel
    # worker never sees a half-written model.
    scratch = Path(tempfile.mkdtemp(prefix="packaging-", dir=TEST_MODEL_CACHE))
    try:
        package_model(scratch / "model")
        try:
            (scratch / "model").rename(target)
        except OSError:
            if not (target / "signature.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
