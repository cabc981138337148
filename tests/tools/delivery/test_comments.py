"""PR comments (edited in place, trimmed summary-first), preview rendering and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from tests.tools.delivery.fakes import FakeBackend
from tools.delivery.cli import Env, main
from tools.delivery.pr_comment import (
    MAX_COMMENT_CHARS,
    CommentError,
    GitHub,
    fit_detail,
    marker,
    parse_pr_number,
)
from tools.delivery.preview import PolicyFinding, PreviewOutcome, render_preview_comment


class FakeGitHubApi:
    """Issue comments and pull requests of one repository, served like the REST API."""

    def __init__(self, head_sha: str = "abc") -> None:
        self.comments: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.head_sha = head_sha
        self.state = "open"
        self.labels = [{"name": "preview-env"}]

    def __call__(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        path = url.removeprefix("https://api.github.com/repos/o/r")
        self.requests.append((method, path.split("?")[0]))
        if method == "GET" and path.startswith("/pulls/"):
            return 200, {"state": self.state, "labels": self.labels, "head": {"sha": self.head_sha}}
        if method == "GET" and path.startswith("/issues/1/comments"):
            page = int(path.rsplit("page=", 1)[1])
            items = list(self.comments.values())[(page - 1) * 100 : page * 100]
            return 200, items
        if method == "POST" and path == "/issues/1/comments":
            number = len(self.comments) + 1
            # Comments made with a workflow's GITHUB_TOKEN are authored by the Actions bot.
            user = {"login": "github-actions[bot]", "type": "Bot"}
            self.comments[number] = {"id": number, "body": body["body"], "user": user}
            return 201, self.comments[number]
        if method == "PATCH" and path.startswith("/issues/comments/"):
            self.comments[int(path.rsplit("/", 1)[1])]["body"] = body["body"]
            return 200, {}
        return 404, {"message": "Not Found"}


def github(api: FakeGitHubApi) -> GitHub:
    return GitHub("o/r", api)


def test_second_post_with_same_key_edits_the_first_comment() -> None:
    api = FakeGitHubApi()
    assert github(api).upsert_comment(1, "preview:dev", "first") == "created"
    assert github(api).upsert_comment(1, "preview:prod", "other stack") == "created"
    assert github(api).upsert_comment(1, "preview:dev", "second") == "updated"
    assert [c["body"].splitlines()[-1] for c in api.comments.values()] == [
        "second",
        "other stack",
    ]


def test_marker_is_found_beyond_the_first_page() -> None:
    api = FakeGitHubApi()
    for index in range(150):
        api.comments[index + 1] = {"id": index + 1, "body": f"chatter {index}"}
    bot = {"login": "github-actions[bot]", "type": "Bot"}
    api.comments[151] = {"id": 151, "body": marker("plan-diff:dev") + "\nold", "user": bot}
    assert github(api).upsert_comment(1, "plan-diff:dev", "new") == "updated"
    assert api.comments[151]["body"].endswith("new")
    assert len(api.comments) == 151


def test_api_errors_and_bad_keys_are_named() -> None:
    api = FakeGitHubApi()
    with pytest.raises(CommentError, match=r"GET /issues/2/comments.* answered 404: Not Found"):
        github(api).upsert_comment(2, "preview:dev", "x")
    with pytest.raises(CommentError, match="comment key"):
        marker("Bad Key!")
    with pytest.raises(CommentError, match="fit it"):
        github(api).upsert_comment(1, "k", "x" * MAX_COMMENT_CHARS)


def test_fit_detail_keeps_summary_and_cuts_detail_at_a_line() -> None:
    detail = "".join(f"line {n}\n" for n in range(20_000))
    kept = fit_detail("S" * 1000, detail, reserve=500)
    assert 1000 + len(kept) + 500 <= MAX_COMMENT_CHARS
    assert kept.startswith("line 0\nline 1\n")
    last_full = kept.splitlines()[-2]
    cut = int(kept.rsplit("... ", 1)[1].split()[0])
    assert int(last_full.split()[1]) + 1 + cut == 20_000
    assert fit_detail("s", "short\n", reserve=10) == "short\n"
    with pytest.raises(CommentError, match="summary alone"):
        fit_detail("S" * MAX_COMMENT_CHARS, "x", reserve=0)


@pytest.mark.parametrize("text", ["", "12a", "-3", "0", "1e5", "9" * 12, "$(rm -rf /)"])
def test_pr_number_from_untrusted_file_must_be_digits(text: str) -> None:
    with pytest.raises(CommentError, match="not a pull request number"):
        parse_pr_number(text)
    assert parse_pr_number(" 42\n") == 42


PREVIEW_TEXT = """Previewing update (dev):
  pulumi:pulumi:Stack: (same)
    ~ aws:ec2/launchTemplate:LaunchTemplate: (update)
        [urn=urn:pulumi:dev::torch-eks-inference::aws:ec2/launchTemplate:LaunchTemplate::gpu]
      ~ instanceType: "g5.xlarge" => "g6.xlarge"
Policies:
    ✅ torch-eks-inference-policies@v0.1.0 (local: policy)
        - [advisory]  [severity: low]  cost-tags  (aws:ec2/launchTemplate:LaunchTemplate: gpu)
          resource lacks cost tags: cost-center
Resources:
    ~ 1 to update
    40 unchanged
