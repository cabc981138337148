"""Issue 10, item 1: every job that invokes Pulumi RUNS, step by step, in a scratch checkout.

Each job below is executed by :mod:`tests.e2e.workflows.runner`: its ``run:`` steps for real (bash
-eo pipefail, in order, with the workflow/job/step env), local composite actions expanded,
remote actions replaced by stand-ins. ``pulumi`` on PATH is :mod:`tests.e2e.workflows.fake_pulumi`,
which refuses every program-running command unless the virtualenv that ``Pulumi.yaml`` names
exists and its interpreter imports ``pulumi, pulumi_aws, pulumi_kubernetes, infra`` (and, for
``--policy-pack policy``, the one ``policy/PulumiPolicy.yaml`` names imports ``pulumi_policy``),
and records its argv. GitHub's API is a local stand-in (:mod:`tests.e2e.workflows.fake_github`).

On today's ``main`` these jobs install into setup-python's interpreter and never create
``.venv``: the first Pulumi call fails, exactly as it would on GitHub.

Time: each job takes seconds because the runner's setup-python stand-in makes virtualenvs that
see the shared one's packages (explained in :mod:`tests.e2e.workflows.runner`); the plan-diff job
runs the program under mocks 8 times and takes about a minute on a busy machine.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.workflows.fake_github import GitHubState, serve
from tests.e2e.workflows.runner import REPO, JobRun, load, run_job, scratch_checkout

WORKFLOWS = REPO / ".github" / "workflows"
PULUMI_YAML = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
POLICY_YAML = yaml.safe_load((REPO / "policy" / "PulumiPolicy.yaml").read_text())
DIGEST = "sha256:" + "d" * 64
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/torch-eks-inference@" + DIGEST
VARIABLES = {
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/ci",
    "AWS_REGION": "us-west-2",
    "PULUMI_ORG": "",
    "PULUMI_TEAM": "team-x",
    "PULUMI_BACKEND_URL": "",
    "IMAGE_REPOSITORY": "torch-eks-inference",
}
OUTPUTS = {
    "serviceUrl": "http://inference.inference-pr-7.svc.cluster.local",
    "clusterName": "torch-eks-inference-dev",
    "region": "us-west-2",
    "portForwardCommand": "kubectl -n inference-pr-7 port-forward svc/inference 8080:80",
}


def _pulumi_jobs() -> list[tuple[str, str]]:
    """Every (workflow, job) whose steps call Pulumi (the CLI, the SDK or tools.delivery)."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_id, job in load(path)["jobs"].items():
            text = yaml.safe_dump(job.get("steps", []))
            markers = ("pulumi-setup", "pulumi/actions", "pulumi ", ".venv/bin/python -m infra")
            if any(marker in text for marker in markers):
                found.append((path.stem, job_id))
    return found


def test_the_virtualenv_pulumi_uses_is_the_one_the_jobs_create() -> None:
    # Pulumi.yaml's venv is relative to the project; PulumiPolicy.yaml's to policy/.
    assert PULUMI_YAML["runtime"]["options"]["virtualenv"] == ".venv"
    policy_venv = (REPO / "policy" / POLICY_YAML["runtime"]["options"]["virtualenv"]).resolve()
    assert policy_venv == (REPO / ".venv").resolve()
    action = load(REPO / ".github" / "actions" / "pulumi-setup" / "action.yml")
    script = next(s["run"] for s in action["runs"]["steps"] if "run" in s)
    assert "python -m venv .venv" in script
    assert "--require-hashes -r requirements/infra.lock" in script


def test_every_pulumi_job_is_run_below() -> None:
    assert sorted(_pulumi_jobs()) == sorted(RUNS)


def test_pulumi_version_file_is_the_sdk_version() -> None:
    # pulumi/actions `pulumi-version-file` (pulumi/actions action.yml, commit 4ddd432):
    # "File containing the version of the Pulumi CLI to install". CLI and SDK move together.
    lock = (REPO / "requirements" / "infra.lock").read_text()
    sdk = next(
        line.split("==")[1].split()[0] for line in lock.splitlines() if line.startswith("pulumi==")
    )
    assert (REPO / ".pulumi.version").read_text().strip() == sdk
    for path in [
        *WORKFLOWS.glob("*.yml"),
        REPO / ".github" / "actions" / "pulumi-setup" / "action.yml",
    ]:
        assert "pulumi-version:" not in path.read_text(), f"{path.name}: use pulumi-version-file"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch checkout (a git repository whose HEAD is a PR's merge commit), copied per job."""
    root = scratch_checkout(tmp_path_factory.mktemp("checkout") / "repo")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]

    def run(*args: str) -> str:
        return subprocess.run(
            [*git, *args], cwd=root, check=True, capture_output=True, text=True
        ).stdout.strip()

    run("init", "-q", "-b", "main")
    run("add", "-A")
    run("commit", "-qm", "base")
    run("checkout", "-qb", "feature")
    (root / "docs" / "feature.md").write_text("the PR's change\n")
    run("add", "-A")
    run("commit", "-qm", "the PR")
    run("checkout", "-q", "main")
    (root / "docs" / "main-moved.md").write_text("main moved on after the PR was opened\n")
    run("add", "-A")
    run("commit", "-qm", "main moved")
    run("checkout", "-q", "--detach", "main")
    run("merge", "-q", "--no-ff", "-m", "Merge feature into main", "feature")
    return root


