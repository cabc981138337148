"""The one-way dependencies of docs/architecture.md, checked on the real import graph.

Each rule fails when a module anywhere in the transitive imports of the part breaks it: the
service must not need Pulumi in the image, the Pulumi program must not drag offline tooling into
`pulumi up`, and the infra may take only the runtime contract from the service.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Top-level packages of this repository (everything else is third-party or the standard library).
OURS = ("service", "infra", "policy", "scripts", "benchmarks", "tests", "model", "tools")
#: Modules of infra/ that are tooling around the program, not the program.
INFRA_TOOLING = ("infra.tools", "infra.delivery", "infra.mocks", "infra.simulated_account")


def module_file(module: str) -> Path | None:
    """The source file of one of our modules (package ``__init__`` or module file)."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py", base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def direct_imports(path: Path) -> frozenset[str]:
    """Every absolute module name one file imports (``from a import b`` gives a and a.b)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(found)


def closure(start: Path) -> set[str]:
    """Module names reachable from ``start`` through our own modules (third-party ones kept)."""
    seen: set[str] = set()
    todo = [start]
    visited: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in visited:
            continue
        visited.add(path)
        for name in direct_imports(path):
            seen.add(name)
            if name.split(".")[0] in OURS and (found := module_file(name)) is not None:
                todo.append(found)
    return seen


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in OURS and module_file(n) is not None}


def test_the_service_knows_no_pulumi_and_no_tooling() -> None:
    for path in sorted((ROOT / "service").rglob("*.py")):
        reached = closure(path)
        pulumi = {n for n in reached if n.split(".")[0].startswith("pulumi")}
        assert not pulumi, f"{path.relative_to(ROOT)} reaches {sorted(pulumi)}"
        foreign = {n for n in ours(reached) if not n.startswith("service")}
        assert not foreign, f"{path.relative_to(ROOT)} reaches {sorted(foreign)}"


def test_the_program_takes_only_the_contract_from_the_service_and_never_imports_tooling() -> None:
    reached = ours(closure(ROOT / "infra" / "__main__.py"))
    from_service = {n for n in reached if n.startswith("service")}
    assert from_service <= {"service", "service.contract"}, sorted(from_service)
    tooling = {n for n in reached if n.startswith(INFRA_TOOLING) or n.startswith(OURS[2:])}
    assert not tooling, sorted(tooling)


@pytest.mark.parametrize("entry", ["policy/__main__.py"])
def test_the_policy_pack_imports_no_tooling(entry: str) -> None:
    reached = ours(closure(ROOT / entry))
    tooling = {
        n for n in reached if n.startswith(INFRA_TOOLING) or n.startswith(("scripts", "tests"))
    }
    assert not tooling, sorted(tooling)


def test_the_rules_see_a_violation() -> None:
    """The checker itself: a module importing tooling is reported."""
    path = ROOT / "infra" / "tools" / "plan.py"
    assert "infra.mocks" in ours(closure(path))
