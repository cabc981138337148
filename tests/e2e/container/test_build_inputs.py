"""What decides a rebuild: the wheelhouse key, the CUDA download's pip settings (no engine)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.container import wheelhouse

PYPROJECT = """\
[project]
name = "x"

[dependency-groups]
service = ["torch==2.13.0"]
model = ["scikit-learn==1.9.1"]
dev = ["pytest==9.2.0"]

[tool.ruff]
line-length = 100
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pyproject = tmp_path / "pyproject.toml"
    constraints = tmp_path / "constraints.txt"
    pyproject.write_text(PYPROJECT)
    constraints.write_text("torch==2.13.0\n")
    monkeypatch.setattr(wheelhouse, "PYPROJECT", pyproject)
    monkeypatch.setattr(wheelhouse, "CONSTRAINTS", constraints)
    return tmp_path


def test_wheelhouse_key_ignores_edits_outside_the_image_groups(project: Path) -> None:
    before = wheelhouse.wheelhouse_tag("cpu")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace("line-length = 100", "line-length = 120"))
    assert wheelhouse.wheelhouse_tag("cpu") == before
    pyproject.write_text(PYPROJECT.replace("pytest==9.2.0", "pytest==9.3.0"))
    assert wheelhouse.wheelhouse_tag("cpu") == before


def test_wheelhouse_key_follows_pins_groups_and_variant(project: Path) -> None:
    before = wheelhouse.wheelhouse_tag("cpu")
    assert wheelhouse.wheelhouse_tag("cuda") != before.replace("cpu-", "cuda-")
    (project / "constraints.txt").write_text("torch==2.13.0\nnumpy==2.4.6\n")
    after_pin = wheelhouse.wheelhouse_tag("cpu")
    assert after_pin != before
    pyproject = project / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace('"scikit-learn==1.9.1"', '"scikit-learn==1.9.2"'))
    assert wheelhouse.wheelhouse_tag("cpu") != after_pin


def test_missing_group_is_named(project: Path) -> None:
    (project / "pyproject.toml").write_text('[dependency-groups]\nservice = ["torch"]\n')
    with pytest.raises(ValueError, match="no dependency group model"):
        wheelhouse.wheelhouse_tag("cpu")


def test_cuda_download_ignores_find_links_but_keeps_the_indexes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    config = {"global.extra-index-url": "file:///mirror/simple"}
    monkeypatch.setattr(wheelhouse, "_pip_config", config.get)
    cuda = wheelhouse._download_env("cuda")
    assert "PIP_FIND_LINKS" not in cuda
    assert cuda["PIP_CONFIG_FILE"] == os.devnull
    assert cuda["PIP_EXTRA_INDEX_URL"] == "file:///mirror/simple"
    assert wheelhouse._download_env("cpu")["PIP_FIND_LINKS"] == "/opt/wheels"
