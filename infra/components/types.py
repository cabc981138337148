"""One type-token scheme for every component: ``torch-eks-inference:<area>:<Class>``.

The area says which part of the platform a component belongs to:

- ``network``: the VPC, its subnets, NAT and endpoints;
- ``cluster``: the EKS control plane, its node groups, add-ons and the deployers' RBAC;
- ``registry``: the ECR repository and the service image pushed to it;
- ``secrets``: the API key in Secrets Manager and who may read it;
- ``workload``: what runs the service in the cluster (Deployment, Service, PDB, policies);
- ``observability``: logs, metrics store, alarms and the dashboard;
- ``scaling``: what scales pods (KEDA) and GPU nodes (Karpenter).

A component's URN holds its type token, and each child's URN holds its parent's, so a new
token without an alias would make ``pulumi up`` delete and recreate the component and every
resource under it (https://www.pulumi.com/docs/iac/concepts/options/aliases/). Each renamed
component therefore declares ``aliases=[pulumi.Alias(type_=<old token>)]`` through
:func:`component_options`; children inherit their parent's aliases (Pulumi SDK
pulumi/runtime/resource.py ``all_aliases``), so they need none of their own.
"""

from __future__ import annotations

from typing import Final

import pulumi

PACKAGE: Final = "torch-eks-inference"


def type_token(area: str, class_name: str) -> str:
    """``torch-eks-inference:<area>:<Class>``."""
    return f"{PACKAGE}:{area}:{class_name}"


#: The tokens components had before this scheme, by their current token. They may go once every
#: stack (dev, staging, prod and any live pr-* stack) has run one `pulumi up` with the new
#: tokens: the state then holds the new URNs, and the aliases match nothing any more.
LEGACY_TYPES: Final[dict[str, str]] = {
    type_token("network", "Vpc"): "torch-eks:infra:Network",
    type_token("cluster", "Cluster"): "torch-eks:infra:Cluster",
    type_token("cluster", "BeforeComputeAddons"): "torch-eks:infra:BeforeComputeAddons",
    type_token("cluster", "Addons"): "torch-eks:infra:Addons",
    type_token("cluster", "WorkloadDeployerRbac"): "torch-eks:infra:WorkloadDeployerRbac",
    type_token("registry", "Registry"): "torch-eks:infra:Registry",
    type_token("registry", "ServiceImage"): "torch-eks:infra:ServiceImage",
    type_token("secrets", "ApiKeySecret"): "torch-eks:infra:ApiKeySecret",
    type_token("workload", "Workload"): "torch-inference:workload:Workload",
    type_token("observability", "ContainerInsightsLogs"): (
        "torch-inference:observability:ContainerInsightsLogs"
    ),
    type_token("observability", "ServiceMonitoring"): (
        "torch-inference:observability:ServiceMonitoring"
    ),
    type_token("observability", "ManagedPrometheus"): "torch-eks:infra:ManagedPrometheus",
    type_token("scaling", "Keda"): "torch-eks:infra:Keda",
    type_token("scaling", "Karpenter"): "torch-eks:infra:Karpenter",
}


def component_options(
    token: str, opts: pulumi.ResourceOptions | None
) -> pulumi.ResourceOptions | None:
    """``opts`` plus an alias to the component's legacy token, when it had one."""
    legacy = LEGACY_TYPES.get(token)
    if legacy is None:
        return opts
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=legacy)])
    )


def moved_from(token: str, name: str) -> list[pulumi.Alias]:
    """Aliases of a resource that sat directly under the top-level component ``name``.

    For resources moved from that component into a new sub-component: their old parent is the
    component under its legacy token (``torch-eks:infra:Cluster::cluster``), a URN the renamed
    component no longer has, so the alias names it as a URN string (an ``Alias.parent`` may be
    a resource or a URN). Goes with ``LEGACY_TYPES``.
    """
    legacy = LEGACY_TYPES.get(token)
    if legacy is None:
        return []
    urn = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{legacy}::{name}"
    return [pulumi.Alias(parent=urn)]
