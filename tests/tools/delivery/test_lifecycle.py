"""Ephemeral stack up/down and the sweeper, against an injected fake of the Automation API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.tools.delivery.fakes import FakeBackend
from tools.delivery.ephemeral import (
    EphemeralStackError,
    deploy,
    destroy_and_remove,
    format_deployed,
)
from tools.delivery.expiry import Action
from tools.delivery.stacks import POLICY_PACK
from tools.delivery.sweeper import sweep

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAST, FUTURE = "2026-11-24T12:00:00Z", "2026-11-26T12:00:00Z"


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.pr-template.yaml"
    path.write_text("config:\n  torch-eks-inference:gpuInstanceType: g5.xlarge\n")
    return path


def _deploy(backend: FakeBackend, template: Path, stack: str = "pr-12", **kw: object) -> object:
    return deploy(
        backend.pulumi(),
        stack,
        now=NOW,
        template=template,
        config_dir=template.parent,
        on_output=lambda _: None,
        **kw,  # type: ignore[arg-type]
    )


def test_up_sets_expiry_before_updating_and_returns_the_url(template: Path) -> None:
    backend = FakeBackend(up_outputs={"serviceUrl": auto.OutputValue("http://svc.pr-12", False)})

    deployed = _deploy(backend, template, ttl=timedelta(hours=24))

    assert backend.calls == [
        ("create_or_select", "pr-12"),
        ("set_config", "pr-12", "torch-eks-inference:expiresAt", "2026-11-26T12:00:00Z"),
        ("set_tag", "pr-12", "expires-at", "2026-11-26T12:00:00Z"),
        ("up", "pr-12", str(POLICY_PACK)),
    ]
    assert deployed.service_url == "http://svc.pr-12"  # type: ignore[attr-defined]
    written = template.parent / "Pulumi.pr-12.yaml"
    assert written.read_text() == template.read_text()
    assert "http://svc.pr-12" in format_deployed(deployed)  # type: ignore[arg-type]


def test_up_without_stack_tags_still_records_expiry_in_config(template: Path) -> None:
    backend = FakeBackend(tags_supported=False)
    deployed = _deploy(backend, template)
    assert backend.stacks["pr-12"]["config"]["torch-eks-inference:expiresAt"] == (
        "2026-11-28T12:00:00Z"
    )
    assert deployed.service_url is None  # type: ignore[attr-defined]
    assert "not supported" in deployed.notes[0]  # type: ignore[attr-defined]


def test_secret_url_output_is_never_printed(template: Path) -> None:
    backend = FakeBackend(up_outputs={"serviceUrl": auto.OutputValue("http://hidden", True)})
    assert _deploy(backend, template).service_url is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("stack", ["dev", "prod", "pr-x", "staging-pr-1"])
def test_up_and_down_refuse_long_lived_stacks(template: Path, stack: str) -> None:
    backend = FakeBackend()
    backend.add(stack)
    with pytest.raises(EphemeralStackError, match="not a pr-<digits> stack"):
        _deploy(backend, template, stack=stack)
    with pytest.raises(EphemeralStackError, match="refusing to destroy"):
        destroy_and_remove(backend.pulumi(), stack)
    assert backend.calls == []


def test_up_refuses_missing_template_and_bad_ttl(template: Path) -> None:
    backend = FakeBackend()
    with pytest.raises(EphemeralStackError, match="does not exist"):
        _deploy(backend, template.parent / "nope.yaml")
    with pytest.raises(EphemeralStackError, match="longer than"):
        _deploy(backend, template, ttl=timedelta(days=31))
    assert backend.calls == []


def test_down_destroys_then_removes_and_tolerates_absent_stack() -> None:
    backend = FakeBackend()
    backend.add("pr-3")
    assert destroy_and_remove(backend.pulumi(), "pr-3", on_output=lambda _: None) is True
    assert backend.calls == [
        ("select", "pr-3"),
        ("destroy", "pr-3"),
        ("remove_stack", "pr-3", "force=None"),
    ]
    assert destroy_and_remove(backend.pulumi(), "pr-3") is False


def test_failed_destroy_does_not_remove_the_stack() -> None:
    backend = FakeBackend(fail_destroy={"pr-3"})
    backend.add("pr-3")
    with pytest.raises(auto.CommandError):
        destroy_and_remove(backend.pulumi(), "pr-3")
    assert "pr-3" in backend.stacks
    assert not [c for c in backend.calls if c[0] == "remove_stack"]


def _fleet() -> FakeBackend:
    backend = FakeBackend()
    backend.add("dev", tag=PAST)  # long-lived, even with an expired-looking tag
    backend.add("prod", tag=PAST)
    backend.add("pr-foo", tag=PAST)
    backend.add("pr-1", tag=PAST)  # expired: deleted
    backend.add("pr-2", tag=FUTURE)  # kept
    backend.add("pr-3", output=PAST)  # no tag, expired output: deleted
    backend.add("pr-4")  # no expiry at all: reported
    backend.add("pr-5", tag="next tuesday")  # malformed: reported
    backend.add("pr-6", tag=PAST, busy=True)  # update running: reported
    return backend


def test_sweeper_deletes_only_expired_pr_stacks() -> None:
    backend = _fleet()
    report = sweep(backend.pulumi(), NOW, dry_run=False, on_output=lambda _: None, log=print)

    assert report.deleted == ["pr-1", "pr-3"]
    assert report.ok
    assert sorted(backend.stacks) == ["dev", "pr-2", "pr-4", "pr-5", "pr-6", "pr-foo", "prod"]
    actions = {d.stack: d.action for d in report.decisions}
    assert actions == {
        "dev": Action.KEEP,
        "prod": Action.KEEP,
        "pr-foo": Action.KEEP,
        "pr-1": Action.DELETE,
        "pr-2": Action.KEEP,
        "pr-3": Action.DELETE,
        "pr-4": Action.REPORT,
        "pr-5": Action.REPORT,
        "pr-6": Action.REPORT,
    }
    touched = {call[1] for call in backend.calls}
    assert touched.isdisjoint({"dev", "prod", "pr-foo", "pr-6"}), "never even opened"


def test_sweeper_dry_run_changes_nothing_and_says_what_it_would_do() -> None:
    backend = _fleet()
    report = sweep(backend.pulumi(), NOW, dry_run=True)
    assert not [c for c in backend.calls if c[0] in {"destroy", "remove_stack"}]
    assert len(backend.stacks) == 9
    lines = report.lines(dry_run=True)
    assert "WOULD DELETE pr-1: expired at 2026-11-24T12:00:00Z" in lines
    assert any(line.startswith("REPORT") and "pr-4" in line for line in lines)


def test_one_failed_deletion_does_not_stop_the_others() -> None:
    backend = _fleet()
    backend.fail_destroy = {"pr-1"}
    report = sweep(backend.pulumi(), NOW, dry_run=False, on_output=lambda _: None, log=print)
    assert report.deleted == ["pr-3"]
    assert report.failed == {"pr-1": "error: resource still in use"}
    assert not report.ok
    assert any(line.startswith("FAILED") for line in report.lines(dry_run=False))


def test_pulumi_org_qualifies_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_ORG", "acme")
    backend = FakeBackend()
    backend.add("acme/pr-9")
    assert destroy_and_remove(backend.pulumi(), "pr-9", on_output=lambda _: None)
    assert ("remove_stack", "acme/pr-9", "force=None") in backend.calls
