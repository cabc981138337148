"""The one-way dependencies of docs/architecture.md, checked on the real import graph.

Each rule fails when a module anywhere in the transitive imports of the part breaks it: the
service must not need Pulumi in the image, the Pulumi program must not drag offline tooling into
`pulumi up`, and the infra may take only the runtime contract from the service.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from functools import cache
from pathlib import Path

import pulumi.runtime as pulumi_runtime

ROOT = Path(__file__).resolve().parents[1]
#: Top-level packages of this repository (everything else is third-party or the standard library).
OURS = ("service", "model", "infra", "policy", "tools", "benchmarks", "tests")
#: What the Pulumi program and the policy pack may never reach: tooling, benchmarks and tests.
TOOLING = ("tools", "benchmarks", "tests")


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


def test_the_service_knows_no_pulumi_and_no_other_part() -> None:
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
    assert not {n for n in reached if n.startswith((*TOOLING, "model", "policy"))}, sorted(reached)


def test_every_infra_module_obeys_the_program_rules() -> None:
    """Not only what __main__ reaches today: a module added to infra/ is held to the same rules."""
    for path in sorted((ROOT / "infra").rglob("*.py")):
        reached = ours(closure(path))
        bad = {n for n in reached if n.startswith((*TOOLING, "model", "policy"))}
        bad |= {n for n in reached if n.startswith("service") and n != "service.contract"}
        bad.discard("service")
        assert not bad, f"{path.relative_to(ROOT)} reaches {sorted(bad)}"


def test_the_policy_pack_imports_nothing_of_ours() -> None:
    """The pack is published on its own (policy/requirements.txt): only pulumi_policy and stdlib."""
    for path in sorted((ROOT / "policy").rglob("*.py")):
        reached = ours(closure(path))
        assert not reached, f"{path.relative_to(ROOT)} reaches {sorted(reached)}"


def _model_stage_service_modules() -> set[str]:
    """The service modules the Dockerfile's model stage copies next to model/."""
    dockerfile = (ROOT / "service" / "Dockerfile").read_text()
    stage = dockerfile.split(" AS model", 1)[1].split("\nFROM ", 1)[0]
    copied: set[str] = set()
    for line in stage.splitlines():
        if line.startswith("COPY ") and "service/" in line and "--from" not in line:
            for source in line.split()[1:-1]:
                copied.add(source.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))
    return copied


def test_model_packaging_reaches_only_what_the_builder_stage_copies() -> None:
    """model/ runs in the image's builder stage beside a few service modules and nothing else."""
    copied = _model_stage_service_modules()
    assert "service.model_loader" in copied, copied
    for path in sorted((ROOT / "model").rglob("*.py")):
        reached = ours(closure(path))
        foreign = {n for n in reached if not n.startswith("model")}
        assert foreign <= copied, f"{path.relative_to(ROOT)} reaches {sorted(foreign - copied)}"


def _top_level_names_of_installed_distributions() -> set[str]:
    names: set[str] = set()
    for dist in importlib.metadata.distributions():
        top = dist.read_text("top_level.txt")
        if top:
            names.update(line.strip() for line in top.splitlines() if line.strip())
        for file in dist.files or ():
            parts = file.parts
            if len(parts) == 1 and parts[0].endswith(".py"):
                names.add(parts[0][:-3])
            elif len(parts) > 1 and parts[1] == "__init__.py":
                names.add(parts[0])
    return names


def test_nothing_directly_under_infra_shadows_a_module_the_program_imports() -> None:
    """Pulumi runs ``main: infra/`` with infra/ first on sys.path.

    So ``infra/secrets.py`` would be what ``import secrets`` finds anywhere in the process
    (botocore, pulumi itself), and ``infra/yaml.py`` would replace PyYAML. Every file and
    package directly under infra/ must therefore be named unlike any standard-library module
    and any installed distribution's top-level module.
    """
    taken = set(sys.stdlib_module_names) | _top_level_names_of_installed_distributions()
    taken.discard("infra")
    here = {p.stem for p in (ROOT / "infra").glob("*.py")} | {
        p.name for p in (ROOT / "infra").iterdir() if (p / "__init__.py").is_file()
    }
    assert here, "infra/ has no modules?"
    assert not (here & taken), f"infra/ shadows {sorted(here & taken)}"


