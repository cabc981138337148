"""The structural checks of KEDA and Karpenter objects refuse what the API server or KEDA would.

Each case starts from an object the program really renders (dev's ScaledObject, a Karpenter
stack's NodePool and EC2NodeClass) and breaks one documented rule.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.test_karpenter import _karpenter
from tests.stack_inventory import Inventory
from tools import crd_check, manifests


@pytest.fixture(scope="module")
def dev_docs(stack_run: Callable[[str], Inventory]) -> list[dict[str, Any]]:
    resources, _ = manifests.program_resources("dev", stack_run("dev").run)
    return manifests.documents(resources)


@pytest.fixture(scope="module")
def karpenter_docs() -> list[dict[str, Any]]:
    inv = _karpenter("staging")
    resources, _ = manifests.program_resources("staging", inv.run)
    return [d for d in manifests.documents(resources) if d["kind"] in ("NodePool", "EC2NodeClass")]


def errors_after(docs: list[dict[str, Any]], kind: str, change: Callable[[Any], None]) -> list[str]:
    broken = copy.deepcopy(docs)
    (doc,) = [d for d in broken if d["kind"] == kind]
    change(doc)
    return [e for _, problems in crd_check.check_documents(broken) for e in problems]


def test_rendered_objects_are_clean(
    dev_docs: list[dict[str, Any]], karpenter_docs: list[dict[str, Any]]
) -> None:
    checked = crd_check.check_documents(dev_docs + karpenter_docs)
    assert {d["kind"] for d, _ in checked} == {
        "ScaledObject",
        "TriggerAuthentication",
        "NodePool",
        "EC2NodeClass",
    }
    assert [e for _, problems in checked for e in problems] == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # An HPA field name where KEDA wants its own is an unknown field, not silently ignored.
        (lambda d: d["spec"].update(minReplicas=1), "spec.minReplicas: unknown field"),
        (lambda d: d["spec"]["triggers"][0]["metadata"].pop("query"), "query: required"),
        (
            lambda d: d["spec"]["triggers"][0]["metadata"].update(threshold=8),
            "expected a map of strings",
        ),
        (
            lambda d: d["spec"]["triggers"][0]["metadata"].update(authModes="sigv4"),
            "KEDA refuses it with pod identity",
        ),
        (
            lambda d: d["spec"]["triggers"][0].update(authenticationRef={"name": "missing"}),
            "no TriggerAuthentication 'missing'",
        ),
        (
            lambda d: d["spec"].update(
                triggers=[t for t in d["spec"]["triggers"] if t["type"] == "cpu"]
            ),
            "scaling to zero needs a trigger other than cpu/memory",
        ),
        (
            lambda d: d["spec"].update(minReplicaCount=5, maxReplicaCount=2),
            "minReplicaCount 5 exceeds maxReplicaCount 2",
        ),
        (
            lambda d: d["spec"]["triggers"][0].update(metricType="Average"),
            "'Average' is not one of",
        ),
    ],
)
def test_scaled_object_rules(
    dev_docs: list[dict[str, Any]], change: Callable[[Any], None], expected: str
) -> None:
    errors = errors_after(dev_docs, "ScaledObject", change)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        (
            "NodePool",
            lambda d: d["spec"]["disruption"].update(consolidationPolicy="WhenUnderutilized"),
            "is not one of WhenEmptyOrUnderutilized, WhenEmpty",  # the v1beta1 name is gone
        ),
        (
            "NodePool",
            lambda d: d["spec"]["template"]["spec"]["nodeClassRef"].update(name="other"),
            "no EC2NodeClass 'other'",
        ),
        ("NodePool", lambda d: d["spec"].update(limits={"nvidia.com/gpu": 3}), "map of strings"),
        (
            "EC2NodeClass",
            lambda d: d["spec"]["metadataOptions"].update(httpTokens="none"),
            "'none' is not one of required, optional",
        ),
        (
            "EC2NodeClass",
            lambda d: d["spec"].update(amiSelectorTerms=[{"alias": "al2023"}]),
            "does not match",
        ),
        ("EC2NodeClass", lambda d: d["spec"].pop("subnetSelectorTerms"), "required"),
        (
            "EC2NodeClass",
            lambda d: d["spec"]["blockDeviceMappings"][0]["ebs"].update(volumeSize=100),
            "expected a string",
        ),
    ],
)
def test_karpenter_rules(
    karpenter_docs: list[dict[str, Any]],
    kind: str,
    change: Callable[[Any], None],
    expected: str,
) -> None:
    errors = errors_after(karpenter_docs, kind, change)
    assert any(expected in e for e in errors), errors


def test_manifests_reports_custom_resource_errors_as_schema_errors(
    dev_docs: list[dict[str, Any]],
) -> None:
    broken = copy.deepcopy(dev_docs)
    (scaled,) = [d for d in broken if d["kind"] == "ScaledObject"]
    scaled["spec"]["pollingIntervall"] = 15
    errors = manifests.validate_documents(broken, "1.33")
    assert [str(e) for e in errors] == [
        "inference.scaledobject.inference: spec.pollingIntervall: unknown field"
    ]


def test_an_hpa_on_the_same_deployment_is_refused_unless_taken_over(
    dev_docs: list[dict[str, Any]],
) -> None:
    (scaled,) = [d for d in dev_docs if d["kind"] == "ScaledObject"]
    target = scaled["spec"]["scaleTargetRef"]["name"]
    old_hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target, "namespace": scaled["metadata"]["namespace"]},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 2,
        },
    }
    # What the program renders takes the old HPA over: accepted.
    clean = [e for _, p in crd_check.check_documents([*dev_docs, old_hpa]) for e in p]
    assert clean == []
    # Without the take-over annotation KEDA's webhook refuses it.
    errors = errors_after(
        [*dev_docs, old_hpa], "ScaledObject", lambda d: d["metadata"].pop("annotations")
    )
    assert errors == [
        f"spec.scaleTargetRef: the workload {target!r} is already managed by the hpa {target!r}"
    ]
