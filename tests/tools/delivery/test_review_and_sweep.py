"""Issue 10 items 6, 7 and 9 on the delivery code: what each would get wrong on a real platform.

- Comments: only the workflow's bot's own comments are edited (a user can paste the marker).
- Preview: policy findings come from the engine's structured events; a prod plan is saved with
  refresh and the promoted image.
- Ephemeral ``up``: acts on the PR as it is now (closed or unlabelled since the event: nothing),
  comments a failure, and tells how to reach the service.
- Sweeper: one fully qualified name from first read to destroy, a re-read just before
  destroying, stacks that vanish mid-sweep, and PRs closed without their teardown.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.tools.delivery.fakes import FakeBackend, command_error
from tests.tools.delivery.test_comments import FakeGitHubApi, github
from tools.delivery.cli import Env, main
from tools.delivery.commenter import main as commenter_main
from tools.delivery.expiry import Action
from tools.delivery.pr_comment import CommentError, GitHub, marker, urllib_transport
from tools.delivery.sweeper import fully_qualified, sweep

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAST, FUTURE = "2026-11-24T12:00:00Z", "2026-11-26T12:00:00Z"


def _env(backend: FakeBackend, api: FakeGitHubApi, out: list[str], **environ: str) -> Env:
    return Env(
        pulumi=backend.pulumi,
        github=lambda: github(api),
        now=lambda: NOW,
        out=out.append,
        environ={"GITHUB_TOKEN": "t", **environ},
    )


# --- item 7: the commenter edits only its own comments ---------------------------------------


def test_a_users_comment_carrying_the_marker_is_never_edited() -> None:
    api = FakeGitHubApi()
    forged = {"login": "mallory", "type": "User"}
    api.comments[1] = {"id": 1, "body": marker("preview:dev") + "\ntrust me", "user": forged}
    assert github(api).upsert_comment(1, "preview:dev", "real preview") == "created"
    assert api.comments[1]["body"].endswith("trust me"), "the user's comment is untouched"
    assert api.comments[2]["body"].endswith("real preview")
    # A second push edits the bot's comment, still not the user's.
    assert github(api).upsert_comment(1, "preview:dev", "second") == "updated"
    assert api.comments[2]["body"].endswith("second")
    assert api.comments[1]["body"].endswith("trust me")


def test_a_github_app_that_is_not_the_actions_bot_is_not_us() -> None:
    api = FakeGitHubApi()
    other_bot = {"login": "renovate[bot]", "type": "Bot"}
    api.comments[1] = {"id": 1, "body": marker("plan-diff:dev") + "\nx", "user": other_bot}
    assert github(api).upsert_comment(1, "plan-diff:dev", "y") == "created"


def test_token_goes_over_https_or_to_this_machine_only() -> None:
    send = urllib_transport("t")
    with pytest.raises(CommentError, match="non-HTTPS"):
        send("GET", "http://api.github.com/repos/o/r", None)
    with pytest.raises(CommentError, match="non-HTTPS"):
        send("GET", "http://127.0.0.1.evil.example/x", None)


# --- item 9: the privileged commenter loads nothing beyond the standard library ---------------


def test_commenter_imports_only_the_standard_library() -> None:
    """Run it as plan-diff-comment.yml does: ``-S`` (no site-packages) and ``-E``.

    Under ``-S`` a third-party import cannot load at all; the subprocess also lists every module
    it loaded that is neither standard library nor this repository's.
    """
    code = (
        "import runpy, sys\n"
        "sys.argv = ['commenter', '--help']\n"
        "try:\n"
        "    runpy.run_module('tools.delivery.commenter', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "ours = {'tools', '__main__'}\n"
        "print(sorted(r for r in roots if r not in sys.stdlib_module_names and r not in ours))\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-E", "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "--expect-head-sha" in result.stdout


def test_commenter_posts_each_stack_and_ignores_forged_files(tmp_path: Path) -> None:
    (tmp_path / "pr-number").write_text("1\n")
    (tmp_path / "dev.md").write_text("### dev diff\n")
    (tmp_path / "prod.md").write_text("### prod diff\n")
    (tmp_path / "../../etc.md").resolve()  # names outside the pattern are never read
    (tmp_path / "evil key!.md").write_text("x")
    api = FakeGitHubApi(head_sha="abc")
    assert (
        commenter_main(["--artifact", str(tmp_path), "--expect-head-sha", "abc"], github(api)) == 0
    )
    bodies = sorted(c["body"].splitlines()[0] for c in api.comments.values())
    assert bodies == [marker("plan-diff:dev"), marker("plan-diff:prod")]
    api2 = FakeGitHubApi(head_sha="newer")
    assert (
        commenter_main(["--artifact", str(tmp_path), "--expect-head-sha", "abc"], github(api2)) == 0
    )
    assert not api2.comments, "a newer push's own run comments; this one posts nothing"


# --- item 9: policy results from structured events ----------------------------------------


POLICY_EVENT = {
    "resourceUrn": "urn:pulumi:prod::torch-eks-inference::aws:ecr/repository:Repository::images",
    "message": "repository tags must be immutable",
    "color": "never",
    "policyName": "ecr-immutable-tags",
    "policyPackName": "torch-eks-inference-policies",
    "policyPackVersion": "0.1.0",
    "policyPackVersionTag": "0.1.0",
    "enforcementLevel": "mandatory",
}


def test_preview_reports_policy_events_even_when_the_text_has_no_policies_block(
    tmp_path: Path,
) -> None:
    backend = FakeBackend(
        preview_lines=["Previewing update (prod):", "Resources:", "    40 unchanged"],
        policy_events=[POLICY_EVENT, {**POLICY_EVENT, "enforcementLevel": "warning"}],
        fail_preview="error: preview failed due to mandatory policy violations",
    )
    backend.add("prod")
    api, out = FakeGitHubApi(), []
    argv = ["preview", "--stack", "prod", "--out", str(tmp_path), "--pr", "1"]
    assert main(argv, _env(backend, api, out)) == 1
    body = next(iter(api.comments.values()))["body"]
    row = "| mandatory | `ecr-immutable-tags` | `images` | repository tags must be immutable |"
    assert row in body
    assert body.index("| mandatory |") < body.index("| advisory |")


def test_prod_plan_preview_refreshes_pins_the_image_and_saves_the_plan(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.add("prod")
    image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/torch-eks-inference@sha256:" + "a" * 64
    plan = tmp_path / "plan" / "prod.json"
    summary = tmp_path / "summary.md"
    argv = ["preview", "--stack", "prod", "--out", str(tmp_path), "--image", image, "--refresh"]
    out: list[str] = []
    env = _env(backend, FakeGitHubApi(), out, GITHUB_STEP_SUMMARY=str(summary))
    assert main([*argv, "--save-plan", str(plan)], env) == 0
    assert ("set_config", "prod", "torch-eks-inference:imageRef", image) in backend.calls
    assert ("preview-options", "prod", "refresh=True", str(plan)) in backend.calls
    # The pack's promotion rule learns the digest prod may run (staging's) from its config.
    (config,) = [json.loads(c[2]) for c in backend.calls if c[0] == "policy-pack-config"]
    assert config == {
        "prod-image-promoted-from-staging": {"stagingImageDigest": "sha256:" + "a" * 64}
    }
    set_at = backend.calls.index(("set_config", "prod", "torch-eks-inference:imageRef", image))
    assert set_at < next(i for i, c in enumerate(backend.calls) if c[0] == "preview")
    assert "Saved update plan: `prod.json`" in summary.read_text(), "the approver sees it"


def test_a_pr_preview_keeps_the_image_each_stack_runs_now(tmp_path: Path) -> None:
    running = "123456789012.dkr.ecr.us-west-2.amazonaws.com/x@sha256:" + "b" * 64
    backend = FakeBackend()
    backend.add("dev")
    backend.stacks["dev"]["outputs"]["imageRef"] = auto.OutputValue(running, False)
    backend.add("staging")  # never deployed: no output, so nothing is set
    for stack in ("dev", "staging"):
        argv = ["preview", "--stack", stack, "--out", str(tmp_path)]
        assert main(argv, _env(backend, FakeGitHubApi(), [])) == 0
    sets = [c for c in backend.calls if c[0] == "set_config"]
    assert sets == [("set_config", "dev", "torch-eks-inference:imageRef", running)]
    assert not [c for c in backend.calls if c[0] == "policy-pack-config"]


def test_promotion_config_names_what_the_policy_pack_reads() -> None:
    """The pack's promotion rule (policy/guardrails/promotion.py) and the deploy step's image key.

    Both live on another branch until merged; once present, their constants must match ours.
    """
    from tools.delivery import preview

    rule = REPO / "policy" / "guardrails" / "promotion.py"
    deploy = REPO / "tools" / "delivery" / "deploy.py"
    if not rule.exists() or not deploy.exists():
        pytest.skip("policy/guardrails/promotion.py or tools/delivery/deploy.py not merged yet")
    text = rule.read_text()
    assert f'POLICY_NAME = "{preview.PROMOTION_POLICY}"' in text
    assert f'CONFIG_KEY = "{preview.PROMOTION_CONFIG_KEY}"' in text
    key = preview.IMAGE_CONFIG_KEY.split(":", 1)[1]
    assert f':{key}"' in deploy.read_text()


@pytest.mark.parametrize("image", ["repo:latest", "r/x@sha256:abc", "R/X@sha256:" + "a" * 64])
def test_a_plan_refuses_an_image_that_is_not_a_digest(tmp_path: Path, image: str) -> None:
    backend = FakeBackend()
    backend.add("prod")
    argv = ["preview", "--stack", "prod", "--out", str(tmp_path), "--image", image]
    assert main(argv, _env(backend, FakeGitHubApi(), [])) == 2
    assert not [c for c in backend.calls if c[0] in {"set_config", "preview"}]


# --- item 6: ephemeral up acts on the PR as it is now ------------------------------------


@pytest.fixture
def no_stack_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tools.delivery.ephemeral.write_stack_config", lambda *a: None)


UP = ["ephemeral", "up", "--pr", "1", "--comment", "--require-open-label", "preview-env"]


@pytest.mark.usefixtures("no_stack_files")
@pytest.mark.parametrize(("state", "labels"), [("closed", ["preview-env"]), ("open", ["x"])])
def test_up_does_nothing_for_a_pr_closed_or_unlabelled_since_the_event(
    state: str, labels: list[str]
) -> None:
    backend, api, out = FakeBackend(), FakeGitHubApi(), []
    api.state, api.labels = state, [{"name": n} for n in labels]
    assert main(UP, _env(backend, api, out)) == 0
    assert backend.stacks == {}
    assert not api.comments
    assert "skipped up of pr-1" in out[-1]


@pytest.mark.usefixtures("no_stack_files")
def test_a_failed_up_comments_on_the_pr_and_fails_the_job() -> None:
    class Failing(FakeBackend):
        pass

    backend, api, out = Failing(), FakeGitHubApi(), []

    def fail_up(call: tuple[str, ...]) -> None:
        if call[0] == "up":
            raise command_error("error: creating Deployment: quota exceeded")

    backend.hook = fail_up
    env = _env(backend, api, out, GITHUB_REPOSITORY="o/r", GITHUB_RUN_ID="7")
    assert main(UP, env) == 1
    body = next(iter(api.comments.values()))["body"]
    assert "update failed" in body
    assert "quota exceeded" in body
    assert "https://github.com/o/r/actions/runs/7" in body


@pytest.mark.usefixtures("no_stack_files")
def test_the_comment_gives_the_exact_commands_to_reach_the_service() -> None:
    outputs = {
        "serviceUrl": "http://inference.inference-pr-1.svc.cluster.local",
        "clusterName": "torch-eks-inference-dev",
        "region": "us-west-2",
        "portForwardCommand": "kubectl -n inference-pr-1 port-forward svc/inference 8080:80",
    }
    backend = FakeBackend(up_outputs={k: auto.OutputValue(v, False) for k, v in outputs.items()})
    api, out = FakeGitHubApi(), []
    assert main(UP, _env(backend, api, out)) == 0
    body = next(iter(api.comments.values()))["body"]
    commands = body.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert commands == [
        "aws eks update-kubeconfig --name torch-eks-inference-dev --region us-west-2",
        "kubectl -n inference-pr-1 port-forward svc/inference 8080:80 &",
        "curl -s localhost:8080/v2/health/ready",
    ]


# --- item 6: the sweeper ----------------------------------------------------------------


def _org_backend() -> FakeBackend:
    """Pulumi Cloud: stacks are org/project/name; the listing shows the short name."""
    backend = FakeBackend(canonical=lambda name: fully_qualified(name, "acme"))
    backend.add("acme/torch-eks-inference/pr-1", tag=PAST)
    backend.stacks["acme/torch-eks-inference/pr-1"]["listed_as"] = "pr-1"
    return backend


def test_sweeper_reads_rereads_and_destroys_one_fully_qualified_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULUMI_ORG", "acme")
    backend = _org_backend()
    report = sweep(backend.pulumi(), NOW, dry_run=False, on_output=lambda _: None, log=print)
    assert report.deleted == ["acme/torch-eks-inference/pr-1"]
    names = {c[1] for c in backend.calls if c[0] != "remove_stack"}
    names |= {c[1] for c in backend.calls if c[0] == "remove_stack"}
    assert names == {"acme/torch-eks-inference/pr-1"}
    reads = [c for c in backend.calls if c[0] == "get_tag"]
    assert len(reads) == 2, "read, then read again just before destroying"
    assert backend.stacks == {}


def test_a_push_between_read_and_destroy_keeps_the_stack() -> None:
    backend = FakeBackend()
    backend.add("pr-1", tag=PAST)
    reads = []

    def push_after_first_read(call: tuple[str, ...]) -> None:
        if call[0] == "get_tag":
            reads.append(call)
            if len(reads) == 2:  # the ephemeral up of a new push moved the expiry meanwhile
                backend.stacks["pr-1"]["tags"]["expires-at"] = FUTURE

    backend.hook = push_after_first_read
    report = sweep(backend.pulumi(), NOW, dry_run=False, on_output=lambda _: None, log=print)
    assert report.deleted == []
    assert "pr-1" in backend.stacks
    assert report.decisions[-1].reason.startswith("re-read: expires at")


def test_a_stack_that_vanishes_mid_sweep_does_not_abort_the_sweep() -> None:
    backend = FakeBackend()
    for name in ("pr-1", "pr-2", "pr-3"):
        backend.add(name, tag=PAST)

    def teardown_wins(call: tuple[str, ...]) -> None:
        if call == ("select", "pr-1"):
            backend.stacks.pop("pr-1", None)  # its PR's own `down` removed it just now
        if call[:2] == ("destroy", "pr-2"):
            backend.stacks.pop("pr-2", None)

    backend.hook = teardown_wins
    report = sweep(backend.pulumi(), NOW, dry_run=False, on_output=lambda _: None, log=print)
    assert report.ok, report.failed
    assert report.deleted == ["pr-3"]
    reasons = {d.stack: d.reason for d in report.decisions}
    assert "vanished" in reasons["pr-1"]
    assert backend.stacks == {}


def test_sweeper_destroys_the_stack_of_a_closed_pr_before_its_expiry() -> None:
    backend = FakeBackend()
    backend.add("pr-1", tag=FUTURE)
    backend.add("pr-2", tag=FUTURE)
    closed = {1}

    def pull(number: int) -> object:
        from tools.delivery.pr_comment import PullRequest

        return PullRequest(number, "closed" if number in closed else "open", (), "sha")

    report = sweep(
        backend.pulumi(), NOW, dry_run=False, pulls=pull, on_output=lambda _: None, log=print
    )  # type: ignore[arg-type]
    assert report.deleted == ["pr-1"]
    assert {d.stack: d.action for d in report.decisions}["pr-2"] is Action.KEEP


def test_sweep_list_json_then_one_pr(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.add("pr-1", tag=PAST)
    backend.add("pr-2", tag=FUTURE)
    backend.add("pr-3", tag=PAST)
    api, out = FakeGitHubApi(), []
    outputs = tmp_path / "out"
    env = _env(backend, api, out, GITHUB_OUTPUT=str(outputs))
    assert main(["sweep", "--list-json"], env) == 0
    assert outputs.read_text() == "prs=[1, 3]\n"
    assert len(backend.stacks) == 3
    assert main(["sweep", "--pr", "3"], env) == 0
    assert sorted(backend.stacks) == ["pr-1", "pr-2"]
    assert json.loads(outputs.read_text().split("=", 1)[1]) == [1, 3]


def test_github_pull_request_reads_state_labels_and_head() -> None:
    api = FakeGitHubApi(head_sha="abc")
    api.state = "closed"
    pull = GitHub("o/r", api).pull_request(1)
    assert (pull.open, pull.labels, pull.head_sha) == (False, ("preview-env",), "abc")


# --- item 4: the deploy gate ------------------------------------------------------------


def _runs_api(runs: list[dict[str, str]]) -> GitHub:
    def transport(method: str, url: str, body: object) -> tuple[int, object]:
        query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
        found = [r for r in runs if r["head_sha"] == query["head_sha"]]
        found = [r for r in found if r["conclusion"] == query["status"]]
        found = [r for r in found if r["head_branch"] == query["branch"]]
        found = [r for r in found if r["event"] == query["event"]]
        return 200, {"total_count": len(found), "workflow_runs": found}

    return GitHub("o/r", transport)


def test_gate_passes_only_a_green_push_run_of_main_for_that_commit() -> None:
    from tools.delivery.gate import ci_passed
    from tools.delivery.gate import main as gate_main

    sha = "b" * 40
    green = {"head_sha": sha, "conclusion": "success", "head_branch": "main", "event": "push"}
    assert ci_passed(_runs_api([green]), sha, "ci.yml", "main")
    for change in ({"conclusion": "failure"}, {"head_branch": "x"}, {"event": "pull_request"}):
        assert not ci_passed(_runs_api([{**green, **change}]), sha, "ci.yml", "main"), change
    assert not ci_passed(_runs_api([green]), "c" * 40, "ci.yml", "main")
    assert gate_main(["--sha", "HEAD"], _runs_api([green])) == 2, "a SHA, not a revision name"
    assert gate_main(["--sha", sha, "--workflow", "../x"], _runs_api([green])) == 2
    assert gate_main(["--sha", sha], _runs_api([])) == 1