def test_the_rules_see_a_violation() -> None:
    """The checker itself: a tool importing the mocks is seen, and a shadowing name is seen."""
    assert "tools.mocks" in ours(closure(ROOT / "tools" / "plan.py"))
    assert "secrets" in sys.stdlib_module_names
    assert "yaml" in _top_level_names_of_installed_distributions()


# ----------------------------------------------------------------- the SDK's private runtime
#: The one module that may reach into the Pulumi SDK's private runtime (settings reset, the mock
#: monitor, RPC bookkeeping, the wire format of secrets); see its docstring.
RUNTIME_GATEWAY = ROOT / "tools" / "mocks" / "runner.py"
#: What ``pulumi.runtime`` publishes: its ``__all__`` minus ``rpc`` (the serialisation
#: internals), plus ``proto``, the engine's gRPC protocol (analyzer, language host), which is a
#: versioned contract rather than an implementation detail, and the module's dunders.
PUBLIC_RUNTIME = (set(pulumi_runtime.__all__) - {"rpc"}) | {"proto", "__all__", "__name__"}


def _runtime_aliases(tree: ast.AST) -> set[str]:
    """Local names bound to the ``pulumi.runtime`` module itself."""
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.name == "pulumi.runtime" and a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module == "pulumi" and node.level == 0:
            aliases |= {a.asname or a.name for a in node.names if a.name == "runtime"}
    return aliases


def _attribute_reach(node: ast.Attribute, aliases: set[str]) -> str | None:
    """``X`` when ``node`` is ``pulumi.runtime.X`` or ``<alias>.X``."""
    value = node.value
    if isinstance(value, ast.Name) and value.id in aliases:
        return node.attr
    if (
        isinstance(value, ast.Attribute)
        and value.attr == "runtime"
        and isinstance(value.value, ast.Name)
        and value.value.id == "pulumi"
    ):
        return node.attr
    return None


def private_runtime_reaches(source: str) -> list[str]:
    """Every ``pulumi.runtime`` name ``source`` uses that the SDK does not publish."""
    tree = ast.parse(source)
    aliases = _runtime_aliases(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[:2] == ["pulumi", "runtime"] and len(parts) > 2:
                    found += [] if parts[2] in PUBLIC_RUNTIME else [alias.name]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts == ["pulumi", "runtime"]:
                found += [a.name for a in node.names if a.name not in PUBLIC_RUNTIME]
            elif parts[:2] == ["pulumi", "runtime"] and parts[2] not in PUBLIC_RUNTIME:
                found.append(node.module)
        elif isinstance(node, ast.Attribute):
            name = _attribute_reach(node, aliases)
            if name is not None and name not in PUBLIC_RUNTIME:
                found.append(f"pulumi.runtime.{name}")
    return found


def test_only_the_mock_runner_reaches_into_the_sdk_private_runtime() -> None:
    """An SDK upgrade that moves its internals must break one module, not the program or tests."""
    offenders = {}
    for part in OURS:
        for path in sorted((ROOT / part).rglob("*.py")):
            if path == RUNTIME_GATEWAY:
                continue
            reached = private_runtime_reaches(path.read_text(encoding="utf-8"))
            if reached:
                offenders[str(path.relative_to(ROOT))] = sorted(set(reached))
    assert offenders == {}


def test_the_private_runtime_check_sees_each_way_in() -> None:
    assert private_runtime_reaches("from pulumi.runtime import settings, Mocks") == ["settings"]
    assert private_runtime_reaches("from pulumi.runtime.sync_await import _sync_await") == [
        "pulumi.runtime.sync_await"
    ]
    assert private_runtime_reaches("import pulumi.runtime.stack") == ["pulumi.runtime.stack"]
    assert private_runtime_reaches("import pulumi\npulumi.runtime.settings.SETTINGS") == [
        "pulumi.runtime.settings"
    ]
    assert private_runtime_reaches("from pulumi import runtime as rt\nrt.rpc.wrap_rpc_secret") == [
        "pulumi.runtime.rpc"
    ]
    public = "import pulumi\npulumi.runtime.set_mocks\nfrom pulumi.runtime.proto import x_pb2"
    assert private_runtime_reaches(public) == []
    # The gateway itself does reach in (so the exemption is not vacuous).
    assert private_runtime_reaches(RUNTIME_GATEWAY.read_text(encoding="utf-8"))