def _copy(checkout: Path, tmp: Path) -> Path:
    work = tmp / "work"
    subprocess.run(["cp", "-a", str(checkout), str(work)], check=True)
    return work


@pytest.fixture
def github() -> Iterator[tuple[GitHubState, str]]:
    state = GitHubState()
    state.pull(7, "open", ("preview-env",))
    with serve(state) as url:
        yield state, url


def _seed(tmp: Path, *stacks: str, tags: dict[str, str] | None = None) -> None:
    state = {
        "stacks": {s: {"config": {}, "tags": dict(tags or {}), "outputs": {}} for s in stacks},
        "calls": [],
        "checked": [],
    }
    (tmp / "pulumi-state.json").write_text(json.dumps(state))


def _assert_ran(run: JobRun, *expected_verbs: str) -> None:
    assert run.ok, run.log()
    verbs = [argv[0] for argv in run.pulumi_calls]
    for verb in expected_verbs:
        assert verb in verbs, f"pulumi {verb} never ran: {run.pulumi_calls}\n{run.log()}"
    assert (run.work / ".venv" / "bin" / "python").exists()
    program_calls = [a for a in run.pulumi_calls if a[0] in {"preview", "up"}]
    for argv in program_calls:
        assert "--policy-pack" in argv, f"every preview/up runs the policy pack: {argv}"


def _pull_request_event(action: str, **extra: Any) -> dict[str, Any]:
    return {
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "state": "closed" if action == "closed" else "open",
            "labels": [{"name": "preview-env"}],
            "head": {"repo": {"full_name": "o/r"}, "sha": f"{7:040d}"},
            "base": {"sha": "0" * 40},
        },
        **extra,
    }


def _run_preview_plan_diff(tmp: Path, checkout: Path, api: str) -> JobRun:
    work = _copy(checkout, tmp)
    run = run_job(
        "preview",
        "plan-diff",
        tmp=tmp,
        work=work,
        event_name="pull_request",
        event=_pull_request_event("synchronize"),
        platform_env={"GITHUB_API_URL": api},
    )
    assert run.ok, run.log()
    first_parent = subprocess.run(
        ["git", "rev-parse", "HEAD^1"], cwd=work, capture_output=True, text=True, check=True
    ).stdout.strip()
    stale_base = subprocess.run(
        ["git", "rev-parse", "HEAD^1^"], cwd=work, capture_output=True, text=True, check=True
    ).stdout.strip()
    markdown = (run.artifacts / "plan-diff" / "dev.md").read_text()
    # The base is the merge commit's first parent: main as the PR merges into it now.
    assert first_parent in markdown, markdown[:500]
    assert stale_base not in markdown
    assert sorted(p.name for p in (run.artifacts / "plan-diff").iterdir()) == [
        "dev.md",
        "pr-123.md",
        "pr-number",
        "prod.md",
        "staging.md",
    ]
    return run


def _run_preview(tmp: Path, checkout: Path, api: str) -> JobRun:
    _seed(tmp, "dev", "staging")
    run = run_job(
        "preview",
        "preview",
        tmp=tmp,
        work=_copy(checkout, tmp),
        event_name="pull_request",
        event=_pull_request_event("synchronize"),
        variables=VARIABLES,
        matrix={"stack": "dev"},
        platform_env={"GITHUB_API_URL": api},
    )
    _assert_ran(run, "preview")
    return run


def _run_ephemeral_up(tmp: Path, checkout: Path, api: str) -> JobRun:
    run = run_job(
        "ephemeral",
        "up",
        tmp=tmp,
        work=_copy(checkout, tmp),
        event_name="pull_request",
        event=_pull_request_event("labeled", label={"name": "preview-env"}),
        variables=VARIABLES,
        platform_env={"GITHUB_API_URL": api, "FAKE_PULUMI_OUTPUTS": json.dumps(OUTPUTS)},
    )
    _assert_ran(run, "up")
    assert "pr-7" in run.pulumi_state["stacks"]
    return run


