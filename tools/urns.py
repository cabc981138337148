"""Pulumi URNs: how the engine builds one from a name, a type and the parent's URN.

Standard library only, so the plan diff (which needs neither the SDK nor the mocks) and the
alias derivation (tools/aliases.py) build URNs with one function.
"""

from __future__ import annotations

#: The engine leaves the root stack's type out of its children's URNs.
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def create_urn(name: str, type_: str, parent_urn: str | None, project: str, stack: str) -> str:
    """The URN of a resource, as ``pulumi.runtime.resource.create_urn`` and the engine build it.

    A child of the root stack has no parent type in its URN (the engine's generateURN skips
    ``resource.RootStackType``); the stack and project then come from the parent's URN.
    """
    if parent_urn:
        parts = parent_urn.split("::")
        if parts[2] != ROOT_STACK_TYPE:
            return f"{parent_urn[: parent_urn.rfind('::')]}${type_}::{name}"
        stack, project = parts[0].removeprefix("urn:pulumi:"), parts[1]
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def urn_type_and_name(urn: str) -> tuple[str, str]:
    """The last type of a URN's type chain and its name."""
    parts = urn.split("::")
    return parts[2].split("$")[-1], parts[3]
