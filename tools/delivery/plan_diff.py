"""Offline plan diff: what a change declares differently, computed without cloud credentials.

The plan tool (``python -m tools.plan --stack S --format json``) runs the Pulumi program
under mocks and prints its resource inventory: a sorted list of ``{"type", "name", "parent",
"inputs"}`` with secrets already masked. This module runs it at two revisions of the repository
(the base through a temporary ``git worktree``) and renders the difference as Markdown, the way
``pulumi preview --diff`` reports it: per resource ``create``, ``update``, ``replace`` (when an
input that can only be set at creation changed, see ``tools.delivery.replacement``) or
``delete``, each changed input as a dotted path with its old and new value, and which resources
are ``protect``ed (Pulumi refuses to delete or replace those).

    python -m tools.delivery.plan_diff --stack dev --base origin/main            # vs the work tree
    python -m tools.delivery.plan_diff --stack prod --base main --head feature   # two revisions

The diff itself (:func:`diff_inventories`, :func:`render_markdown`) is pure; only
:func:`collect_inventory` and :func:`base_worktree` touch processes and git.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tools.delivery.replacement import forces_replacement
from tools.urns import ROOT_STACK_TYPE, create_urn

SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 - the mask text, not a secret
# Defence in depth: the plan tool masks secrets, but an input whose key names a credential is
# masked here as well, so that a plan tool bug cannot print one into a public PR comment.
_SENSITIVE_KEY = re.compile(
    r"(password|passwd|secretstring|secretbinary|privatekey|apikey|token)$", re.IGNORECASE
)
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MAX_VALUE_CHARS = 120
_TABLE_HEAD = ("| input | before | after |", "| --- | --- | --- |")
_PLAN_TIMEOUT_S = 600


class PlanDiffError(Exception):
    """The inventories could not be produced or are not what the plan tool prints."""


class _Missing:
    """Marks an input path that one side does not declare (distinct from an explicit null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True, order=True)
class ResourceKey:
    """Identity of a declared resource: what Pulumi's URN is built from.

    ``urn`` is the full URN when the inventory has one (it also holds the type of every
    ancestor, so renaming a parent's type changes it); inventories without one are matched on
    type, name and parent name.
    """

    type: str
    name: str
    parent: str | None
    urn: str = ""

    @property
    def identity(self) -> str:
        """What the engine matches old and new state on: the URN, or a stand-in for it."""
        return self.urn or f"{self.type}::{self.parent or ''}::{self.name}"

    def label(self) -> str:
        """Short Markdown label: name, type and (when nested) the parent."""
        parent = f", parent `{self.parent}`" if self.parent else ""
        return f"**`{self.name}`** `{self.type}`{parent}"


@dataclass(frozen=True)
class _Entry:
    key: ResourceKey
    inputs: Mapping[str, Any]
    aliases: tuple[str, ...]
    protect: bool = False
    component: bool = False


