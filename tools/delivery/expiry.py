"""When an ephemeral stack may be deleted: a pure decision, unit-tested on its own.

A ``pr-<n>`` stack carries an ISO-8601 UTC expiry (stack tag ``expires-at``, and the stack output
``expiresAt`` that the program exports from the ``expiresAt`` config key). The sweeper deletes a
stack only when ALL of these hold:

- its name is exactly ``pr-<digits>`` (optionally qualified by ``org/`` or ``org/project/``), so
  ``dev``, ``staging``, ``prod``, ``pr-foo`` or ``prod-pr-1`` can never be chosen;
- it has an expiry, and that expiry parses as a timezone-aware timestamp;
- the expiry is at or before now.

Anything else is kept. A missing or malformed expiry on a ``pr-<n>`` stack is *reported* (so a
human looks at it) rather than deleted: a wrongly deleted stack costs more than one more day of
a forgotten one.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EXPIRY_TAG = "expires-at"
EXPIRY_CONFIG_KEY = "expiresAt"
EXPIRY_OUTPUT = "expiresAt"
#: Longest lifetime an ephemeral stack may ask for: the program's bound on ``expiryHours``.
MAX_TTL = timedelta(hours=720)

_EPHEMERAL_STACK = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]*/){0,2}pr-(?P<number>[0-9]+)")


class Action(enum.Enum):
    """What the sweeper does with one stack."""

    DELETE = "delete"
    KEEP = "keep"
    REPORT = "report"


@dataclass(frozen=True)
class Decision:
    """The action for one stack and the reason, as printed by the sweeper."""

    stack: str
    action: Action
    reason: str


def is_ephemeral_stack(name: str) -> bool:
    """True only for ``pr-<digits>``, optionally qualified by ``org/`` or ``org/project/``."""
    return _EPHEMERAL_STACK.fullmatch(name) is not None


def ephemeral_stack_name(pull_request: int) -> str:
    """The stack name of a pull request, refusing numbers that no pull request has."""
    if isinstance(pull_request, bool) or not isinstance(pull_request, int) or pull_request < 1:
        raise ValueError(f"pull request number must be a positive integer, got {pull_request!r}")
    return f"pr-{pull_request}"


def parse_expiry(value: str) -> datetime:
    """Parse an ISO-8601 timestamp that states its offset; naive times are refused."""
    text = value.strip()
    if not text:
        raise ValueError("expiry is empty")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"expiry {value!r} is not an ISO-8601 timestamp") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expiry {value!r} has no UTC offset (write e.g. 2026-01-31T12:00:00Z)")
    return moment.astimezone(UTC)


def format_expiry(moment: datetime) -> str:
    """The canonical text of an expiry: UTC, whole seconds, ``Z`` suffix."""
    if moment.tzinfo is None:
        raise ValueError("expiry must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry_after(now: datetime, ttl: timedelta) -> str:
    """The expiry of a stack created or updated at ``now`` that should live for ``ttl``."""
    if ttl <= timedelta(0):
        raise ValueError(f"ttl must be positive, got {ttl}")
    if ttl > MAX_TTL:
        raise ValueError(f"ttl {ttl} is longer than the allowed {MAX_TTL}")
    return format_expiry(now + ttl)


def decide(stack: str, expiry: str | None, now: datetime) -> Decision:
    """Decide whether the sweeper deletes ``stack``; see the module docstring for the rules."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not is_ephemeral_stack(stack):
        return Decision(stack, Action.KEEP, "not an ephemeral stack name (pr-<digits>)")
    if expiry is None or not expiry.strip():
        return Decision(stack, Action.REPORT, f"no {EXPIRY_TAG} tag or {EXPIRY_OUTPUT} output")
    try:
        moment = parse_expiry(expiry)
    except ValueError as exc:
        return Decision(stack, Action.REPORT, f"malformed expiry: {exc}")
    if moment <= now:
        return Decision(stack, Action.DELETE, f"expired at {format_expiry(moment)}")
    return Decision(stack, Action.KEEP, f"expires at {format_expiry(moment)}")
