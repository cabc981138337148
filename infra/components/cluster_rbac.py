"""Kubernetes RBAC for the roles that deploy workloads but must not administer the cluster.

EKS access policies cannot express "create namespaces and the service's objects, nothing else"
(the Admin and Edit policies cannot create namespaces; cluster admin can do anything), so the
preview and pr-stack roles get the Kubernetes group ``WORKLOAD_DEPLOYERS_GROUP`` in their access
entries, and this ClusterRole is bound to that group
(https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html: "specify one or
more group names ... and create and manage Kubernetes role-based access control objects").
"""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from infra.components.cluster import WORKLOAD_DEPLOYERS_GROUP
from infra.components.types import component_options, type_token

#: (API group, resources) a workload stack creates: infra/components/workload.py and its
#: scaling objects.
#: A server-side dry run (``pulumi preview``) needs the same verbs as the real write.
WORKLOAD_RESOURCES: Final = (
    ("", ("namespaces", "serviceaccounts", "services", "configmaps")),
    ("apps", ("deployments",)),
    ("autoscaling", ("horizontalpodautoscalers",)),
    ("policy", ("poddisruptionbudgets",)),
    ("networking.k8s.io", ("networkpolicies",)),
    ("keda.sh", ("scaledobjects", "triggerauthentications")),
)
WRITE_VERBS: Final = ("get", "list", "watch", "create", "update", "patch", "delete")
#: Read-only kinds a rollout is awaited on (pods and replica sets for status, events for errors).
READ_RESOURCES: Final = (
    ("", ("pods", "events", "endpoints")),
    ("apps", ("replicasets",)),
    ("discovery.k8s.io", ("endpointslices",)),
)
READ_VERBS: Final = ("get", "list", "watch")


def workload_deployer_rules() -> list[dict[str, list[str]]]:
    """The ClusterRole's rules, as plain dicts (what tests and the policy pack compare)."""
    rules = [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(WRITE_VERBS)}
        for group, resources in WORKLOAD_RESOURCES
    ]
    rules += [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(READ_VERBS)}
        for group, resources in READ_RESOURCES
    ]
    return rules


class WorkloadDeployerRbac(pulumi.ComponentResource):
    """ClusterRole + ClusterRoleBinding for ``WORKLOAD_DEPLOYERS_GROUP``."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        component_type = type_token("cluster", "WorkloadDeployerRbac")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-role",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="torch-eks-inference-workload-deployer"),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=rule["apiGroups"], resources=rule["resources"], verbs=rule["verbs"]
                )
                for rule in workload_deployer_rules()
            ],
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="torch-eks-inference-workload-deployers"),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role.metadata.name
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    api_group="rbac.authorization.k8s.io",
                    kind="Group",
                    name=WORKLOAD_DEPLOYERS_GROUP,
                )
            ],
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.register_outputs({})