@dataclass(frozen=True)
class InputChange:
    """One input path whose value differs; either side may be :data:`MISSING`."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    """A resource present on both sides whose inputs (or ``protect``) differ."""

    key: ResourceKey
    changes: tuple[InputChange, ...]
    #: Paths among ``changes`` that only take effect by replacing the resource.
    replacing: tuple[str, ...] = ()

    @property
    def action(self) -> str:
        """``replace`` when a create-only input changed, else ``update``."""
        return "replace" if self.replacing else "update"


@dataclass(frozen=True)
class PlanDiff:
    """The difference between two inventories of the same stack."""

    added: tuple[tuple[ResourceKey, Mapping[str, Any]], ...] = ()
    removed: tuple[tuple[ResourceKey, Mapping[str, Any]], ...] = ()
    changed: tuple[ResourceChange, ...] = ()
    unchanged: int = 0
    #: Resources marked ``protect`` on either side.
    protected: frozenset[ResourceKey] = frozenset()
    #: Resources whose URN changed and that an alias carries over (no replacement).
    aliased: int = 0
    #: Added or removed ComponentResources: entries in the state, nothing in the cloud.
    components: frozenset[ResourceKey] = frozenset()

    @property
    def updates(self) -> tuple[ResourceChange, ...]:
        """Changed resources updated in place."""
        return tuple(c for c in self.changed if c.action == "update")

    @property
    def replacements(self) -> tuple[ResourceChange, ...]:
        """Changed resources Pulumi must replace."""
        return tuple(c for c in self.changed if c.action == "replace")

    @property
    def empty(self) -> bool:
        """True when both sides declare exactly the same resources and inputs."""
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True)
class Side:
    """Which revision an inventory came from, for the Markdown header."""

    label: str
    detail: str = ""
    notes: tuple[str, ...] = field(default=())


def _engine_urns(inventory: list[dict[str, Any]]) -> list[str]:
    """Each entry's URN with every ancestor's type, as the engine builds it.

    Plan tools before ``tools.aliases`` printed the SDK mock monitor's URNs, which keep only the
    parent's last type (and the root stack's); the parent is found by its name and that type,
    and its own URN rebuilt first. URNs already in the engine's form come out unchanged.
    """
    by_name_type: dict[tuple[str, str], list[int]] = {}
    for position, entry in enumerate(inventory):
        by_name_type.setdefault((entry["name"], entry["type"]), []).append(position)
    done: dict[int, str] = {}

    def urn_of(position: int, depth: int = 0) -> str:
        if position in done:
            return done[position]
        entry = inventory[position]
        urn, parent = str(entry.get("urn") or ""), entry.get("parent")
        chain = urn.split("::")[2].split("$") if urn.count("::") >= 3 else []
        if parent is None and chain[:1] == [ROOT_STACK_TYPE] and len(chain) == 2:
            # The engine leaves the root stack's type out (the SDK's mock monitor does not).
            urn = urn.replace(f"::{ROOT_STACK_TYPE}$", "::", 1)
        elif parent is not None and len(chain) >= 2 and depth < 64:
            candidates = by_name_type.get((parent, chain[-2]), [])
            if len(candidates) != 1:
                raise PlanDiffError(
                    f"{entry['name']!r}: parent {parent!r} of type {chain[-2]} is "
                    f"{'ambiguous' if candidates else 'not in the inventory'}"
                )
            urn = create_urn(entry["name"], entry["type"], urn_of(candidates[0], depth + 1), "", "")
        done[position] = urn
        return urn

    return [urn_of(position) for position in range(len(inventory))]


def _entries(inventory: object) -> dict[str, _Entry]:
    """Validate a plan-tool inventory and index it by identity (URN when present)."""
    if not isinstance(inventory, list):
        raise PlanDiffError(f"inventory must be a JSON list, got {type(inventory).__name__}")
    indexed: dict[str, _Entry] = {}
    for position, entry in enumerate(inventory):
        if not isinstance(entry, dict):
            raise PlanDiffError(f"inventory[{position}] must be an object, got {entry!r:.80}")
        missing = {"type", "name", "inputs"} - entry.keys()
        if missing:
            raise PlanDiffError(f"inventory[{position}] lacks {sorted(missing)}: {entry!r:.120}")
        type_, name, parent, inputs = (
            entry["type"],
            entry["name"],
            entry.get("parent"),
            entry["inputs"],
        )
        urn, aliases = entry.get("urn") or "", entry.get("aliases") or []
        if not isinstance(type_, str) or not isinstance(name, str):
            raise PlanDiffError(f"inventory[{position}]: type and name must be strings")
        if parent is not None and not isinstance(parent, str):
            raise PlanDiffError(f"inventory[{position}]: parent must be a string or null")
        if not isinstance(urn, str):
            raise PlanDiffError(f"inventory[{position}] ({name}): urn must be a string")
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise PlanDiffError(f"inventory[{position}] ({name}): aliases must be a list of URNs")
        if not isinstance(inputs, dict):
            raise PlanDiffError(f"inventory[{position}] ({name}): inputs must be an object")
        if not isinstance(entry.get("protect", False), bool):
            raise PlanDiffError(f"inventory[{position}] ({name}): protect must be true or false")
        key = ResourceKey(type_, name, parent, urn)
        if key.identity in indexed:
            raise PlanDiffError(f"inventory declares {type_} {name!r} twice under {parent!r}")
        indexed[key.identity] = _Entry(
            key, inputs, tuple(aliases), entry.get("protect", False), entry.get("component") is True
        )
    return _with_engine_urns(inventory, indexed)


def _with_engine_urns(inventory: list[Any], indexed: dict[str, _Entry]) -> dict[str, _Entry]:
    """Re-key entries that carry URNs by the engine's URN (see :func:`_engine_urns`)."""
    if not all(entry.key.urn for entry in indexed.values()):
        return indexed
    rekeyed: dict[str, _Entry] = {}
    for entry, urn in zip(indexed.values(), _engine_urns(inventory), strict=True):
        key = ResourceKey(entry.key.type, entry.key.name, entry.key.parent, urn)
        if key.identity in rekeyed:
            raise PlanDiffError(f"inventory declares {key.type} {key.name!r} twice as {urn}")
        rekeyed[key.identity] = _Entry(
            key, entry.inputs, entry.aliases, entry.protect, entry.component
        )
    return rekeyed


