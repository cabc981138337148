"""The built image: who it runs as, what it can write, and what it must not contain."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from service import contract
from tests.e2e.container.secret_scan import PATTERNS, scan_bytes, scan_saved_image
from tools.container.image import BuiltImage
from tools.container.pod import RunningPod

if TYPE_CHECKING:
    import docker

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


def run_in_image(
    client: docker.DockerClient, image: str, script: str, *, user: str | None = None
) -> tuple[int, str]:
    """Run ``sh -c script`` in a fresh container of ``image``; returns exit code and output."""
    container = client.containers.create(
        image, entrypoint=["sh", "-c", script], user=user or "", network_disabled=True
    )
    try:
        container.start()
        code = int(container.wait(timeout=120)["StatusCode"])
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def exec_in_pod(client: docker.DockerClient, pod: RunningPod, script: str) -> tuple[int, str]:
    """Run ``sh -c script`` inside the running pod container."""
    code, output = client.containers.get(pod.name).exec_run(["sh", "-c", script])
    return int(code), output.decode(errors="replace")


def test_image_config_is_non_root_with_exec_entrypoint(
    docker_engine: docker.DockerClient, service_image: BuiltImage
) -> None:
    config = docker_engine.images.get(service_image.tag).attrs["Config"]
    assert config["User"] == f"{contract.RUN_AS_UID}:{contract.RUN_AS_GID}"
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "service"]
    assert f"{contract.DEFAULT_PORT}/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert all(env[name].startswith(contract.WRITABLE_DIR) for name in ("HOME", "TORCH_HOME"))
    labels = config["Labels"]
    for key in ("source", "revision", "version"):
        assert labels[f"org.opencontainers.image.{key}"], key
    assert labels["io.torch-eks-inference.torch-variant"] == "cpu"


def test_pod_process_runs_as_uid_10001_without_capabilities(
    docker_engine: docker.DockerClient, pod: RunningPod
) -> None:
    code, output = exec_in_pod(
        docker_engine, pod, "id -u; id -g; grep -E '^(CapEff|NoNewPrivs)' /proc/1/status"
    )
    assert code == 0, output
    lines = output.split()
    assert lines[0] == str(contract.RUN_AS_UID)
    assert lines[1] == str(contract.RUN_AS_GID)
    assert "0000000000000000" in output, output
    assert output.rstrip().endswith("1"), "NoNewPrivs must be 1"


def test_pod_cannot_write_its_root_filesystem_only_tmp(
    docker_engine: docker.DockerClient, pod: RunningPod
) -> None:
    for path in ("/app/service/x", "/opt/venv/x", "/opt/model/x", "/x"):
        code, output = exec_in_pod(docker_engine, pod, f"touch {path}")
        assert code != 0, f"{path} was writable"
        assert "Read-only file system" in output, output
    code, output = exec_in_pod(docker_engine, pod, f"touch {contract.WRITABLE_DIR}/ok && echo ok")
    assert (code, output.strip()) == (0, "ok")


def test_image_files_are_not_writable_by_the_service_user_even_without_read_only(
    docker_engine: docker.DockerClient, service_image: BuiltImage
) -> None:
    dirs = "/app/service /opt/venv/bin /opt/model"
    script = f"for p in {dirs}; do touch $p/x 2>/dev/null && echo $p; done; true"
    code, output = run_in_image(docker_engine, service_image.tag, script)
    assert code == 0
    assert output.strip() == "", f"writable by UID {contract.RUN_AS_UID}: {output}"


def test_runtime_has_no_compiler_pip_cache_or_build_only_packages(
    docker_engine: docker.DockerClient, service_image: BuiltImage
) -> None:
    checks = {
        "compiler": "command -v gcc cc c++ clang g++ make",
        "pip on PATH": "command -v pip pip3",
        "pip module": "python -c 'import pip'",
        "ensurepip": "python3 -c 'import ensurepip'",
        "pip cache": "ls -d /root/.cache/pip /tmp/.cache/pip /home/*/.cache/pip",
        "wheel files": "find / -xdev -name '*.whl' | grep .",
        "scikit-learn": "python -c 'import sklearn'",
        "torch headers": "ls -d /opt/venv/lib/python3*/site-packages/torch/include",
    }
    for what, script in checks.items():
        code, output = run_in_image(docker_engine, service_image.tag, f"{script} 2>/dev/null")
        assert code != 0, f"runtime image has {what}: {output.strip()}"
    code, output = run_in_image(
        docker_engine, service_image.tag, "python -c 'import torch, fastapi'"
    )
    assert code == 0, output


def test_app_directory_holds_only_the_service_package(
    docker_engine: docker.DockerClient, service_image: BuiltImage
) -> None:
    code, output = run_in_image(
        docker_engine, service_image.tag, "find /app -type f -not -name '*.pyc' | sort"
    )
    assert code == 0, output
    files = output.split()
    assert "/app/service/__main__.py" in files
    assert [f for f in files if not f.startswith("/app/service/")] == []
    assert "/app/service/Dockerfile" not in files


def test_no_secret_in_any_layer_or_in_the_history(service_image: BuiltImage) -> None:
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", service_image.tag],
        capture_output=True,
        check=True,
    ).stdout
    assert history, "docker history returned nothing"
    assert list(scan_bytes(history)) == []
    for word in (b"AWS_SECRET_ACCESS_KEY=", b"AWS_SESSION_TOKEN=", b"PASSWORD=", b"TOKEN="):
        assert word not in history.upper(), f"{word!r} in the image history"
    saved = subprocess.Popen(["docker", "save", service_image.tag], stdout=subprocess.PIPE)
    assert saved.stdout is not None
    findings = scan_saved_image(saved.stdout)
    assert saved.wait() == 0
    assert findings == [], "\n".join(f"{f.layer}: {f.path}: {f.kind} {f.excerpt}" for f in findings)


def test_the_layer_scan_finds_planted_keys() -> None:
    # Built at run time so no key-like literal sits in the repository itself.
    key_id = b"AKIA" + b"Q7" * 8
    pem = b"-----BEGIN RSA PRIVATE KEY-----\n" + b"MIIEowIBAAKCAQEA" * 5 + b"\n"
    secret = b"aws_secret_access_key = " + b"a1B2" * 10
    token = b"ghp_" + b"x9" * 18
    found = {kind for kind, _ in scan_bytes(b"\x00".join((key_id, pem, secret, token)))}
    assert found == set(PATTERNS)
    assert list(scan_bytes(b"AKIAIOSFODNN7EXAMPLE -----BEGIN PRIVATE KEY-----<body>")) == []
