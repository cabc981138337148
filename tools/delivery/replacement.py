"""Which input changes make Pulumi replace a resource instead of updating it in place.

For the resource types this program declares, the create-only inputs, as dotted paths of the
plan tool's inputs (``[*]`` matches any list index; a path also covers everything under it):

- pulumi-aws resources are bridged from the Terraform AWS provider, whose schema marks them
  ``ForceNew`` (hashicorp/terraform-provider-aws, internal/service/<service>/<resource>.go:
  eks/node_group.go, eks/cluster.go, ecr/repository.go, ec2/vpc_.go, ec2/vpc_subnet.go,
  kms/key.go, iam/role.go, secretsmanager/secret.go, logs/group.go, eks/addon.go,
  eks/pod_identity_association.go, eks/access_entry.go);
- pulumi-kubernetes replaces on ``metadata.name`` / ``metadata.namespace`` of every kind and on
  the per-kind fields of pulumi/pulumi-kubernetes provider/pkg/provider/diff.go
  (``forceNewProperties``: Deployment/DaemonSet/StatefulSet ``spec.selector``, Service
  ``spec.clusterIP``, Job ``spec.template``, ConfigMap/Secret data, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Final

_NODE_GROUP: Final = (
    "amiType",
    "capacityType",
    "clusterName",
    "diskSize",
    "instanceTypes",
    "launchTemplate.id",
    "launchTemplate.name",
    "nodeGroupName",
    "nodeGroupNamePrefix",
    "nodeRoleArn",
    "remoteAccess",
    "subnetIds",
)
_LABEL_SELECTOR: Final = ("spec.selector",)

CREATE_ONLY: Final[Mapping[str, tuple[str, ...]]] = {
    "aws:eks/nodeGroup:NodeGroup": _NODE_GROUP,
    "aws:eks/cluster:Cluster": (
        "name",
        "roleArn",
        "bootstrapSelfManagedAddons",
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "kubernetesNetworkConfig.ipFamily",
        "kubernetesNetworkConfig.serviceIpv4Cidr",
        "remoteNetworkConfig",
    ),
    "aws:ecr/repository:Repository": ("name", "encryptionConfigurations"),
    "aws:ec2/vpc:Vpc": ("cidrBlock", "instanceTenancy"),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "availabilityZoneId", "cidrBlock", "vpcId"),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keySpec", "keyUsage", "multiRegion"),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:secretsmanager/secret:Secret": ("name", "namePrefix"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix"),
    "aws:eks/addon:Addon": ("addonName", "clusterName"),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": (
        "clusterName",
        "namespace",
        "serviceAccount",
    ),
    "aws:eks/accessEntry:AccessEntry": ("clusterName", "principalArn", "type"),
    "kubernetes:apps/v1:Deployment": _LABEL_SELECTOR,
    "kubernetes:apps/v1:DaemonSet": _LABEL_SELECTOR,
    "kubernetes:apps/v1:StatefulSet": (
        *_LABEL_SELECTOR,
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "kubernetes:batch/v1:Job": (
        *_LABEL_SELECTOR,
        "spec.completions",
        "spec.parallelism",
        "spec.template",
    ),
    "kubernetes:core/v1:Service": ("spec.clusterIP",),
    "kubernetes:core/v1:ConfigMap": ("binaryData", "data"),
    "kubernetes:core/v1:Secret": ("type", "stringData", "data"),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
}
#: Every Kubernetes object is replaced when its name or namespace changes.
KUBERNETES_IDENTITY: Final = ("metadata.name", "metadata.namespace")


@cache
def _patterns(resource_type: str) -> tuple[re.Pattern[str], ...]:
    paths: Iterable[str] = CREATE_ONLY.get(resource_type, ())
    if resource_type.startswith("kubernetes:"):
        paths = (*paths, *KUBERNETES_IDENTITY)
    compiled = []
    for path in paths:
        body = re.escape(path).replace(r"\[\*\]", r"\[\d+\]")
        # The path itself, any list element of it, or anything below it.
        compiled.append(re.compile(rf"^{body}(\[\d+\])*([.\[].*)?$"))
    return tuple(compiled)


def forces_replacement(resource_type: str, path: str) -> bool:
    """True when a change of the input at ``path`` (plan-diff notation) replaces the resource."""
    return any(pattern.match(path) for pattern in _patterns(resource_type))