def index_inventory(inventory: object) -> dict[ResourceKey, Mapping[str, Any]]:
    """Validate a plan-tool inventory and index its inputs by resource identity."""
    return {entry.key: entry.inputs for entry in _entries(inventory).values()}


def match_resources(old: Mapping[str, _Entry], new: Mapping[str, _Entry]) -> dict[str, str]:
    """New identity -> old identity, for each new resource the engine would take for an old one.

    Like the engine: a resource is its old self when the URN is unchanged, or else when one of
    its aliases (own or inherited from a parent, already resolved by the plan tool) names an old
    URN that nothing else has claimed. Nothing else matches: a renamed type, name or parent
    without an alias is a delete plus a create.
    """
    pairs = {identity: identity for identity in new.keys() & old.keys()}
    claimed = set(pairs.values())
    for identity in sorted(new.keys() - old.keys()):
        for alias in new[identity].aliases:
            if alias in old and alias not in claimed:
                pairs[identity] = alias
                claimed.add(alias)
                break
    return pairs


def _segment(key: str) -> str:
    return key if _SIMPLE_KEY.fullmatch(key) else json.dumps(key)


def _join(prefix: str, key: str) -> str:
    segment = _segment(key)
    if not _SIMPLE_KEY.fullmatch(key):
        return f"{prefix}[{segment}]"
    return f"{prefix}.{segment}" if prefix else segment


def flatten_inputs(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested inputs into ``{dotted.path[0]: leaf}``; empty containers are leaves."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(flatten_inputs(value[key], _join(prefix, str(key))))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten_inputs(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def _input_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[InputChange, ...]:
    old, new = flatten_inputs(dict(before)), flatten_inputs(dict(after))
    changes = []
    for path in sorted(old.keys() | new.keys()):
        was, now = old.get(path, MISSING), new.get(path, MISSING)
        if was != now or type(was) is not type(now):
            changes.append(InputChange(path, was, now))
    return tuple(changes)


def diff_inventories(base: object, head: object) -> PlanDiff:
    """Compare two plan-tool inventories (base first) by resource identity and inputs."""
    old, new = _entries(base), _entries(head)
    protected = frozenset(e.key for e in (*old.values(), *new.values()) if e.protect)
    pairs = match_resources(old, new)
    added = tuple(
        (new[i].key, new[i].inputs) for i in sorted(new, key=lambda i: new[i].key) if i not in pairs
    )
    kept = set(pairs.values())
    removed = tuple(
        (old[i].key, old[i].inputs) for i in sorted(old, key=lambda i: old[i].key) if i not in kept
    )
    changed = []
    unchanged = 0
    for identity in sorted(pairs, key=lambda i: new[i].key):
        before, after = old[pairs[identity]], new[identity]
        changes = list(_input_changes(before.inputs, after.inputs))
        if before.protect != after.protect:
            changes.append(InputChange("protect", before.protect, after.protect))
        if changes:
            key = after.key
            replacing = tuple(c.path for c in changes if forces_replacement(key.type, c.path))
            changed.append(ResourceChange(key, tuple(changes), replacing))
        else:
            unchanged += 1
    moved = sum(1 for new_id, old_id in pairs.items() if new_id != old_id)
    components = frozenset(
        e.key
        for side, ids in ((new, new.keys() - pairs.keys()), (old, old.keys() - kept))
        for e in (side[i] for i in ids)
        if e.component
    )
    return PlanDiff(added, removed, tuple(changed), unchanged, protected, moved, components)


def _is_sensitive(path: str) -> bool:
    last = re.split(r"[.\[]", path)[-1].strip('"]')
    return bool(_SENSITIVE_KEY.search(last))


def format_value(value: Any, path: str = "") -> str:
    """One table cell: the JSON of a value, masked when sensitive, shortened when long."""
    if value is MISSING:
        return "*(not set)*"
    if value == SECRET_PLACEHOLDER or (path and _is_sensitive(path)):
        return f"`{SECRET_PLACEHOLDER}`"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 1] + "…"
    return _code(text)


def _code(text: str) -> str:
    # A cell is one line: pipes would split it and backticks would end the code span.
    text = text.replace("|", "\\|").replace("\n", " ")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if fence == "`" else f"{fence} {text} {fence}"


