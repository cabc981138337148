"""Run a few Pulumi components under the project's mock engine and return what they registered.

A thin helper over ``tools.mocks.runner.run_component``: the components see the same ARNs, ids
and endpoints the whole program sees (in ``REGION``), so a test reads a computed value from the
resource that produced it (``one(...).outputs``) instead of guessing its format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from tools.mocks import ACCOUNT_ID, Registration
from tools.mocks.runner import run_component

__all__ = ["ACCOUNT_ID", "REGION", "all_of", "one", "only", "run_under_mocks"]

REGION: Final = "us-east-1"


def run_under_mocks(program: Callable[[], object]) -> list[Registration]:
    """Run ``program`` (which declares resources) to completion and return its registrations."""
    return run_component(program, region=REGION)


def one(resources: list[Registration], type_: str, name: str | None = None) -> Registration:
    """The single registration of ``type_`` (and logical ``name``, when given)."""
    matches = [r for r in resources if r.type == type_ and (name is None or r.name == name)]
    assert len(matches) == 1, f"expected one {type_} {name or ''}, got {len(matches)}"
    return matches[0]


def only(resources: list[Registration], type_: str, name: str | None = None) -> dict[str, Any]:
    """The inputs of the single resource of ``type_`` (and logical ``name``, when given)."""
    return dict(one(resources, type_, name).inputs)


def all_of(resources: list[Registration], type_: str) -> list[dict[str, Any]]:
    """The inputs of every resource of ``type_``."""
    return [dict(r.inputs) for r in resources if r.type == type_]
