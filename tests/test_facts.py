"""One definition per fact: each shared constant is written once, in its area's module.

The scan reads the source of every module of the program, the pack, the tools, the service and
the benchmarks (string, number and tuple literals, and module-level names) and fails when a fact
below is written a second time anywhere but its home, so a copy cannot come back and drift.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from infra.aws import limits, vpc_endpoints
from infra.config import PROJECT
from infra.k8s import labels
from policy.guardrails import promotion, props
from tools.delivery import promotion as delivery_promotion

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("infra", "policy", "tools", "service", "benchmarks")


@cache
def sources() -> tuple[tuple[str, ast.Module], ...]:
    return tuple(
        (path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8")))
        for part in SCANNED
        for path in sorted((ROOT / part).rglob("*.py"))
    )


def literals(tree: ast.Module) -> Iterator[object]:
    """Every constant and every literal tuple or list of constants in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            yield node.value
        elif isinstance(node, ast.Tuple | ast.List):
            try:
                yield tuple(ast.literal_eval(node))
            except ValueError:
                continue


def module_names(tree: ast.Module) -> Iterator[str]:
    """Names a module assigns at its top level."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        yield from (t.id for t in targets if isinstance(t, ast.Name))


def is_dns_label_pattern(value: object) -> bool:
    return isinstance(value, str) and ("[-a-z0-9]*" in value or "[-a-z0-9]{0,6" in value)


def is_retention_list(value: object) -> bool:
    if not isinstance(value, tuple):
        return False
    numbers = {v for v in value if isinstance(v, int)}
    return {1, 3, 365, 3653} <= numbers


#: (what, how to recognise a copy, the only files (or folders) that may hold one).
LITERAL_FACTS: list[tuple[str, Check, set[str]]] = [
    (
        "the GPU extended resource / taint key",
        lambda value: value == labels.GPU_RESOURCE,
        # The pack's copy is deliberate: it imports nothing of the program (see below).
        {"infra/k8s/labels.py", "policy/guardrails/props.py"},
    ),
    ("a DNS label pattern", is_dns_label_pattern, {"infra/k8s/labels.py"}),
    ("CloudWatch's retention values", is_retention_list, {"infra/aws/limits.py"}),
    (
        "the promotion rule's name and config keys",
        lambda value: (
            value in (promotion.POLICY_NAME, promotion.CONFIG_KEY, promotion.ROLLBACK_KEY)
        ),
        # The pack's own copy, and the tools' one home (held equal below).
        {"policy/guardrails/promotion.py", "tools/delivery/promotion.py"},
    ),
    (
        "a Pulumi type token the pack shares",
        lambda value: (
            value
            in (props.EKS_CLUSTER, props.NODE_GROUP, props.LAUNCH_TEMPLATE, props.ECR_REPOSITORY)
        ),
        # The program and the tools name these types too; within the pack, props.py is the home.
        {"policy/guardrails/props.py", "infra", "tools", "benchmarks"},
    ),
]
#: (module-level name, the only file that may define it).
NAME_FACTS = [
    ("PROJECT", "infra/config/kinds.py"),
    ("HTTPS_PORT", "infra/aws/vpc_endpoints.py"),
    ("CLOUDWATCH_RETENTION_DAYS", "infra/aws/limits.py"),
    ("GPU_TAINT_KEY", "infra/k8s/labels.py"),
]


def allowed(path: str, homes: set[str]) -> bool:
    return path in homes or any(path.startswith(f"{home}/") for home in homes)


Check = Callable[[object], bool]


def copies(check: Check, homes: set[str]) -> list[str]:
    return sorted(
        path
        for path, tree in sources()
        if not allowed(path, homes) and any(check(value) for value in literals(tree))
    )


@pytest.mark.parametrize(
    ("what", "check", "homes"), LITERAL_FACTS, ids=[f[0] for f in LITERAL_FACTS]
)
def test_each_fact_is_written_once(what: str, check: Check, homes: set[str]) -> None:
    assert copies(check, homes) == [], f"{what} is written again outside {sorted(homes)}"


@pytest.mark.parametrize(("name", "home"), NAME_FACTS)
def test_each_shared_name_is_defined_once(name: str, home: str) -> None:
    defining = sorted(path for path, tree in sources() if name in module_names(tree))
    assert defining == [home]


def test_the_disagreeing_pairs_now_agree() -> None:
    # The pack's deliberate copies are held equal to the program's and the tools'.
    assert props.GPU_RESOURCE == labels.GPU_RESOURCE == labels.GPU_TAINT_KEY
    assert (promotion.POLICY_NAME, promotion.CONFIG_KEY, promotion.ROLLBACK_KEY) == (
        delivery_promotion.POLICY_NAME,
        delivery_promotion.POLICY_KEY,
        delivery_promotion.ROLLBACK_KEY,
    )
    # Kubernetes: an RFC 1123 label is at most 63 characters; the config and the CRD check used
    # to disagree on that limit (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/).
    for pattern in (labels.DNS_1123_LABEL, labels.DNS_1035_LABEL):
        assert re.fullmatch(pattern, "a" * 63)
        assert not re.fullmatch(pattern, "a" * 64)
        assert not re.fullmatch(pattern, "-a")
    assert re.fullmatch(labels.DNS_1123_LABEL, "0abc")
    assert not re.fullmatch(labels.DNS_1035_LABEL, "0abc")
    # PutRetentionPolicy's retentionInDays values (CloudWatch Logs API reference).
    assert limits.CLOUDWATCH_RETENTION_DAYS[:6] == (1, 3, 5, 7, 14, 30)
    assert limits.CLOUDWATCH_RETENTION_DAYS[-1] == 3653
    assert vpc_endpoints.HTTPS_PORT == 443
    assert PROJECT == "torch-eks-inference"


def test_the_scan_sees_a_copy() -> None:
    """The scanner itself: a module that writes a fact again is found."""
    tree = ast.parse(
        'TAINT = "nvidia.com/gpu"\nDAYS = (1, 3, 5, 7, 365, 3653)\nP = r"[a-z]([-a-z0-9]*)"\n'
    )
    found = list(literals(tree))
    assert any(LITERAL_FACTS[0][1](v) for v in found)
    assert any(is_retention_list(v) for v in found)
    assert any(is_dns_label_pattern(v) for v in found)
    assert "TAINT" in set(module_names(tree))
