"""Structural checks of the custom resources the program renders (KEDA and Karpenter).

kubernetes-validate ships only the built-in Kubernetes schemas, and the CRD schemas of KEDA and
Karpenter are not available offline here, so these checks are written from the documented fields:

- KEDA ScaledObject / TriggerAuthentication: https://keda.sh/docs/latest/reference/scaledobject-spec/,
  https://keda.sh/docs/latest/concepts/authentication/, the Prometheus and cron scaler pages, and
  the scaler code for the rules the docs leave implicit (kedacore/keda
  pkg/scalers/prometheus_scaler.go: ``authModes`` together with pod identity is refused).
- Karpenter v1 NodePool / EC2NodeClass: https://karpenter.sh/docs/concepts/nodepools/ and
  https://karpenter.sh/docs/concepts/nodeclasses/.

Strict like the built-in validation: an unknown field is an error, so a typo such as
``minReplicas`` (an HPA field) instead of ``minReplicaCount`` fails ``make manifests``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from infra.k8s import labels

Check = Callable[[Any, str], list[str]]


@dataclass(frozen=True)
class Obj:
    """An object with known fields; ``required`` must be present; others are refused."""

    fields: Mapping[str, Any]
    required: frozenset[str] = field(default_factory=frozenset)

    def __call__(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, Mapping):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        errors = [f"{path}.{key}: required" for key in sorted(self.required) if key not in value]
        for key, child in value.items():
            if key not in self.fields:
                errors.append(f"{path}.{key}: unknown field")
            else:
                errors += self.fields[key](child, f"{path}.{key}")
        return errors


@dataclass(frozen=True)
class ListOf:
    """A list whose items all match ``item`` (``min_items`` at least)."""

    item: Any
    min_items: int = 0

    def __call__(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        errors = [f"{path}: at least {self.min_items} item(s)"] * (len(value) < self.min_items)
        for index, item in enumerate(value):
            errors += self.item(item, f"{path}[{index}]")
        return errors


@dataclass(frozen=True)
class Str:
    """A string, optionally one of ``enum`` or matching ``pattern``."""

    enum: tuple[str, ...] = ()
    pattern: str = ""

    def __call__(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {value!r}"]
        if self.enum and value not in self.enum:
            return [f"{path}: {value!r} is not one of {', '.join(self.enum)}"]
        if self.pattern and not re.fullmatch(self.pattern, value):
            return [f"{path}: {value!r} does not match {self.pattern}"]
        return []


@dataclass(frozen=True)
class Int:
    """An integer within ``[low, high]``."""

    low: int = 0
    high: int = 2**31 - 1

    def __call__(self, value: Any, path: str) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected an integer, got {value!r}"]
        return [] if self.low <= value <= self.high else [f"{path}: {value} out of range"]


def boolean(value: Any, path: str) -> list[str]:
    """A boolean."""
    return [] if isinstance(value, bool) else [f"{path}: expected true or false"]


def string_map(value: Any, path: str) -> list[str]:
    """A map of strings to strings (labels, trigger metadata, tags)."""
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        return [f"{path}: expected a map of strings (numbers must be quoted)"]
    return []


_DURATION = r"(\d+(h|m|s))+|Never"
_QUANTITY = r"\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?"
_HPA_POLICY = Obj(
    {
        "type": Str(("Pods", "Percent")),
        "value": Int(1),
        "periodSeconds": Int(1, 1800),
    },
    frozenset({"type", "value", "periodSeconds"}),
)
_HPA_RULES = Obj(
    {
        "stabilizationWindowSeconds": Int(0, 3600),
        "selectPolicy": Str(("Max", "Min", "Disabled")),
        "policies": ListOf(_HPA_POLICY),
        "tolerance": Str(pattern=_QUANTITY),
    }
)
_TRIGGER = Obj(
    {
        "type": Str(),
        "name": Str(pattern=labels.DNS_1123_LABEL),
        "metadata": string_map,
        "metricType": Str(("AverageValue", "Value", "Utilization")),
        "useCachedMetrics": boolean,
        "authenticationRef": Obj(
            {"name": Str(), "kind": Str(("TriggerAuthentication", "ClusterTriggerAuthentication"))},
            frozenset({"name"}),
        ),
    },
    frozenset({"type", "metadata"}),
)
SCALED_OBJECT_SPEC: Final = Obj(
    {
        "scaleTargetRef": Obj(
            {"apiVersion": Str(), "kind": Str(), "name": Str(), "envSourceContainerName": Str()},
            frozenset({"name"}),
        ),
        "pollingInterval": Int(1),
        "cooldownPeriod": Int(0),
        "initialCooldownPeriod": Int(0),
        "idleReplicaCount": Int(0),
        "minReplicaCount": Int(0),
        "maxReplicaCount": Int(1),
        "fallback": Obj({"failureThreshold": Int(1), "replicas": Int(0), "behavior": Str()}),
        "advanced": Obj(
            {
                "restoreToOriginalReplicaCount": boolean,
                "horizontalPodAutoscalerConfig": Obj(
                    {
                        "name": Str(),
                        "behavior": Obj({"scaleUp": _HPA_RULES, "scaleDown": _HPA_RULES}),
                    }
                ),
                "scalingModifiers": Obj(
                    {
                        "formula": Str(),
                        "target": Str(),
                        "activationTarget": Str(),
                        "metricType": Str(),
                    }
                ),
            }
        ),
        "triggers": ListOf(_TRIGGER, min_items=1),
    },
    frozenset({"scaleTargetRef", "triggers"}),
)
TRIGGER_AUTHENTICATION_SPEC: Final = Obj(
    {
        "podIdentity": Obj(
            {
                "provider": Str(("none", "azure-workload", "gcp", "aws", "aws-eks")),
                "roleArn": Str(pattern=r"arn:aws[a-z-]*:iam::\d{12}:role/.+"),
                "identityOwner": Str(("keda", "workload")),
                "identityId": Str(),
            },
            frozenset({"provider"}),
        ),
        "secretTargetRef": ListOf(Obj({"parameter": Str(), "name": Str(), "key": Str()})),
        "env": ListOf(Obj({"parameter": Str(), "name": Str(), "containerName": Str()})),
    }
)
_REQUIREMENT = Obj(
    {
        "key": Str(),
        "operator": Str(("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")),
        "values": ListOf(Str()),
        "minValues": Int(1, 50),
    },
    frozenset({"key", "operator"}),
)
_TAINT = Obj(
    {
        "key": Str(),
        "value": Str(),
        "effect": Str(("NoSchedule", "PreferNoSchedule", "NoExecute")),
    },
    frozenset({"key", "effect"}),
)
NODE_POOL_SPEC: Final = Obj(
    {
        "template": Obj(
            {
                "metadata": Obj({"labels": string_map, "annotations": string_map}),
                "spec": Obj(
                    {
                        "nodeClassRef": Obj(
                            {"group": Str(), "kind": Str(), "name": Str()},
                            frozenset({"group", "kind", "name"}),
                        ),
                        "taints": ListOf(_TAINT),
                        "startupTaints": ListOf(_TAINT),
                        "requirements": ListOf(_REQUIREMENT),
                        "expireAfter": Str(pattern=_DURATION),
                        "terminationGracePeriod": Str(pattern=_DURATION),
                    },
                    frozenset({"nodeClassRef", "requirements"}),
                ),
            },
            frozenset({"spec"}),
        ),
        "disruption": Obj(
            {
                "consolidationPolicy": Str(("WhenEmptyOrUnderutilized", "WhenEmpty")),
                "consolidateAfter": Str(pattern=_DURATION),
                "budgets": ListOf(
                    Obj(
                        {
                            "nodes": Str(pattern=r"\d+%?"),
                            "schedule": Str(),
                            "duration": Str(pattern=_DURATION),
                            "reasons": ListOf(Str(("Underutilized", "Empty", "Drifted"))),
                        }
                    )
                ),
            },
            frozenset({"consolidateAfter"}),
        ),
        "limits": string_map,
        "weight": Int(1, 100),
    },
    frozenset({"template"}),
)
_VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "sc1", "st1", "gp3")
_SELECTOR_TERM = Obj({"id": Str(), "tags": string_map, "name": Str()})
EC2_NODE_CLASS_SPEC: Final = Obj(
    {
        "amiFamily": Str(("AL2", "AL2023", "Bottlerocket", "Windows2019", "Windows2022", "Custom")),
        "amiSelectorTerms": ListOf(
            Obj(
                {
                    "alias": Str(
                        pattern=r"(al2|al2023|bottlerocket|windows2019|windows2022)@"
                        r"(latest|v[0-9.]+)"
                    ),
                    "id": Str(pattern=r"ami-[0-9a-z]+"),
                    "name": Str(),
                    "owner": Str(),
                    "tags": string_map,
                    "ssmParameter": Str(),
                }
            ),
            min_items=1,
        ),
        "role": Str(),
        "instanceProfile": Str(),
        "subnetSelectorTerms": ListOf(_SELECTOR_TERM, min_items=1),
        "securityGroupSelectorTerms": ListOf(_SELECTOR_TERM, min_items=1),
        "capacityReservationSelectorTerms": ListOf(Obj({"id": Str(), "tags": string_map})),
        "associatePublicIPAddress": boolean,
        "userData": Str(),
        "tags": string_map,
        "detailedMonitoring": boolean,
        "instanceStorePolicy": Str(("RAID0",)),
        "context": Str(),
        "kubelet": Obj({"maxPods": Int(1), "podsPerCore": Int(0), "clusterDNS": ListOf(Str())}),
        "metadataOptions": Obj(
            {
                "httpEndpoint": Str(("enabled", "disabled")),
                "httpProtocolIPv6": Str(("enabled", "disabled")),
                "httpPutResponseHopLimit": Int(1, 64),
                "httpTokens": Str(("required", "optional")),
            }
        ),
        "blockDeviceMappings": ListOf(
            Obj(
                {
                    "deviceName": Str(),
                    "rootVolume": boolean,
                    "ebs": Obj(
                        {
                            "volumeSize": Str(pattern=r"\d+(G|Gi|T|Ti)"),
                            "volumeType": Str(_VOLUME_TYPES),
                            "iops": Int(0),
                            "throughput": Int(0),
                            "encrypted": boolean,
                            "kmsKeyID": Str(),
                            "deleteOnTermination": boolean,
                            "snapshotID": Str(),
                        }
                    ),
                }
            )
        ),
    },
    frozenset({"amiSelectorTerms", "subnetSelectorTerms", "securityGroupSelectorTerms"}),
)

#: (apiVersion, kind) -> spec check.
CUSTOM_RESOURCES: Final[Mapping[tuple[str, str], Check]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT_SPEC,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): TRIGGER_AUTHENTICATION_SPEC,
    ("karpenter.sh/v1", "NodePool"): NODE_POOL_SPEC,
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): EC2_NODE_CLASS_SPEC,
}

_TRIGGER_REQUIRED_METADATA: Final = {
    "prometheus": ("serverAddress", "query", "threshold"),
    "cron": ("timezone", "start", "end", "desiredReplicas"),
    "cpu": ("value",),
}


def is_custom_resource(doc: Mapping[str, Any]) -> bool:
    """True for the custom resources this module knows."""
    return (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_RESOURCES


def _scaled_object_rules(doc: Mapping[str, Any], auths: Mapping[str, Any]) -> list[str]:
    spec = doc.get("spec") or {}
    errors: list[str] = []
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if isinstance(low, int) and isinstance(high, int) and low > high:
        errors.append(f"spec: minReplicaCount {low} exceeds maxReplicaCount {high}")
    triggers = spec.get("triggers") or []
    kinds = {t.get("type") for t in triggers if isinstance(t, Mapping)}
    if low == 0 and kinds and kinds <= {"cpu", "memory"}:
        errors.append("spec: scaling to zero needs a trigger other than cpu/memory")
    for index, trigger in enumerate(t for t in triggers if isinstance(t, Mapping)):
        where = f"spec.triggers[{index}]"
        metadata = trigger.get("metadata") or {}
        for key in _TRIGGER_REQUIRED_METADATA.get(str(trigger.get("type")), ()):
            if key not in metadata:
                errors.append(f"{where}.metadata.{key}: required by the {trigger['type']} scaler")
        ref = (trigger.get("authenticationRef") or {}).get("name")
        if ref is None:
            continue
        auth = auths.get(ref)
        if auth is None:
            errors.append(f"{where}.authenticationRef: no TriggerAuthentication {ref!r} here")
        elif (auth.get("podIdentity") or {}).get("provider") not in (None, "none") and (
            "authModes" in metadata
        ):
            errors.append(f"{where}.metadata.authModes: KEDA refuses it with pod identity")
    return errors


def _hpa_conflicts(doc: Mapping[str, Any], hpas: Mapping[tuple[str, str], str]) -> list[str]:
    """KEDA's webhook: a ScaledObject may not target a workload another HPA already scales,
    unless it takes that HPA over (annotation + the same HPA name; kedacore/keda
    apis/keda/v1alpha1/scaledobject_webhook.go, ``verifyHpas``)."""
    spec = doc.get("spec") or {}
    target = (spec.get("scaleTargetRef") or {}).get("name")
    hpa = hpas.get((doc["metadata"].get("namespace", ""), str(target)))
    if hpa is None:
        return []
    annotations = doc["metadata"].get("annotations") or {}
    adopt = annotations.get("scaledobject.keda.sh/transfer-hpa-ownership") == "true"
    named = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get("name")
    if adopt and named == hpa:
        return []
    return [f"spec.scaleTargetRef: the workload {target!r} is already managed by the hpa {hpa!r}"]


def check_documents(
    docs: Sequence[Mapping[str, Any]],
) -> list[tuple[Mapping[str, Any], list[str]]]:
    """``(document, errors)`` for every known custom resource among ``docs``."""
    auths: dict[str, dict[str, Any]] = {}
    node_classes = set()
    hpas: dict[tuple[str, str], str] = {}
    for doc in docs:
        namespace = doc["metadata"].get("namespace", "")
        if doc.get("kind") == "HorizontalPodAutoscaler":
            target = ((doc.get("spec") or {}).get("scaleTargetRef") or {}).get("name")
            hpas[(namespace, str(target))] = doc["metadata"]["name"]
        if doc.get("kind") == "TriggerAuthentication":
            auths.setdefault(namespace, {})[doc["metadata"]["name"]] = doc.get("spec") or {}
        if doc.get("kind") == "EC2NodeClass":
            node_classes.add(doc["metadata"]["name"])
    result: list[tuple[Mapping[str, Any], list[str]]] = []
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in CUSTOM_RESOURCES:
            continue
        namespace = doc["metadata"].get("namespace", "")
        errors = CUSTOM_RESOURCES[key](doc.get("spec"), "spec")  # type: ignore[index]
        if doc["kind"] == "ScaledObject":
            errors += _scaled_object_rules(doc, auths.get(namespace, {}))
            errors += _hpa_conflicts(doc, hpas)
        if doc["kind"] == "NodePool":
            ref = ((doc.get("spec") or {}).get("template") or {}).get("spec", {})
            name = (ref.get("nodeClassRef") or {}).get("name")
            if name not in node_classes:
                errors.append(f"spec.template.spec.nodeClassRef: no EC2NodeClass {name!r}")
        result.append((doc, errors))
    return result
