"""The TTL sweeper: destroy and remove every ``pr-<n>`` stack past its expiry.

    python -m infra.delivery sweep --dry-run    # print the decision for every stack
    python -m infra.delivery sweep              # and carry out the deletions

Each stack of the project gets a :class:`~infra.delivery.expiry.Decision` from the pure
:func:`~infra.delivery.expiry.decide`; only ``DELETE`` leads to ``pulumi destroy`` + ``stack rm``,
through :func:`~infra.delivery.ephemeral.destroy_and_remove`, which re-checks the name. Stacks
that are not ``pr-<digits>`` are never even opened. A stack with an update in progress is
reported, not touched. One failed deletion does not stop the others; it makes the exit code 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pulumi import automation as auto

from infra.delivery.ephemeral import destroy_and_remove
from infra.delivery.expiry import (
    EXPIRY_OUTPUT,
    EXPIRY_TAG,
    Action,
    Decision,
    decide,
    is_ephemeral_stack,
)
from infra.delivery.stacks import OutputCallback, Pulumi, describe_error, output_text


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


def read_expiry(pulumi: Pulumi, stack: str) -> str | None:
    """The stack's expiry: its ``expires-at`` tag, else its ``expiresAt`` output, else None."""
    handle = pulumi.stacks.select(stack, pulumi.workspace)
    try:
        tag = handle.get_tag(EXPIRY_TAG)
        if tag.strip():
            return tag
    except auto.CommandError:
        pass  # no tag, or a backend without stack tags: the output is the second source
    try:
        return output_text(handle.outputs(), EXPIRY_OUTPUT)
    except auto.CommandError:
        return None


def sweep(
    pulumi: Pulumi,
    now: datetime,
    *,
    dry_run: bool,
    on_output: OutputCallback = print,
    log: Callable[[str], None] = print,
) -> SweepReport:
    """Decide for every stack of the project and, unless ``dry_run``, delete the expired ones."""
    report = SweepReport()
    for summary in pulumi.workspace.list_stacks():
        name = summary.name
        if not is_ephemeral_stack(name):
            report.decisions.append(decide(name, None, now))
            continue
        if summary.update_in_progress:
            report.decisions.append(Decision(name, Action.REPORT, "an update is in progress"))
            continue
        decision = decide(name, read_expiry(pulumi, name), now)
        report.decisions.append(decision)
        if decision.action is not Action.DELETE or dry_run:
            continue
        log(f"sweep: destroying {name} ({decision.reason})")
        try:
            destroy_and_remove(pulumi, name, on_output=on_output)
        except auto.CommandError as exc:
            report.failed[name] = describe_error(exc)
        else:
            report.deleted.append(name)
    return report
