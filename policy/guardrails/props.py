"""Reading resource properties the way the policy runtime hands them over.

The engine sends a resource's inputs with the provider's camelCase names; the runtime wraps them
in read-only proxies (``Mapping``/``Sequence``, not ``dict``/``list``) that raise
``UnknownValueError`` on a value only known after deployment, which the runtime turns into an
advisory "can't run during preview" note. So: test with ``Mapping``/``Sequence``, and let unknown
values raise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

#: Kubernetes kinds whose pod template lives at ``spec.template.spec``.
POD_TEMPLATE_TYPES = frozenset(
    {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:apps/v1:DaemonSet",
        "kubernetes:apps/v1:ReplicaSet",
        "kubernetes:batch/v1:Job",
    }
)
CRONJOB_TYPE = "kubernetes:batch/v1:CronJob"
POD_TYPE = "kubernetes:core/v1:Pod"
WORKLOAD_TYPES = POD_TEMPLATE_TYPES | {CRONJOB_TYPE, POD_TYPE}
#: The extended resource of a whole NVIDIA GPU. The same fact as infra/k8s/labels.py
#: ``GPU_RESOURCE``, written again on purpose: the pack imports nothing of the program it judges,
#: so it can be published on its own (policy/requirements.txt); tests/test_facts.py holds the two
#: equal.
GPU_RESOURCE = "nvidia.com/gpu"
#: Pulumi type tokens several rules look at (one definition each).
EKS_CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ECR_REPOSITORY = "aws:ecr/repository:Repository"


def get(value: Any, *path: str | int) -> Any:
    """``value[p0][p1]...`` through mappings and sequences, ``None`` where a step is absent."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, Sequence) or isinstance(value, str) or step >= len(value):
                return None
        elif not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def items(value: Any) -> list[Any]:
    """The elements of a sequence property, ``[]`` when absent (strings are not sequences)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [value[index] for index in range(len(value))]
    return []


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Any:
    """The pod spec of a workload resource, or ``None`` for other types."""
    if resource_type in POD_TEMPLATE_TYPES:
        return get(props, "spec", "template", "spec")
    if resource_type == CRONJOB_TYPE:
        return get(props, "spec", "jobTemplate", "spec", "template", "spec")
    if resource_type == POD_TYPE:
        return get(props, "spec")
    return None


def containers(spec: Any) -> Iterator[tuple[str, Any]]:
    """``(kind/name, container)`` for every container, init and ephemeral ones included."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(items(get(spec, field))):
            name = get(container, "name") or f"#{index}"
            yield f"{field}/{name}", container


def stack_of(urn: str) -> str:
    """The stack name in ``urn:pulumi:<stack>::<project>::<type>::<name>``."""
    prefix = "urn:pulumi:"
    if not urn.startswith(prefix) or "::" not in urn:
        return ""
    return urn[len(prefix) :].split("::", 1)[0]


def quantity_text(value: Any) -> str:
    """A Kubernetes quantity as text, so ``1``, ``1.0`` (numbers arrive as floats) and ``"1"``
    compare equal."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()
