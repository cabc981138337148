"""Issue 10, item 9: the lock with hashes, and the caches of the Pulumi jobs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.workflows.runner import REPO, load
from tools.delivery import lock

ACTION = REPO / ".github" / "actions" / "pulumi-setup" / "action.yml"


def test_the_infra_lock_matches_the_pins_and_hashes_every_file() -> None:
    text = (REPO / "requirements" / "infra.lock").read_text()
    assert lock.check("infra", text, (REPO / "requirements" / "constraints.txt").read_text()) == []
    locked = lock.read_pins(text)
    pyproject = (REPO / "pyproject.toml").read_text()
    group = pyproject.split("infra = [", 1)[1].split("]", 1)[0]
    for name, version in re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', group):
        assert locked.get(lock.canonical(name)) == version, f"{name} missing from the lock"
    hashes = lock.read_lock_hashes(text)
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for hs in hashes.values() for h in hs)


def test_check_catches_a_drifted_or_unhashed_lock() -> None:
    constraints = "pulumi==3.272.0\ngrpcio==1.70.0\n"
    drifted = "pulumi==3.273.0 \\\n    --hash=sha256:" + "a" * 64 + "\ngrpcio==1.70.0\n"
    problems = lock.check("infra", drifted, constraints)
    assert "pulumi==3.273.0 but constraints.txt pins 3.272.0" in problems
    assert "grpcio==1.70.0 has no --hash" in problems


def test_render_refuses_a_resolution_without_hashes() -> None:
    report = {"install": [{"metadata": {"name": "x", "version": "1"}, "download_info": {}}]}
    with pytest.raises(lock.LockError, match="no sha256 for x==1"):
        lock.render_lock("infra", report)


def test_pulumi_jobs_cache_pip_and_plugins_keyed_on_the_lock() -> None:
    steps = load(ACTION)["runs"]["steps"]
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["cache"] == "pip"
    assert python["with"]["cache-dependency-path"] == "requirements/infra.lock"
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.pulumi/plugins"
    assert "requirements/infra.lock" in cache["with"]["key"]
    cli = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions@"))
    assert cli["with"] == {"pulumi-version-file": ".pulumi.version"}
    install = next(s["run"] for s in steps if "run" in s)
    assert "--require-hashes" in install


def test_makefile_regenerates_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "\nlock: venv ## " in makefile
    assert "-m tools.delivery.lock" in makefile
    assert Path(lock.__file__).name == "lock.py"