#: Pulumi's symbols for each operation, as ``pulumi preview`` prints them.
SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


def summary_line(diff: PlanDiff) -> str:
    """``**N to update** · N to replace · N to create · N to delete · N unchanged``."""
    line = (
        f"**{len(diff.updates)} to update** · {len(diff.replacements)} to replace · "
        f"{len(diff.added)} to create · {len(diff.removed)} to delete · "
        f"{diff.unchanged} unchanged"
    )
    if diff.components:
        line += (
            f" ({len(diff.components)} of the creates and deletes are components: "
            "Pulumi state only, no cloud resource)"
        )
    return line


def _resource_line(action: str, key: ResourceKey, protected: bool, component: bool = False) -> str:
    line = f"`{SYMBOLS[action]}` {action} {key.label()}"
    if component:
        line += " · component (state only)"
    if protected:
        line += " · `protect`"
        if action in ("replace", "delete"):
            line += (
                f" — **Pulumi refuses to {action} a protected resource**: unprotect it first "
                "(`pulumi state unprotect`)"
            )
    return line


def _change_table(change: ResourceChange) -> list[str]:
    rows = [*_TABLE_HEAD]
    for item in change.changes:
        path = _code(item.path)
        if item.path in change.replacing:
            path += " **forces replacement**"
        rows.append(
            f"| {path} | {format_value(item.before, item.path)} "
            f"| {format_value(item.after, item.path)} |"
        )
    return rows


def render_markdown(diff: PlanDiff, stack: str, base: Side, head: Side) -> str:
    """Markdown for a PR comment: a summary line first, then replace, update, create, delete."""
    base_text = f"`{base.label}`" + (f" ({base.detail})" if base.detail else "")
    head_text = f"`{head.label}`" + (f" ({head.detail})" if head.detail else "")
    lines = [
        f"### Offline plan diff: stack `{stack}`",
        "",
        f"{base_text} → {head_text}: {summary_line(diff)}",
        "",
        "<sub>Resources and inputs the program declares, run under Pulumi mocks without cloud "
        "credentials; values the cloud computes at deploy time are not shown. Secrets are "
        "masked. Replacements follow the providers' create-only inputs.</sub>",
    ]
    for note in (*base.notes, *head.notes):
        lines += ["", f"> {note}"]
    if diff.aliased:
        lines += [
            "",
            f"{diff.aliased} resources have a new URN (type, name or parent) and keep their "
            "state through an `aliases` entry.",
        ]
    if diff.empty:
        lines += ["", "No change in declared resources or their inputs."]
        return "\n".join(lines) + "\n"
    for title, changes in (("To replace", diff.replacements), ("To update", diff.updates)):
        if changes:
            lines += ["", f"#### {title} ({len(changes)})"]
            for change in changes:
                protected = change.key in diff.protected
                lines += ["", _resource_line(change.action, change.key, protected), ""]
                lines += _change_table(change)
    for title, action, entries in (
        ("To create", "create", diff.added),
        ("To delete", "delete", diff.removed),
    ):
        if entries:
            lines += ["", f"#### {title} ({len(entries)})", ""]
            lines += [
                f"- {_resource_line(action, key, key in diff.protected, key in diff.components)}: "
                f"{len(flatten_inputs(dict(inputs)))} inputs"
                for key, inputs in entries
            ]
    return "\n".join(lines) + "\n"


#: Where the plan tool lives, newest layout first: revisions before the tools/ package kept it
#: under infra/, and a base revision is run with its own tool.
_PLAN_TOOLS: Final = (("tools/plan.py", "tools.plan"), ("infra/tools/plan.py", "infra.tools.plan"))


def plan_tool_of(tree: Path) -> str | None:
    """The module name of the plan tool in the checkout ``tree``, or None when it has none."""
    return next((module for path, module in _PLAN_TOOLS if (tree / path).is_file()), None)


