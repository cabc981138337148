"""The old URNs a resource answers to, derived from its ``aliases`` the way the Pulumi engine does.

Pulumi identifies a resource by its URN, which holds the type of every ancestor
(``urn:pulumi:<stack>::<project>::<ParentType>$<Type>::<name>``). A new type token, a new name
or a new parent is a new URN: without an alias the engine deletes the old resource and creates
a new one (https://www.pulumi.com/docs/iac/concepts/options/aliases/, "Refactoring with
aliases": https://www.pulumi.com/docs/iac/operations/stack-management/refactoring-with-aliases/).

With a monitor that supports alias specs (the CLI's, and the SDK's mock monitor), the SDK sends
only the resource's own aliases as specs (``pulumi/runtime/resource.py``, ``prepare_aliases``
and ``create_alias_spec`` in the pulumi 3.272 Python SDK) and the engine derives the rest. The
derivation is the one the SDK performs itself for monitors without alias specs, in the same
file: ``all_aliases`` makes, for a child with N own aliases under a parent with M aliases,
N + M * (1 + N) URNs: each own alias, then for each parent alias the child's URN under that
alias (``inherited_child_alias``, which also renames a child whose name starts with the parent's
name), and each own alias moved under it. ``create_urn`` joins a parent URN (up to its last
``::``), ``$``, the type and the name. This module repeats that derivation, so the plan diff
matches an old URN to a new resource only through an alias the program declared.

The SDK's mock monitor (``MockMonitor.make_urn`` in pulumi/runtime/mocks.py) keeps only the
parent's last type in a child's URN, the root stack's included; the engine keeps the whole chain
but leaves out the root stack (its generateURN), so that renaming a grandparent's type changes
the URN too. :func:`engine_urns` rebuilds the
engine's URNs from the recorded parent links, and the aliases are computed on those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tools.mocks import RecordingMonitor, Registration
from tools.urns import create_urn, urn_type_and_name


class AliasRecordingMonitor(RecordingMonitor):
    """The recording mock monitor, also keeping the alias specs each registration carried."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: URN -> the ``pulumirpc.Alias`` messages of its RegisterResource request.
        self.alias_specs: dict[str, tuple[Any, ...]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        aliases = tuple(getattr(request, "aliases", ()) or ())
        legacy = tuple(getattr(request, "aliasURNs", ()) or ())
        if aliases or legacy:
            self.alias_specs[response.urn] = (*aliases, *legacy)
        return response


def inherited_child_alias(
    child_name: str, child_type: str, parent_name: str, parent_alias: str
) -> str:
    """The child's URN under one of its parent's old URNs (``inherited_child_alias``).

    A child named after its parent (``{parent}-suffix``) was named after the parent's old name.
    """
    alias_name = child_name
    if child_name.startswith(parent_name):
        alias_name = parent_alias[parent_alias.rfind("::") + 2 :] + child_name[len(parent_name) :]
    return create_urn(alias_name, child_type, parent_alias, "", "")


def engine_urns(registrations: Sequence[Registration]) -> dict[str, str]:
    """Recorded (mock) URN -> the URN the engine gives: the parent's whole type chain kept."""
    result: dict[str, str] = {}
    for reg in registrations:
        parent = result.get(reg.parent_urn or "", reg.parent_urn)
        if parent is None:
            result[reg.urn] = reg.urn
        else:
            result[reg.urn] = create_urn(reg.name, reg.type, parent, "", "")
    return result


def _collapse(
    alias: Any, reg: Registration, urns: Mapping[str, str], project: str, stack: str
) -> str:
    """One alias message as a URN, the resource's own name/type/parent filling what it omits."""
    if isinstance(alias, str):
        return alias
    if alias.WhichOneof("alias") == "urn":
        return str(alias.urn)
    spec = alias.spec
    parent: str | None = urns.get(reg.parent_urn or "", reg.parent_urn)
    if spec.noParent:
        parent = None
    elif spec.parentUrn:
        parent = urns.get(spec.parentUrn, spec.parentUrn)
    return create_urn(
        spec.name or reg.name,
        spec.type or reg.type,
        parent,
        spec.project or project,
        spec.stack or stack,
    )


def _unique(urns: Iterable[str], own: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for urn in urns:
        if urn != own:
            seen.setdefault(urn, None)
    return tuple(seen)


def alias_urns(
    registrations: Sequence[Registration],
    specs: Mapping[str, Sequence[Any]],
    project: str,
    stack: str,
) -> dict[str, tuple[str, ...]]:
    """Per recorded URN, every old (engine) URN the engine would accept for it.

    Own aliases and those inherited from the parent. ``registrations`` are in registration
    order, so a parent's aliases are known before its children's (a parent registers first).
    """
    urns = engine_urns(registrations)
    result: dict[str, tuple[str, ...]] = {}
    for reg in registrations:
        own = [_collapse(alias, reg, urns, project, stack) for alias in specs.get(reg.urn, ())]
        found = list(own)
        parent_aliases = result.get(reg.parent_urn or "", ())
        parent_name = (reg.parent_urn or "").rsplit("::", 1)[-1]
        for parent_alias in parent_aliases:
            found.append(inherited_child_alias(reg.name, reg.type, parent_name, parent_alias))
            for urn in own:
                type_, name = urn_type_and_name(urn)
                found.append(inherited_child_alias(name, type_, parent_name, parent_alias))
        result[reg.urn] = _unique(found, urns[reg.urn])
    return result
