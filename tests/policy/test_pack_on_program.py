"""The whole pack, started as the Pulumi CLI starts it, on the mock inventory of every stack.

Mock inventories hold the inputs the program declares, which is what policies see during
``pulumi preview``. Zero mandatory findings on every stack is the bar; a deliberately broken
copy of the prod inventory proves the same path does report violations.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from policy.guardrails import POLICIES
from tools.delivery.policy_check import (
    DEFAULT_STACKS,
    analyze,
    format_findings,
    pack_policies,
    running_pack,
)
from tools.delivery.policy_check import main as policy_check_main
from tools.delivery.promotion import configure_pack, policy_config
from tools.plan import collect, run_program


@pytest.fixture(scope="module")
def pack() -> Iterator[Any]:
    with running_pack() as stub:
        yield stub


@pytest.fixture(scope="module")
def inventories() -> dict[str, list[dict[str, Any]]]:
    return {stack: collect(stack) for stack in DEFAULT_STACKS}


def test_the_running_pack_declares_every_policy(pack: Any) -> None:
    assert pack_policies(pack) == [policy.name for policy in POLICIES]


@pytest.fixture(scope="module")
def staging_digest() -> str:
    """What the deploy step reads from staging's ``imageDigest`` output, from the mock plan."""
    return str(run_program("staging").outputs["imageDigest"])


def test_no_mandatory_violation_on_any_stack(
    pack: Any, inventories: dict[str, list[dict[str, Any]]], staging_digest: str
) -> None:
    configure_pack(pack, policy_config(staging_digest))
    findings = [f for stack, inv in inventories.items() for f in analyze(pack, stack, inv)]
    counts = {stack: len(inv) for stack, inv in inventories.items()}
    report = format_findings(findings, list(inventories), counts)
    assert not [f for f in findings if f.mandatory], report
    # Not vacuous: each long-lived stack declares what the mandatory policies examine.
    for stack in ("dev", "staging", "prod"):
        types = {r["type"] for r in inventories[stack]}
        assert {
            "kubernetes:apps/v1:Deployment",
            "aws:cloudwatch/logGroup:LogGroup",
            "aws:secretsmanager/secret:Secret",
            "aws:ec2/launchTemplate:LaunchTemplate",
            "aws:eks/cluster:Cluster",
            "aws:eks/nodeGroup:NodeGroup",
        } <= types, stack
    # The one registry (CI pushes there; staging and prod run its digests).
    assert "aws:ecr/repository:Repository" in {r["type"] for r in inventories["dev"]}
    assert "kubernetes:apps/v1:Deployment" in {r["type"] for r in inventories["pr-123"]}


def _mutate(inventory: list[dict[str, Any]], type_: str, change: Any) -> None:
    resources = [r for r in inventory if r["type"] == type_]
    assert resources, type_
    for resource in resources:
        change(resource["inputs"])


def _prod_promotion_findings(pack: Any, inventory: list[dict[str, Any]]) -> list[str]:
    return [
        f.message
        for f in analyze(pack, "prod", inventory)
        if f.policy == "prod-image-promoted-from-staging"
    ]


def test_the_running_pack_refuses_a_prod_digest_staging_does_not_run(
    pack: Any, inventories: dict[str, list[dict[str, Any]]], staging_digest: str
) -> None:
    # Configured through the Analyzer's Configure call, as --policy-pack-config does.
    configure_pack(pack, policy_config(staging_digest))
    assert _prod_promotion_findings(pack, inventories["prod"]) == []
    configure_pack(pack, policy_config("sha256:" + "f" * 64))
    (message,) = _prod_promotion_findings(pack, inventories["prod"])
    assert "not the digest staging runs" in message
    configure_pack(pack, {})
    (message,) = _prod_promotion_findings(pack, inventories["prod"])
    assert "stagingImageDigest" in message
    configure_pack(pack, policy_config(staging_digest))


def test_a_broken_prod_inventory_is_caught(
    pack: Any, inventories: dict[str, list[dict[str, Any]]], staging_digest: str
) -> None:
    configure_pack(pack, policy_config(staging_digest))
    broken = copy.deepcopy(inventories["prod"])

    def open_endpoint(inputs: dict[str, Any]) -> None:
        inputs["vpcConfig"]["publicAccessCidrs"] = ["0.0.0.0/0"]

    def tag_image(inputs: dict[str, Any]) -> None:
        inputs["spec"]["template"]["spec"]["containers"][0]["image"] = "svc:latest"

    def imdsv1(inputs: dict[str, Any]) -> None:
        inputs["metadataOptions"]["httpTokens"] = "optional"

    _mutate(broken, "aws:eks/cluster:Cluster", open_endpoint)
    _mutate(broken, "kubernetes:apps/v1:Deployment", tag_image)
    _mutate(broken, "aws:ec2/launchTemplate:LaunchTemplate", imdsv1)

    mandatory = {f.policy for f in analyze(pack, "prod", broken) if f.mandatory}
    assert mandatory == {
        "no-open-prod-cluster-endpoint",
        "image-pinned-by-digest",
        "launch-template-imdsv2",
        # A tag is not the digest staging runs either.
        "prod-image-promoted-from-staging",
    }


def test_policy_check_cli_names_an_unknown_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert policy_check_main(["--stack", "nope"]) == 2
    assert "Pulumi.nope.yaml" in capsys.readouterr().err