def collect_inventory(tree: Path, stack: str, python: str = sys.executable) -> list[Any]:
    """Run the plan tool in ``tree`` (a checkout of this repository) and parse its JSON."""
    module = plan_tool_of(tree) or "tools.plan"
    argv = [python, "-m", module, "--stack", stack, "--format", "json"]
    try:
        result = subprocess.run(
            argv, cwd=tree, capture_output=True, text=True, timeout=_PLAN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PlanDiffError(f"plan tool for stack {stack!r} in {tree} timed out") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise PlanDiffError(
            f"plan tool for stack {stack!r} in {tree} exited {result.returncode}:\n{tail}"
        )
    try:
        inventory: list[Any] = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise PlanDiffError(f"plan tool for stack {stack!r} in {tree} printed no JSON") from exc
    return inventory


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PlanDiffError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def resolve_revision(repo: Path, revision: str) -> str:
    """The full commit id of ``revision``, with an error that names it when it is unknown."""
    if revision.startswith("-"):
        raise PlanDiffError(f"revision {revision!r} must not start with '-'")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except PlanDiffError as exc:
        raise PlanDiffError(
            f"unknown git revision {revision!r} in {repo} (fetch it, e.g. `git fetch origin "
            "main`, or check out with full history)"
        ) from exc


@contextlib.contextmanager
def base_worktree(repo: Path, commit: str) -> Iterator[Path]:
    """A detached ``git worktree`` of ``commit`` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="plan-diff-") as parent:
        tree = Path(parent) / "tree"
        _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        try:
            yield tree
        finally:
            _git(repo, "worktree", "remove", "--force", str(tree))


def _inventory_at_revision(repo: Path, revision: str, stack: str) -> tuple[list[Any], Side]:
    """Inventory of a git revision, through a temporary worktree."""
    commit = resolve_revision(repo, revision)
    with base_worktree(repo, commit) as checkout:
        if plan_tool_of(checkout) is None:
            note = f"`{revision}` has no plan tool (tools/plan.py); it counts as declaring nothing."
            return [], Side(label=revision, detail=commit[:12], notes=(note,))
        return collect_inventory(checkout, stack), Side(label=revision, detail=commit[:12])


def plan_diff(
    repo: Path, stack: str, base: str, head: str | None = None, head_tree: Path | None = None
) -> str:
    """Markdown diff of ``stack`` between git revision ``base`` and a revision or a folder.

    Without ``head`` or ``head_tree`` the new side is ``repo`` as it is on disk, uncommitted
    changes included, which is what a developer wants before pushing.
    """
    if head is not None and head_tree is not None:
        raise PlanDiffError("give the head as a revision or as a folder, not both")
    base_inventory, base_side = _inventory_at_revision(repo, base, stack)
    if head is not None:
        head_inventory, head_side = _inventory_at_revision(repo, head, stack)
    else:
        tree = head_tree if head_tree is not None else repo
        head_inventory = collect_inventory(tree, stack)
        label = "working tree" if head_tree is None else str(head_tree)
        head_side = Side(label=label, detail=_describe_tree(tree))
    return render_markdown(
        diff_inventories(base_inventory, head_inventory), stack, base_side, head_side
    )


def _describe_tree(repo: Path) -> str:
    try:
        commit = _git(repo, "rev-parse", "--short=12", "HEAD")
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no")
    except PlanDiffError:
        return ""
    return commit + (" + uncommitted changes" if dirty else "")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.delivery.plan_diff",
        description="Markdown diff of the resources a stack declares at two revisions "
        "(the program run under Pulumi mocks; no cloud credentials needed).",
    )
    parser.add_argument("--stack", required=True, help="stack name, e.g. dev, staging, prod")
    parser.add_argument("--base", required=True, help="git revision to compare against")
    head = parser.add_mutually_exclusive_group()
    head.add_argument("--head", help="git revision of the new side (default: the working tree)")
    head.add_argument(
        "--head-tree", type=Path, help="folder holding the new side (default: the repository)"
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument("--out", type=Path, help="also write the Markdown to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints the Markdown and returns the exit code."""
    args = _parse_args(argv)
    try:
        markdown = plan_diff(
            args.repo.resolve(), args.stack, args.base, head=args.head, head_tree=args.head_tree
        )
    except PlanDiffError as exc:
        print(f"plan-diff: {exc}", file=sys.stderr)
        # The PR comment says why there is no diff, instead of silently having none.
        if args.out is not None:
            _write(args.out, render_failure(args.stack, str(exc)))
        return 2
    if args.out is not None:
        _write(args.out, markdown)
    sys.stdout.write(markdown)
    return 0


def render_failure(stack: str, error: str) -> str:
    """Markdown for a diff that could not be computed, with the tail of the error."""
    tail = "\n".join(error.strip().splitlines()[-20:]).replace("```", "` ` `")
    return (
        f"### Offline plan diff: stack `{stack}`\n\n**The plan could not be computed.**\n\n"
        f"```text\n{tail}\n```\n"
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