def _run_ephemeral_down(tmp: Path, checkout: Path, api: str) -> JobRun:
    _seed(tmp, "pr-7")
    run = run_job(
        "ephemeral",
        "down",
        tmp=tmp,
        work=_copy(checkout, tmp),
        event_name="pull_request",
        event=_pull_request_event("closed"),
        variables=VARIABLES,
        platform_env={"GITHUB_API_URL": api},
    )
    _assert_ran(run, "destroy")
    assert run.pulumi_state["stacks"] == {}
    return run


def _run_sweep_list(tmp: Path, checkout: Path, api: str) -> JobRun:
    _seed(tmp, "pr-7", "dev", tags={"expires-at": "2020-01-01T00:00:00Z"})
    run = run_job(
        "sweep",
        "list",
        tmp=tmp,
        work=_copy(checkout, tmp),
        event_name="schedule",
        event={},
        variables=VARIABLES,
        platform_env={"GITHUB_API_URL": api},
    )
    assert run.ok, run.log()
    assert run.outputs["prs"] == "[7]"
    assert set(run.pulumi_state["stacks"]) == {"pr-7", "dev"}, "listing deletes nothing"
    return run


def _run_sweep_destroy(tmp: Path, checkout: Path, api: str) -> JobRun:
    _seed(tmp, "pr-7", tags={"expires-at": "2020-01-01T00:00:00Z"})
    run = run_job(
        "sweep",
        "destroy",
        tmp=tmp,
        work=_copy(checkout, tmp),
        event_name="schedule",
        event={},
        variables=VARIABLES,
        matrix={"pr": 7},
        needs={"list": {"outputs": {"prs": "[7]"}, "result": "success"}},
        platform_env={"GITHUB_API_URL": api},
    )
    _assert_ran(run, "destroy")
    assert run.pulumi_state["stacks"] == {}
    return run


def _run_prod_plan(tmp: Path, checkout: Path, api: str) -> JobRun:
    _seed(tmp, "prod")
    needs = {
        "gate": {"outputs": {"sha": "a" * 40}},
        "staging": {"outputs": {"verified-image": IMAGE}},
    }
    run = run_job(
        "deploy",
        "prod-plan",
        tmp=tmp,
        work=_copy(checkout, tmp),
        event_name="workflow_run",
        event={"workflow_run": {"conclusion": "success"}},
        variables=VARIABLES,
        needs=needs,
        platform_env={"GITHUB_API_URL": api},
    )
    _assert_ran(run, "preview")
    preview = next(a for a in run.pulumi_calls if a[0] == "preview")
    assert "--refresh" in preview
    assert "--save-plan" in preview
    assert run.pulumi_state["stacks"]["prod"]["config"]["torch-eks-inference:imageRef"] == IMAGE
    assert "--policy-pack-config" in preview
    assert (run.artifacts / "prod-plan" / "prod.json").is_file(), "the plan travels to `prod`"
    assert "Saved update plan" in run.summary, "the approver reads the plan's summary"
    return run


def _run_deploy_stack(tmp: Path, checkout: Path, api: str) -> JobRun:
    if not (REPO / "tools" / "delivery" / "deploy.py").exists():
        pytest.skip("tools/delivery/deploy.py (branch `promote`) is not merged yet")
    _seed(tmp, "dev")
    inputs = {
        "stack": "dev", "environment": "dev", "sha": "a" * 40, "image": IMAGE, "plan-artifact": "",
    }  # fmt: skip
    run = run_job(
        "deploy-stack", "up", tmp=tmp, work=_copy(checkout, tmp), event_name="workflow_run",
        event={}, variables=VARIABLES, inputs=inputs,
        platform_env={"GITHUB_API_URL": api, "FAKE_PULUMI_OUTPUTS": json.dumps(OUTPUTS)},
    )  # fmt: skip
    # The update must reach Pulumi with the project's venv. What follows it, the smoke test
    # against the deployed service, cannot pass against this fake (there is no service), so
    # the job's own outcome is not asserted here; tools/delivery/deploy.py's tests cover it.
    assert [argv[0] for argv in run.pulumi_calls].count("up") >= 1, run.log()
    assert run.pulumi_state["checked"], "the fake checked the venv before the update"
    assert "virtualenv" not in run.log(), run.log()
    up = next(argv for argv in run.pulumi_calls if argv[0] == "up")
    assert "--policy-pack" in up
    return run


