"""Whole-program inventories: each stack file run once under the project's mocks.

Shared by tests/infra, tests/tools and tests/policy through their conftest.py files.

``stack_run(name)`` runs infra/__main__.py with stacks/Pulumi.<name>.yaml (pr-* stacks: the
template, after the dev stack they borrow from) and caches the result for the session, so the
many property tests share a handful of runs. ``Inventory`` wraps a run with small lookups.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tools.mocks import Registration
from tools.plan import ProgramRun, run_program

#: Stack files shipped in stacks/ (pr-123 stands for every pr-<n> stack).
STACKS = ("dev", "staging", "prod", "pr-123")
LONG_LIVED = ("dev", "staging", "prod")


@dataclass(frozen=True)
class Inventory:
    """What one stack declared, with lookups by type and logical name."""

    run: ProgramRun
    seconds: float

    @property
    def registrations(self) -> list[Registration]:
        return self.run.registrations

    def of_type(self, type_: str) -> list[Registration]:
        """Every registration of a Pulumi type token."""
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> dict[str, Any]:
        """The inputs of the single resource of ``type_`` (and ``name``, when given)."""
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, (
            f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
        )
        return dict(found[0].inputs)

    def types(self) -> set[str]:
        """Every resource type the stack declares."""
        return {r.type for r in self.registrations}


def policy(inputs: dict[str, Any], key: str = "policy") -> dict[str, Any]:
    """Parse a JSON policy document input (possibly still secret-wrapped)."""
    value = inputs[key]
    parsed: dict[str, Any] = json.loads(value)
    return parsed


_CACHE: dict[str, Inventory] = {}


def _run(stack: str) -> Inventory:
    if stack not in _CACHE:
        referenced = {}
        if stack.startswith("pr-"):
            referenced = {"organization/torch-eks-inference/dev": _run("dev").run}
        started = time.perf_counter()
        run = run_program(stack, referenced=referenced)
        _CACHE[stack] = Inventory(run, time.perf_counter() - started)
    return _CACHE[stack]


@pytest.fixture(scope="session")
def stack_run() -> Callable[[str], Inventory]:
    """Run (once per session) and return the inventory of a shipped stack."""
    return _run


@pytest.fixture(params=STACKS)
def any_stack(request: pytest.FixtureRequest, stack_run: Callable[[str], Inventory]) -> Inventory:
    """Each shipped stack in turn."""
    return stack_run(request.param)


@pytest.fixture(params=LONG_LIVED)
def long_lived(request: pytest.FixtureRequest, stack_run: Callable[[str], Inventory]) -> Inventory:
    """Each stack that owns a cluster (dev, staging, prod) in turn."""
    return stack_run(request.param)
