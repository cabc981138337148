"""gpu-workload-scales-on-load: the pack, started as the CLI starts it, on real stack inventories.

The shipped stacks pass (their ScaledObjects scale on in-flight requests and queue time); the
same inventories with the load triggers taken out, or with the CPU-only HPA the program used to
declare, are refused as mandatory violations naming the Deployment.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tools.delivery.policy_check import analyze, running_pack
from tools.plan import collect

POLICY = "gpu-workload-scales-on-load"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


@pytest.fixture(scope="module")
def pack() -> Iterator[Any]:
    with running_pack() as stub:
        yield stub


@pytest.fixture(scope="module")
def staging() -> list[dict[str, Any]]:
    return collect("staging")


def _scaling_findings(pack: Any, inventory: list[dict[str, Any]]) -> list[Any]:
    return [f for f in analyze(pack, "staging", inventory) if f.policy == POLICY]


def _with_triggers(inventory: list[dict[str, Any]], keep: set[str]) -> list[dict[str, Any]]:
    changed = copy.deepcopy(inventory)
    for resource in changed:
        if resource["type"] == SCALED_OBJECT:
            spec = resource["inputs"]["spec"]
            spec["triggers"] = [t for t in spec["triggers"] if t["type"] in keep]
    return changed


def test_the_shipped_gpu_stack_scales_on_load(pack: Any, staging: list[dict[str, Any]]) -> None:
    assert _scaling_findings(pack, staging) == []


def test_a_scaled_object_left_with_cpu_alone_is_refused(
    pack: Any, staging: list[dict[str, Any]]
) -> None:
    (finding,) = _scaling_findings(pack, _with_triggers(staging, {"cpu"}))
    assert finding.mandatory
    assert finding.resource_type == "kubernetes:apps/v1:Deployment"
    assert "scales only on cpu" in finding.message


def test_cpu_and_a_cron_window_are_still_not_a_load_signal(
    pack: Any, staging: list[dict[str, Any]]
) -> None:
    changed = _with_triggers(staging, {"cpu"})
    for resource in changed:
        if resource["type"] == SCALED_OBJECT:
            resource["inputs"]["spec"]["triggers"].append(
                {"type": "cron", "metadata": {"timezone": "UTC", "start": "0 8 * * *",
                                              "end": "0 9 * * *", "desiredReplicas": "1"}}
            )  # fmt: skip
    assert len(_scaling_findings(pack, changed)) == 1


def test_the_old_cpu_only_hpa_is_refused(pack: Any, staging: list[dict[str, Any]]) -> None:
    changed = [copy.deepcopy(r) for r in staging if r["type"] != SCALED_OBJECT]
    (deployment,) = [r for r in changed if r["type"] == "kubernetes:apps/v1:Deployment"]
    meta = deployment["inputs"]["metadata"]
    changed.append(
        {
            "type": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
            "name": "service-hpa",
            "urn": deployment["urn"].replace("Deployment::service-deployment", "HPA::service-hpa"),
            "parent": deployment.get("parent"),
            "inputs": {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"]
                    },
                    "minReplicas": 1,
                    "maxReplicas": 3,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}
                    }}],
                },
            },
        }
    )  # fmt: skip
    (finding,) = _scaling_findings(pack, changed)
    assert f"{meta['namespace']}/{meta['name']}" in finding.message


def test_a_cpu_workload_may_scale_on_cpu(pack: Any) -> None:
    # Only GPU workloads are this policy's concern: strip the GPU from the pod and CPU is fine.
    inventory = _with_triggers(collect("staging"), {"cpu"})
    for resource in inventory:
        if resource["type"] == "kubernetes:apps/v1:Deployment":
            for container in resource["inputs"]["spec"]["template"]["spec"]["containers"]:
                for part in ("limits", "requests"):
                    container["resources"].get(part, {}).pop("nvidia.com/gpu", None)
    assert _scaling_findings(pack, inventory) == []


def test_a_node_pool_next_to_a_managed_gpu_group_is_refused(pack: Any) -> None:
    """Karpenter's GPU NodePool next to a cluster-autoscaler GPU group: two provisioners."""
    from tests.infra.test_karpenter import _karpenter

    karpenter = _karpenter("staging")
    inventory = [
        {"type": r.type, "name": r.name, "urn": r.urn, "inputs": dict(r.inputs)}
        for r in karpenter.registrations
        if r.custom and not r.read
    ]
    assert [f for f in analyze(pack, "staging", inventory) if f.mandatory] == []
    (gpu_group,) = [
        r for r in collect("staging") if r["type"] == "aws:eks/nodeGroup:NodeGroup"
        and "gpu" in r["name"]
    ][:1]  # fmt: skip
    findings = [
        f for f in analyze(pack, "staging", [*inventory, gpu_group])
        if f.policy == "one-provisioner-per-node-pool"
    ]  # fmt: skip
    (finding,) = findings
    assert finding.mandatory
    assert finding.resource_type == "kubernetes:karpenter.sh/v1:NodePool"
