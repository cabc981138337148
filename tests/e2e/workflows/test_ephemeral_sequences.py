"""Issue 10, item 6: event sequences through GitHub's concurrency rules never leak a stack.

Each scenario drives the real ``ephemeral.yml`` / ``sweep.yml`` (conditions and groups evaluated
from the events) and the real delivery commands through :mod:`tests.e2e.workflows.concurrency`, then
lets every queued job finish and checks the one invariant that matters: the ``pr-<n>`` stack
exists exactly when the pull request is open and labelled ``preview-env``. A variant of the same
workflow with workflow-level concurrency (what ``main`` had) shows the model can see the leak.
"""

from __future__ import annotations

import copy

import pytest

from tests.e2e.workflows.concurrency import Ephemeral, Groups, Member

LABEL = "preview-env"


@pytest.fixture(autouse=True)
def _no_stack_files(monkeypatch: pytest.MonkeyPatch) -> None:
    # ephemeral up writes stacks/Pulumi.pr-<n>.yaml for the CLI; the fake backend needs none.
    monkeypatch.setattr("tools.delivery.ephemeral.write_stack_config", lambda *a: None)


def _settled(world: Ephemeral) -> None:
    world.groups.drain()
    wanted = world.pr["state"] == "open" and LABEL in [x["name"] for x in world.pr["labels"]]
    assert world.stack_exists == wanted, (world.groups.cancelled, world.log)


def test_the_model_keeps_one_running_and_one_pending_and_the_newest_pending_wins() -> None:
    ran: list[str] = []
    groups = Groups()
    for name in ("a", "b", "c"):
        groups.queue(Member(name, "G", lambda n=name: ran.append(n)))
    assert ran == ["a"]
    assert groups.cancelled == ["b"], "c replaced the pending b"
    groups.queue(Member("other", "g-2", lambda: ran.append("other")))
    assert ran == ["a", "other"], "another group runs at once"
    groups.queue(Member("d", "g", lambda: ran.append("d")))  # group names ignore case
    assert groups.cancelled == ["b", "c"]
    groups.drain()
    assert ran == ["a", "other", "d"]


def test_open_close_reopen_with_runs_waiting() -> None:
    world = Ephemeral()
    world.event("labeled", LABEL)  # up runs
    assert world.stack_exists
    world.event("synchronize")  # up pending
    world.event("closed")  # down pending: cancels the pending up
    world.event("reopened")  # up pending: cancels the pending down
    _settled(world)
    assert world.stack_exists
    world.event("closed")
    _settled(world)
    assert not world.stack_exists


def test_a_label_added_to_a_closed_pr_does_not_cancel_its_teardown() -> None:
    world = Ephemeral()
    world.event("labeled", LABEL)
    world.event("synchronize")  # up #2 running after the first finishes
    world.finish()
    world.event("closed")  # down pending behind the running up
    world.event("labeled", "needs-triage")  # a bot labels the closed PR
    world.event("unlabeled", "needs-triage")
    _settled(world)
    assert not world.stack_exists


def test_the_same_sequence_leaks_with_workflow_level_concurrency() -> None:
    """What main had: the label event's run (all jobs skipped) replaced the pending teardown."""
    world = Ephemeral()
    legacy = copy.deepcopy(world.workflow)
    group = legacy["jobs"]["up"]["concurrency"]
    for job in legacy["jobs"].values():
        job.pop("concurrency")
    legacy["concurrency"] = group
    world.workflow = legacy
    world.event("labeled", LABEL)
    world.event("synchronize")
    world.finish()
    world.event("closed")
    world.event("labeled", "needs-triage")
    world.groups.drain()
    assert world.stack_exists, "the leak the job-level groups prevent"
    assert "ephemeral(closed)" in world.groups.cancelled


def test_sweeper_during_close_destroys_once_and_never_overlaps() -> None:
    world = Ephemeral()
    world.event("labeled", LABEL)
    world.event("synchronize")  # an up runs while the PR is closed
    world.finish()
    world.event("closed")  # its teardown waits
    world.sweep()  # the hourly sweep sees the closed PR and queues its destroy (same group)
    assert "ephemeral(closed).down" in world.groups.cancelled
    _settled(world)
    assert not world.stack_exists
    destroys = [line for line in world.log if line.startswith(("ephemeral down", "sweep --pr"))]
    assert destroys, world.log


def test_a_reopen_between_sweep_list_and_destroy_keeps_the_stack() -> None:
    world = Ephemeral()
    world.event("labeled", LABEL)
    world.github.pull(7, "closed", (LABEL,))  # closed while Actions was down: no down ran
    world.event("synchronize")  # (an event the closed PR still gets: nothing queues)
    world.sweep()  # listed as due; its destroy waits behind nothing... runs
    _settled(world)
    assert not world.stack_exists
    world.event("reopened")
    world.event("labeled", LABEL)
    world.github.pull(7, "closed", (LABEL,))
    world.sweep()  # due again; destroy pending behind the running up
    world.event("reopened")  # a newer up replaces the sweeper's pending destroy
    _settled(world)
    assert world.stack_exists


def test_up_for_a_pr_closed_before_its_queued_up_starts_does_nothing() -> None:
    world = Ephemeral()
    world.event("labeled", LABEL)
    world.event("synchronize")  # up pending with the PR open at event time
    world.github.pull(7, "closed", (LABEL,))  # closed, and the close event's run never started
    world.groups.drain()
    assert any("skipped up of pr-7: PR #7 is closed" in line for line in world.log)
    assert world.stack_exists, "the first up's stack: only the sweeper can know it is orphaned"
    world.sweep()
    _settled(world)
