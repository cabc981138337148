"""Mandatory Kubernetes policies: no host namespaces, hostPath or added capabilities; pinned Helm
charts; no load balancer or Ingress open to the internet.

Sources: Pod Security Standards, baseline and restricted
(https://kubernetes.io/docs/concepts/security/pod-security-standards/: hostNetwork, hostPID,
hostIPC undefined or false; no hostPath volumes; capabilities.add empty or only
NET_BIND_SERVICE); AWS Load Balancer Controller annotations
(https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/service/annotations/:
``aws-load-balancer-scheme`` internal | internet-facing; the in-tree controller makes
internet-facing load balancers unless told ``aws-load-balancer-internal: "true"``).
"""

from __future__ import annotations

import re
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .props import WORKLOAD_TYPES, containers, get, items, pod_spec

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHART_V4 = "kubernetes:helm.sh/v4:Chart"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
_ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
#: An exact SemVer 2.0 version (https://semver.org), no range operators or wildcards.
_EXACT_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
)
_SCHEME = "service.beta.kubernetes.io/aws-load-balancer-scheme"
_LEGACY_INTERNAL = "service.beta.kubernetes.io/aws-load-balancer-internal"
_ALB_SCHEME = "alb.ingress.kubernetes.io/scheme"
_ALB_CIDRS = "alb.ingress.kubernetes.io/inbound-cidrs"
_OPEN = frozenset({"0.0.0.0/0", "::/0"})


def _host_access(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in WORKLOAD_TYPES:
        return
    spec = pod_spec(args.resource_type, args.props)
    for field in _HOST_NAMESPACES:
        if get(spec, field) is True:
            report(f"{field} is true: the pod would share the node's namespace", None)
    for volume in items(get(spec, "volumes")):
        if get(volume, "hostPath") is not None:
            report(f"volume {get(volume, 'name')!r} is a hostPath: node files in the pod", None)
    for label, container in containers(spec):
        added = [str(c) for c in items(get(container, "securityContext", "capabilities", "add"))]
        extra = sorted(set(added) - _ALLOWED_ADDED_CAPABILITIES)
        if extra:
            report(f"{label}: adds capabilities {extra}; only NET_BIND_SERVICE is allowed", None)


def _helm_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (HELM_RELEASE, HELM_CHART_V4):
        return
    version = get(args.props, "version")
    if not isinstance(version, str) or not _EXACT_SEMVER.match(version.strip()):
        report(
            f"chart {get(args.props, 'chart')!r} version {version!r} is not pinned; give an "
            "exact version such as 1.2.3 (no range, wildcard or 'latest')",
            None,
        )


def _is_open(ranges: Any) -> bool:
    entries = ranges.split(",") if isinstance(ranges, str) else items(ranges)
    values = [str(r).strip() for r in entries if str(r).strip()]
    return not values or any(v in _OPEN for v in values)


def _public_entry(args: ResourceValidationArgs, report: ReportViolation) -> None:
    annotations = get(args.props, "metadata", "annotations")
    if args.resource_type == SERVICE and get(args.props, "spec", "type") == "LoadBalancer":
        internal = (
            get(annotations, _SCHEME) == "internal"
            or str(get(annotations, _LEGACY_INTERNAL)).lower() == "true"
        )
        if not internal and _is_open(get(args.props, "spec", "loadBalancerSourceRanges")):
            report(
                "LoadBalancer Service is not marked internal (aws-load-balancer-scheme: "
                "internal) and its loadBalancerSourceRanges are open to the internet",
                None,
            )
    elif (
        args.resource_type == INGRESS
        and get(annotations, _ALB_SCHEME) == "internet-facing"
        and _is_open(get(annotations, _ALB_CIDRS))
    ):
        report("internet-facing Ingress without restricting inbound-cidrs", None)


pods_no_host_access = ResourceValidationPolicy(
    name="pods-no-host-access",
    description="Pods use no host namespaces, no hostPath volumes and add no capabilities.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_host_access,
)

helm_releases_pinned = ResourceValidationPolicy(
    name="helm-releases-pinned",
    description="Helm releases pin an exact chart version.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_helm_pinned,
)

no_world_open_load_balancer = ResourceValidationPolicy(
    name="no-world-open-load-balancer",
    description="Load balancers and Ingresses are internal or allow-list their sources.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_public_entry,
)

POLICIES = [pods_no_host_access, helm_releases_pinned, no_world_open_load_balancer]