"""


def test_preview_comment_puts_summary_and_policies_before_the_diff() -> None:
    finding = PolicyFinding("advisory", "cost-tags", "gpu", "resource lacks cost tags")
    outcome = PreviewOutcome("dev", PREVIEW_TEXT, {"update": 1, "same": 40}, findings=(finding,))
    body = render_preview_comment(outcome, "Full output: artifact `preview-dev`.")
    assert body.index("| 0 | 1 | 0 | 0 | 40 |") < body.index("cost-tags") < body.index("```diff")
    assert "| advisory | `cost-tags` | `gpu` | resource lacks cost tags |" in body
    assert body.rstrip().endswith("Full output: artifact `preview-dev`.")


def test_long_preview_is_trimmed_below_the_limit_with_summary_intact() -> None:
    text = PREVIEW_TEXT + "".join(f"    + resource-{n}: (create)\n" for n in range(10_000))
    body = render_preview_comment(PreviewOutcome("prod", text, {"create": 10_000}), "see artifact")
    assert len(marker("preview:prod")) + 1 + len(body) <= MAX_COMMENT_CHARS
    assert "| 10000 | 0 | 0 | 0 | 0 |" in body
    assert "more lines cut" in body
    assert body.count("```") % 2 == 0


def _env(backend: FakeBackend, api: FakeGitHubApi, out: list[str], **environ: str) -> Env:
    return Env(
        pulumi=backend.pulumi,
        github=lambda: github(api),
        now=lambda: datetime(2026, 11, 25, 12, tzinfo=UTC),
        out=out.append,
        environ=dict(environ),
    )


def test_cli_preview_writes_full_output_and_comments(tmp_path: Path) -> None:
    backend = FakeBackend(preview_lines=PREVIEW_TEXT.splitlines())
    backend.add("dev")
    api, out = FakeGitHubApi(), []
    argv = ["preview", "--stack", "dev", "--out", str(tmp_path), "--pr", "1"]
    assert main(argv, _env(backend, api, out)) == 0
    assert ("preview", "dev", "diff=True", str(Path("policy").resolve())) in backend.calls
    assert (tmp_path / "preview-dev.txt").read_text().startswith("Previewing update (dev):")
    (comment,) = api.comments.values()
    assert comment["body"].startswith(marker("preview:dev"))


def test_cli_preview_failure_is_exit_1_with_the_error_in_the_comment(tmp_path: Path) -> None:
    backend = FakeBackend(fail_preview="error: preview failed due to mandatory policy violations")
    backend.add("prod")
    api, out = FakeGitHubApi(), []
    argv = ["preview", "--stack", "prod", "--out", str(tmp_path), "--pr", "1"]
    assert main(argv, _env(backend, api, out)) == 1
    assert "mandatory policy violations" in next(iter(api.comments.values()))["body"]


def test_cli_ephemeral_up_down_and_comment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend(up_outputs={"serviceUrl": auto.OutputValue("http://x", False)})
    api, out = FakeGitHubApi(), []
    outputs = tmp_path / "github_output"
    env = _env(backend, api, out, GITHUB_OUTPUT=str(outputs), EPHEMERAL_CLUSTER_STACK="acme/p/dev")
    written: list[str] = []  # the repository's own stacks/ folder must stay untouched
    monkeypatch.setattr(
        "tools.delivery.ephemeral.write_stack_config", lambda *a: written.append(a[1])
    )
    assert main(["ephemeral", "up", "--pr", "1", "--comment"], env) == 0
    assert outputs.read_text() == "service-url=http://x\n"
    assert written == ["pr-1"]
    assert backend.stacks["pr-1"]["config"]["torch-eks-inference:clusterStack"] == "acme/p/dev"
    assert main(["ephemeral", "down", "--pr", "1", "--comment"], env) == 0
    assert main(["ephemeral", "down", "--pr", "1"], env) == 0
    (comment,) = api.comments.values()
    assert "Destroyed and removed." in comment["body"]
    assert "Nothing to tear down" in out[-1]
    assert main(["ephemeral", "up", "--pr", "0"], env) == 2


def test_cli_sweep_dry_run_writes_the_step_summary(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.add("pr-1", tag="2026-01-01T00:00:00Z")
    backend.add("prod")
    summary, out = tmp_path / "summary.md", []
    env = _env(backend, FakeGitHubApi(), out, GITHUB_STEP_SUMMARY=str(summary))
    assert main(["sweep", "--dry-run"], env) == 0
    assert "WOULD DELETE pr-1" in summary.read_text()
    assert "pr-1" in backend.stacks


def test_cli_comment_from_fork_artifact_checks_the_head(tmp_path: Path) -> None:
    body, number = tmp_path / "dev.md", tmp_path / "pr-number"
    body.write_text("### Offline plan diff\n")
    number.write_text("1\n")
    api, out = FakeGitHubApi(head_sha="abc"), []
    base = ["comment", "--key", "plan-diff:dev", "--body-file", str(body)]
    env = _env(FakeBackend(), api, out)
    assert main([*base, "--pr-file", str(number), "--expect-head-sha", "zzz"], env) == 0
    assert not api.comments
    assert "skipped" in out[-1]
    assert main([*base, "--pr-file", str(number), "--expect-head-sha", "abc"], env) == 0
    assert json.dumps(list(api.comments.values())).count("Offline plan diff") == 1
