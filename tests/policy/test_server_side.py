"""Enforcing the pack server-side, and who may change it.

- policy/server-side-config.json is what ``pulumi policy enable ORG/torch-eks-inference VERSION
  --policy-group GROUP --config policy/server-side-config.json`` takes
  (https://www.pulumi.com/docs/iac/cli/commands/pulumi_policy_enable/). It disables only the
  promotion rule, whose staging digest changes with every deploy and so comes from the deploy
  step's own ``--policy-pack-config``; every other rule stays as the pack declares it.
- .github/CODEOWNERS makes policy/ and .github/ changes need the owners' approval
  (https://docs.github.com/articles/about-code-owners).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policy.guardrails import POLICIES
from tools.delivery.policy_check import analyze, running_pack
from tools.delivery.promotion import configure_pack
from tools.plan import collect

REPO = Path(__file__).resolve().parents[2]
SERVER_CONFIG = REPO / "policy" / "server-side-config.json"
CODEOWNERS = REPO / ".github" / "CODEOWNERS"


@pytest.fixture(scope="module")
def pack() -> Iterator[Any]:
    with running_pack() as stub:
        yield stub


def test_server_side_config_names_real_policies_only() -> None:
    config = json.loads(SERVER_CONFIG.read_text())
    names = {p.name for p in POLICIES}
    assert set(config) <= names
    assert config == {"prod-image-promoted-from-staging": {"enforcementLevel": "disabled"}}


def test_server_side_config_keeps_every_other_rule_mandatory(pack: Any) -> None:
    configure_pack(pack, json.loads(SERVER_CONFIG.read_text()))
    prod = collect("prod")
    found = analyze(pack, "prod", prod)
    # Unconfigured, the promotion rule would refuse prod; disabled server-side, it is silent.
    assert not [f for f in found if f.policy == "prod-image-promoted-from-staging"]
    assert not [f for f in found if f.mandatory]
    broken = copy.deepcopy(prod)
    for resource in broken:
        if resource["type"] == "kubernetes:apps/v1:Deployment":
            resource["inputs"]["spec"]["template"]["spec"]["hostNetwork"] = True
    mandatory = {f.policy for f in analyze(pack, "prod", broken) if f.mandatory}
    assert mandatory == {"pods-no-host-access"}


def _rules() -> list[tuple[str, list[str]]]:
    rules = []
    for line in CODEOWNERS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pattern, *owners = line.split()
            rules.append((pattern, owners))
    return rules


def _owners(path: str) -> list[str]:
    """GitHub's rule: the last matching pattern wins (directory patterns match below them)."""
    owners: list[str] = []
    for pattern, who in _rules():
        anchored = pattern.lstrip("/")
        if path == anchored or (anchored.endswith("/") and path.startswith(anchored)):
            owners = who
    return owners


@pytest.mark.parametrize(
    "path",
    [
        "policy/guardrails/promotion.py",
        "policy/PulumiPolicy.yaml",
        "policy/server-side-config.json",
        ".github/workflows/deploy.yml",
        ".github/CODEOWNERS",
        "tests/policy/test_delivery_policies.py",
        "tools/delivery/deploy.py",
    ],
)
def test_codeowners_guard_the_pack_the_workflows_and_itself(path: str) -> None:
    owners = _owners(path)
    assert owners, path
    assert all(re.fullmatch(r"@[A-Za-z0-9-]+/[A-Za-z0-9_.-]+", o) for o in owners), owners


def test_codeowners_leave_ordinary_code_to_normal_review() -> None:
    assert _owners("service/app.py") == []