RUNS = {
    ("preview", "plan-diff"): _run_preview_plan_diff,
    ("preview", "preview"): _run_preview,
    ("ephemeral", "up"): _run_ephemeral_up,
    ("ephemeral", "down"): _run_ephemeral_down,
    ("sweep", "list"): _run_sweep_list,
    ("sweep", "destroy"): _run_sweep_destroy,
    ("deploy", "prod-plan"): _run_prod_plan,
    ("deploy-stack", "up"): _run_deploy_stack,
}


@pytest.mark.slow
@pytest.mark.parametrize("job", sorted(RUNS), ids=lambda j: f"{j[0]}.{j[1]}")
def test_the_job_runs_with_the_virtualenv_pulumi_needs(
    job: tuple[str, str], tmp_path: Path, checkout: Path, github: tuple[GitHubState, str]
) -> None:
    RUNS[job](tmp_path, checkout, github[1])


def test_a_job_without_the_virtualenv_fails_at_its_first_pulumi_call(
    tmp_path: Path, checkout: Path, github: tuple[GitHubState, str]
) -> None:
    """What makes the runs above able to fail: a job that fills some other virtualenv.

    The job still works up to Pulumi (its own commands run with the venv it made), and the fake
    CLI then refuses the program, as the real language host would run it in the venv
    Pulumi.yaml names, which does not exist.
    """
    work = _copy(checkout, tmp_path)
    for relative in (".github/actions/pulumi-setup/action.yml", ".github/workflows/ephemeral.yml"):
        path = work / relative
        path.write_text(path.read_text().replace(".venv", ".venv-ci"))
    _seed(tmp_path, "pr-7")
    run = run_job(
        "ephemeral", "down", tmp=tmp_path, work=work, event_name="pull_request",
        event=_pull_request_event("closed"), variables=VARIABLES,
        platform_env={"GITHUB_API_URL": github[1]},
    )  # fmt: skip
    assert not run.ok
    assert "the job did not create it before calling pulumi" in run.log(), run.log()
    assert "pr-7" in run.pulumi_state["stacks"], "nothing was destroyed"


# --- the privileged, standard-library-only jobs, run with the runner image's own python3 ---


@pytest.mark.parametrize(("ci", "ok"), [("success", True), ("failure", False), (None, False)])
def test_deploy_gate_job_passes_only_when_ci_passed_for_the_commit(
    tmp_path: Path, checkout: Path, ci: str | None, ok: bool
) -> None:
    state = GitHubState()
    sha = "c" * 40
    if ci is not None:
        state.ci_runs.append(
            {"path": ".github/workflows/ci.yml", "head_sha": sha, "head_branch": "main",
             "event": "push", "conclusion": ci}
        )  # fmt: skip
    event = {"workflow_run": {"head_sha": sha, "conclusion": "success"}}
    with serve(state) as api:
        run = run_job(
            "deploy", "gate", tmp=tmp_path, work=_copy(checkout, tmp_path),
            event_name="workflow_run", event=event, platform_env={"GITHUB_API_URL": api},
        )  # fmt: skip
    assert run.ok is ok, run.log()
    if ok:
        assert run.outputs["sha"] == sha
    query = next(path for method, path in state.requests if "/actions/workflows/" in path)
    assert query.startswith("/actions/workflows/ci.yml/runs")


def test_fork_commenter_job_posts_the_artifact_without_installing_anything(
    tmp_path: Path, checkout: Path
) -> None:
    artifacts = tmp_path / "artifacts" / "plan-diff"
    artifacts.mkdir(parents=True)
    (artifacts / "pr-number").write_text("7\n")
    (artifacts / "dev.md").write_text("### Offline plan diff of dev\n")
    state = GitHubState()
    state.pull(7)
    event = {"workflow_run": {"event": "pull_request", "conclusion": "success",
                              "head_sha": f"{7:040d}", "id": 99}}  # fmt: skip
    with serve(state) as api:
        run = run_job(
            "plan-diff-comment", "comment", tmp=tmp_path, work=_copy(checkout, tmp_path),
            event_name="workflow_run", event=event, platform_env={"GITHUB_API_URL": api},
            artifacts=tmp_path / "artifacts",
        )  # fmt: skip
    assert run.ok, run.log()
    assert not (run.work / ".venv").exists()
    (comment,) = state.comments.values()
    assert comment["body"].startswith("<!-- torch-eks-inference:plan-diff:dev -->")
