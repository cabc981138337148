"""Static checks of the Dockerfile, the build context rules and the pod settings (no engine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service import contract
from tools.container.base_image import apt_mirror
from tools.container.pod import PodSpec, docker_quantity, pod_environment
from tools.container.wheelhouse import check_variant

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = (ROOT / "service" / "Dockerfile").read_text()


def arg_default(name: str) -> str:
    """The default value of ``ARG name=value`` in the Dockerfile (the first declaration)."""
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert match is not None, f"ARG {name} with a default not found in service/Dockerfile"
    return match.group(1)


def test_uid_gid_and_port_defaults_match_the_contract() -> None:
    assert int(arg_default("APP_UID")) == contract.RUN_AS_UID
    assert int(arg_default("APP_GID")) == contract.RUN_AS_GID
    assert int(arg_default("APP_PORT")) == contract.DEFAULT_PORT


def test_runtime_runs_as_the_contract_user_with_an_exec_form_entrypoint() -> None:
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert re.search(r"^USER \$\{APP_UID\}:\$\{APP_GID\}$", runtime, re.MULTILINE)
    assert re.search(r"^EXPOSE \$\{APP_PORT\}$", runtime, re.MULTILINE)
    assert '\nENTRYPOINT ["/opt/venv/bin/python", "-m", "service"]' in runtime
    assert contract.BUNDLED_MODEL_DIR == "/opt/model"
    assert "COPY --from=model /opt/model /opt/model" in runtime


def test_default_base_is_python_slim_bookworm_and_no_frontend_is_pulled() -> None:
    assert arg_default("BASE_IMAGE") == "python:3.11-slim-bookworm"
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE, re.MULTILINE | re.IGNORECASE)


def test_dockerignore_keeps_only_what_the_image_needs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything is excluded first, then the needed paths re-included"
    included = {line[1:] for line in lines if line.startswith("!")}
    assert included == {"pyproject.toml", "requirements/constraints.txt", "service/", "model/"}


def test_the_image_runs_service_only_and_training_stays_in_the_builder() -> None:
    """model/ (training, packaging) is copied into the model stage only; the runtime stage
    copies service/, which must not need the training dependencies."""
    stages = re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)
    runtime = next(s for s in stages if " AS runtime" in s.splitlines()[0])
    sources = re.findall(r"^COPY (?!--from)(\S+)", runtime, flags=re.MULTILINE)
    assert sources == ["service/"], sources
    for path in (ROOT / "service").rglob("*.py"):
        text = path.read_text()
        assert "sklearn" not in text, path
        assert "from model" not in text, path


def test_pod_flags_are_the_restricted_pod_settings() -> None:
    args = PodSpec("img:tag").run_args("name", 12345)
    joined = " ".join(args)
    assert "--read-only" in args
    assert f"--tmpfs {contract.WRITABLE_DIR}:rw,nosuid,nodev,size=256m" in joined
    assert f"--user {contract.RUN_AS_UID}:{contract.RUN_AS_GID}" in joined
    assert "--cap-drop ALL" in joined
    assert "--security-opt no-new-privileges" in joined
    assert "--memory 4g --memory-swap 4g" in joined
    assert f"--publish 127.0.0.1:12345:{contract.DEFAULT_PORT}" in joined
    assert args[-1] == "img:tag"
    assert "--gpus" not in args


def test_pod_limits_and_environment_match_the_deployment() -> None:
    from infra.k8s.pod import ContainerResources, ServiceSettings

    resources = ContainerResources()
    spec = PodSpec("img")
    assert (spec.cpus, spec.memory, spec.tmp_size) == (
        resources.cpu_limit,
        resources.memory_limit,
        resources.tmp_size_limit,
    )
    env = pod_environment("cpu")
    settings = ServiceSettings()
    assert env[contract.ENV.MAX_BATCH_SIZE] == str(settings.max_batch_size)
    assert env[contract.ENV.TORCH_THREADS] == str(settings.torch_threads)
    assert env[contract.ENV.PORT] == str(contract.DEFAULT_PORT)


def test_bad_inputs_are_rejected_with_their_name() -> None:
    with pytest.raises(ValueError, match="'rocm'"):
        check_variant("rocm")
    with pytest.raises(ValueError, match="'2GB'"):
        docker_quantity("2GB")
    with pytest.raises(ValueError, match="'tpu'"):
        pod_environment("tpu")


def test_apt_mirror_reads_both_source_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://other.example/debian/ bookworm main\n"
    )
    assert apt_mirror(tmp_path) == "http://other.example/debian"
    assert apt_mirror(tmp_path / "missing") == "http://deb.debian.org/debian"
