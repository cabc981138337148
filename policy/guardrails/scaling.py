"""Scaling guardrails: a GPU workload scales on its load; one provisioner per node pool.

A GPU-bound pod can be saturated (requests queueing, p99 rising) while its CPU sits low, so an
autoscaler that only sees CPU (or memory) never adds the pod that is needed. This stack policy
looks at every workload that requests ``nvidia.com/gpu`` and at the autoscalers aimed at it
(``autoscaling/v2`` HorizontalPodAutoscalers and KEDA ScaledObjects); when the only signals they
scale on are CPU and memory (a KEDA cron window is a schedule, not a load signal), it refuses the
stack. A GPU workload without any autoscaler is not this policy's concern.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from .props import GPU_RESOURCE, NODE_GROUP, POD_TEMPLATE_TYPES, containers, get, items, pod_spec

HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT_TYPE = "kubernetes:keda.sh/v1alpha1:ScaledObject"
#: Signals that say nothing about a GPU's load.
_NOT_LOAD = frozenset({"cpu", "memory", "cron"})


def _uses_gpu(resource_type: str, props: Any) -> bool:
    spec = pod_spec(resource_type, props)
    return any(
        get(container, "resources", "limits", GPU_RESOURCE) is not None
        or get(container, "resources", "requests", GPU_RESOURCE) is not None
        for _, container in containers(spec)
    )


def _hpa_signals(props: Any) -> list[str]:
    signals = []
    for metric in items(get(props, "spec", "metrics")):
        kind = get(metric, "type")
        if kind == "Resource":
            signals.append(str(get(metric, "resource", "name")))
        elif kind == "ContainerResource":
            signals.append(str(get(metric, "containerResource", "name")))
        else:
            signals.append(str(kind))
    return signals


def _scaled_object_signals(props: Any) -> list[str]:
    return [str(get(trigger, "type")) for trigger in items(get(props, "spec", "triggers"))]


def _target(resource_type: str, props: Any) -> tuple[Any, Any, Any]:
    ref = get(props, "spec", "scaleTargetRef")
    # A ScaledObject's kind defaults to Deployment.
    kind = get(ref, "kind") or ("Deployment" if resource_type == SCALED_OBJECT_TYPE else None)
    return get(props, "metadata", "namespace"), kind, get(ref, "name")


def _identity(resource_type: str, props: Any) -> tuple[Any, Any, Any]:
    """(namespace, kind, name) of a workload, as a scaleTargetRef names it."""
    kind = resource_type.rsplit(":", 1)[-1]
    return get(props, "metadata", "namespace"), kind, get(props, "metadata", "name")


def _gpu_scaling_signal(args: StackValidationArgs, report: ReportViolation) -> None:
    gpu_workloads = {
        _identity(r.resource_type, r.props): r
        for r in args.resources
        if r.resource_type in POD_TEMPLATE_TYPES and _uses_gpu(r.resource_type, r.props)
    }
    signals: dict[tuple[Any, Any, Any], list[str]] = {}
    for resource in args.resources:
        if resource.resource_type == HPA_TYPE:
            found = _hpa_signals(resource.props)
        elif resource.resource_type == SCALED_OBJECT_TYPE:
            found = _scaled_object_signals(resource.props)
        else:
            continue
        signals.setdefault(_target(resource.resource_type, resource.props), []).extend(found)
    for key, workload in gpu_workloads.items():
        seen = signals.get(key)
        if seen and set(seen) <= _NOT_LOAD:
            namespace, kind, name = key
            report(
                f"{kind} {namespace}/{name} uses {GPU_RESOURCE} but scales only on "
                f"{', '.join(sorted(set(seen)))}: a saturated GPU leaves the CPU low. Scale on "
                "its load (in-flight requests or queue time, e.g. a KEDA prometheus trigger)",
                workload.urn,
            )


gpu_workload_scales_on_load = StackValidationPolicy(
    name="gpu-workload-scales-on-load",
    description="A GPU workload's autoscaler uses a load signal, not only CPU or memory.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_gpu_scaling_signal,
)

NODE_POOL_TYPE = "kubernetes:karpenter.sh/v1:NodePool"


def _one_provisioner_per_pool(args: StackValidationArgs, report: ReportViolation) -> None:
    """A Karpenter NodePool and a managed node group must not offer the same nodes.

    When a managed node group carries every label of a NodePool's node template, a pending pod
    that selects those labels can be served by either: cluster-autoscaler grows the group while
    Karpenter launches its own node, and each scales the other's nodes down.
    """
    groups = [(r, get(r.props, "labels")) for r in args.resources if r.resource_type == NODE_GROUP]
    for pool in (r for r in args.resources if r.resource_type == NODE_POOL_TYPE):
        labels = get(pool.props, "spec", "template", "metadata", "labels") or {}
        if not labels:
            continue
        for group, group_labels in groups:
            if group_labels and all(group_labels.get(k) == v for k, v in labels.items()):
                report(
                    f"NodePool {get(pool.props, 'metadata', 'name')} and node group {group.name} "
                    f"both provide nodes labelled {dict(labels)}: one pool, one provisioner "
                    "(nodeProvisioner karpenter has no managed GPU node group)",
                    pool.urn,
                )


one_provisioner_per_node_pool = StackValidationPolicy(
    name="one-provisioner-per-node-pool",
    description="No node pool is provisioned by both Karpenter and cluster-autoscaler.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_one_provisioner_per_pool,
)

POLICIES = [gpu_workload_scales_on_load, one_provisioner_per_node_pool]
