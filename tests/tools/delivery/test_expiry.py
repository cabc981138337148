"""The expiry decision: the only thing between a forgotten GPU stack and a deleted prod stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tools.delivery.expiry import (
    Action,
    decide,
    ephemeral_stack_name,
    expiry_after,
    format_expiry,
    is_ephemeral_stack,
    parse_expiry,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expiry", "action"),
    [
        ("2026-11-25T11:59:59Z", Action.DELETE),
        ("2026-11-25T12:00:00Z", Action.DELETE),  # at the instant counts as expired
        ("2026-11-25T13:00:00+02:00", Action.DELETE),  # 11:00 UTC
        ("2026-11-25T12:00:01Z", Action.KEEP),
        ("2026-11-25T11:00:00-02:00", Action.KEEP),  # 13:00 UTC
        ("2030-01-01T00:00:00+00:00", Action.KEEP),
    ],
)
def test_expired_and_not_expired(expiry: str, action: Action) -> None:
    assert decide("pr-42", expiry, NOW).action is action


@pytest.mark.parametrize(
    "expiry",
    [None, "", "   ", "tomorrow", "2026-13-01T00:00:00Z", "2026-11-25T11:00:00", "1700000000"],
)
def test_missing_or_malformed_expiry_is_reported_not_deleted(expiry: str | None) -> None:
    decision = decide("pr-42", expiry, NOW)
    assert decision.action is Action.REPORT
    assert decision.reason


@pytest.mark.parametrize(
    "name",
    [
        "dev",
        "staging",
        "prod",
        "pr-foo",
        "prod-pr-1",
        "pr-1-old",
        "pr-",
        "pr-1 ",
        "PR-1",
        "pr--1",
        "pr-1/dev",
        "org/prod",
        "a/b/c/pr-1",
        "pr-\uff11",  # a full-width digit is not a digit here
    ],
)
def test_long_lived_and_lookalike_names_are_never_deleted(name: str) -> None:
    decision = decide(name, "2000-01-01T00:00:00Z", NOW)
    assert decision.action is Action.KEEP
    assert not is_ephemeral_stack(name)


@pytest.mark.parametrize("name", ["pr-1", "pr-12345", "acme/pr-7", "acme/torch-eks-inference/pr-7"])
def test_ephemeral_names_qualified_or_not(name: str) -> None:
    assert is_ephemeral_stack(name)
    assert decide(name, "2000-01-01T00:00:00Z", NOW).action is Action.DELETE


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide("pr-1", "2000-01-01T00:00:00Z", datetime(2026, 1, 1))


def test_expiry_round_trip_and_ttl_bounds() -> None:
    assert expiry_after(NOW, timedelta(hours=72)) == "2026-11-28T12:00:00Z"
    assert parse_expiry(expiry_after(NOW, timedelta(hours=1))) == NOW + timedelta(hours=1)
    assert format_expiry(NOW.replace(microsecond=999)) == "2026-11-25T12:00:00Z"
    with pytest.raises(ValueError, match="positive"):
        expiry_after(NOW, timedelta(0))
    with pytest.raises(ValueError, match="longer than"):
        expiry_after(NOW, timedelta(hours=721))
    with pytest.raises(ValueError, match="UTC offset"):
        parse_expiry("2026-11-25T12:00:00")


@pytest.mark.parametrize("number", [0, -1, True, "7"])
def test_stack_name_needs_a_real_pr_number(number: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        ephemeral_stack_name(number)  # type: ignore[arg-type]
    assert ephemeral_stack_name(7) == "pr-7"
