"""The sweeper: destroy and remove every ``pr-<n>`` stack past its expiry or whose PR is closed.

    python -m tools.delivery sweep --dry-run            # print the decision for every stack
    python -m tools.delivery sweep --list-json          # which PRs' stacks are due (for a matrix)
    python -m tools.delivery sweep --pr 12              # re-check and delete pr-12 only
    python -m tools.delivery sweep                      # decide and delete, all in one process

Each stack of the project gets a :class:`~tools.delivery.expiry.Decision` from the pure
:func:`~tools.delivery.expiry.decide`, or ``DELETE`` when GitHub says its pull request is closed
(a close whose teardown was cancelled or failed). Only ``DELETE`` leads to ``pulumi destroy`` +
``stack rm``. Every stack is handled under ONE fully qualified name (``org/project/pr-<n>`` when
``PULUMI_ORG`` is set): the name whose expiry is read is the name that is destroyed. Just before
destroying, the expiry and the PR are read again, so a push (new expiry) or a reopen since the
first read keeps the stack. A stack that vanished in between (its own PR's teardown won) is
reported, not an error. Stacks that are not ``pr-<digits>`` are never opened. One failed deletion
does not stop the others; it makes the exit code 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pulumi import automation as auto

from infra.config import PROJECT
from tools.delivery.ephemeral import destroy_and_remove
from tools.delivery.expiry import (
    EXPIRY_OUTPUT,
    EXPIRY_TAG,
    Action,
    Decision,
    decide,
    is_ephemeral_stack,
)
from tools.delivery.pr_comment import CommentError, PullRequest
from tools.delivery.stacks import OutputCallback, Pulumi, describe_error, output_text

#: How the sweeper learns a pull request's state (``GitHub.pull_request``).
PullLookup = Callable[[int], PullRequest]


@dataclass
class SweepReport:
    """Every decision taken, and what happened to the stacks that were to be deleted."""

    decisions: list[Decision] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no deletion failed."""
        return not self.failed

    def lines(self, dry_run: bool) -> list[str]:
        """One line per stack, in the order the stacks were listed."""
        out = []
        for decision in self.decisions:
            verb = decision.action.value.upper()
            if decision.action is Action.DELETE and dry_run:
                verb = "WOULD DELETE"
            elif decision.stack in self.failed:
                verb = "FAILED"
            suffix = f" ({self.failed[decision.stack]})" if decision.stack in self.failed else ""
            out.append(f"{verb:<12} {decision.stack}: {decision.reason}{suffix}")
        return out

    def due(self) -> list[int]:
        """Pull request numbers whose stacks are to be deleted, in listing order."""
        return [pr_number(d.stack) for d in self.decisions if d.action is Action.DELETE]


def fully_qualified(name: str, org: str | None = None) -> str:
    """``org/project/stack`` for a listed name (short, ``org/stack`` or already qualified)."""
    org = (org if org is not None else os.environ.get("PULUMI_ORG", "")).strip()
    parts = name.split("/")
    if len(parts) == 3:
        return name
    if len(parts) == 2:
        return f"{parts[0]}/{PROJECT}/{parts[1]}"
    return f"{org}/{PROJECT}/{name}" if org else name


def pr_number(stack: str) -> int:
    """The pull request number of a ``pr-<n>`` stack name (qualified or not)."""
    return int(stack.rsplit("/", 1)[-1].removeprefix("pr-"))


def read_expiry(pulumi: Pulumi, stack: str) -> str | None:
    """The stack's expiry: its ``expires-at`` tag, else its ``expiresAt`` output, else None.

    Raises ``StackNotFoundError`` when the stack does not exist (any more).
    """
    handle = pulumi.stacks.select(stack, pulumi.workspace)
    try:
        tag = handle.get_tag(EXPIRY_TAG)
        if tag.strip():
            return tag
    except auto.StackNotFoundError:
        raise
    except auto.CommandError:
        pass  # no tag, or a backend without stack tags: the output is the second source
    try:
        return output_text(handle.outputs(), EXPIRY_OUTPUT)
    except auto.StackNotFoundError:
        raise
    except auto.CommandError:
        return None


def _decide(pulumi: Pulumi, stack: str, now: datetime, pulls: PullLookup | None) -> Decision:
    """One stack's decision from its expiry and, when GitHub is reachable, its PR's state."""
    try:
        decision = decide(stack, read_expiry(pulumi, stack), now)
    except auto.StackNotFoundError:
        return Decision(stack, Action.KEEP, "vanished (already torn down)")
    if pulls is None or decision.action is Action.DELETE:
        return decision
    try:
        pull = pulls(pr_number(stack))
    except CommentError as exc:
        return Decision(stack, decision.action, f"{decision.reason}; PR state unknown ({exc})")
    if not pull.open:
        return Decision(stack, Action.DELETE, f"PR #{pull.number} is closed")
    return decision


def _delete(
    pulumi: Pulumi,
    stack: str,
    now: datetime,
    pulls: PullLookup | None,
    report: SweepReport,
    on_output: OutputCallback,
    log: Callable[[str], None],
) -> None:
    """Re-read, then destroy and remove ``stack`` (fully qualified) if it is still due."""
    again = _decide(pulumi, stack, now, pulls)
    if again.action is not Action.DELETE:
        report.decisions[-1] = Decision(stack, again.action, f"re-read: {again.reason}")
        return
    log(f"sweep: destroying {stack} ({again.reason})")
    try:
        existed = destroy_and_remove(pulumi, stack, on_output=on_output)
    except auto.StackNotFoundError:
        existed = False
    except auto.CommandError as exc:
        report.failed[stack] = describe_error(exc)
        return
    if existed:
        report.deleted.append(stack)
    else:
        report.decisions[-1] = Decision(stack, Action.KEEP, "vanished before it was destroyed")


def sweep(
    pulumi: Pulumi,
    now: datetime,
    *,
    dry_run: bool,
    pulls: PullLookup | None = None,
    only: int | None = None,
    on_output: OutputCallback = print,
    log: Callable[[str], None] = print,
) -> SweepReport:
    """Decide for every stack (or only ``pr-<only>``) and, unless ``dry_run``, delete the due."""
    report = SweepReport()
    for summary in pulumi.workspace.list_stacks():
        name = summary.name
        if not is_ephemeral_stack(name):
            report.decisions.append(decide(name, None, now))
            continue
        stack = fully_qualified(name)
        if only is not None and pr_number(stack) != only:
            continue
        if summary.update_in_progress:
            report.decisions.append(Decision(stack, Action.REPORT, "an update is in progress"))
            continue
        report.decisions.append(_decide(pulumi, stack, now, pulls))
        if report.decisions[-1].action is Action.DELETE and not dry_run:
            _delete(pulumi, stack, now, pulls, report, on_output, log)
    return report
