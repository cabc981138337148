"""The EKS cluster: its control plane, node role, and the system and GPU node groups.

The parts live in their own modules: ``control_plane`` (the EKS cluster, its keys, log group and
access entries), ``node_group`` (one managed node group; used for system and GPU nodes) and
``infra.aws.kms`` (key policies). This component composes them and keeps the outputs the program
reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.aws import gpu_instances
from infra.aws.eks_versions import SupportType
from infra.aws.iam import AccountContext, managed_policy_output, service_trust
from infra.components.control_plane import (
    CLUSTER_ADMIN_POLICY,
    CLUSTER_KMS_ACTIONS,
    CONTROL_PLANE_LOG_TYPES,
    VIEW_POLICY,
    WORKLOAD_DEPLOYERS_GROUP,
    AccessGrant,
    ControlPlane,
    ControlPlaneArgs,
    access_grants,
    access_policy_arn,
    control_plane_log_group_name,
)
from infra.components.node_group import (
    NODE_TEMPLATE_PREFIX,
    NodeGroup,
    NodeGroupArgs,
    node_template_tags,
)
from infra.components.types import component_options, moved_from, type_token
from infra.config import CapacityType, NodeScaling
from infra.k8s.labels import GPU_TAINT_EFFECT, GPU_TAINT_KEY, GPU_TAINT_VALUE

__all__ = [
    "ACCELERATOR_LABEL",
    "CLUSTER_ADMIN_POLICY",
    "CLUSTER_KMS_ACTIONS",
    "CONTROL_PLANE_LOG_TYPES",
    "GPU_AMI_TYPE",
    "GPU_NODE_LABELS",
    "GPU_TAINT_EFFECT",
    "GPU_TAINT_KEY",
    "GPU_TAINT_VALUE",
    "NODE_MANAGED_POLICIES",
    "NODE_TEMPLATE_PREFIX",
    "SYSTEM_AMI_TYPE",
    "SYSTEM_NODE_LABELS",
    "VIEW_POLICY",
    "WORKLOAD_DEPLOYERS_GROUP",
    "AccessGrant",
    "Cluster",
    "ClusterArgs",
    "access_grants",
    "access_policy_arn",
    "build_kubeconfig",
    "control_plane_log_group_name",
    "node_template_tags",
]

#: Labels of the GPU nodes; the workload's nodeSelector and the autoscaler templates use them.
GPU_NODE_LABELS: Final[Mapping[str, str]] = {
    "workload-class": "gpu",
    "nvidia.com/gpu.present": "true",
}
#: Label of the system nodes (add-ons, cluster-autoscaler, CoreDNS).
SYSTEM_NODE_LABELS: Final[Mapping[str, str]] = {"workload-class": "system"}
#: AMI types of the node groups: AL2023 with the NVIDIA driver and container toolkit for GPUs.
GPU_AMI_TYPE: Final = "AL2023_x86_64_NVIDIA"
SYSTEM_AMI_TYPE: Final = "AL2023_x86_64_STANDARD"
#: Managed policies the nodes need: join the cluster, pull images, run the VPC CNI.
NODE_MANAGED_POLICIES: Final = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEKS_CNI_Policy",
)
#: Label cluster-autoscaler's AWS provider reads to tell GPU nodes apart.
ACCELERATOR_LABEL: Final = "k8s.amazonaws.com/accelerator"
#: Root volume of the system nodes (GiB).
SYSTEM_ROOT_VOLUME_GIB: Final = 40


def build_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (no token is stored)."""
    user = f"{cluster_name}-aws"
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
        "users": [
            {
                "name": user,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--region",
                            region,
                            "--output",
                            "json",
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }
    return json.dumps(config, sort_keys=True)


@dataclass(frozen=True)
class ClusterArgs:
    """Inputs of ``Cluster``."""

    cluster_name: str
    kubernetes_version: str
    private_subnet_ids: pulumi.Input[Sequence[str]]
    public_access_cidrs: Sequence[str]
    gpu_instance_types: Sequence[str]
    gpu_capacity_type: CapacityType
    gpu_scaling: NodeScaling
    gpu_root_volume_gib: int
    system_instance_type: str
    system_scaling: NodeScaling
    log_retention_days: int
    deletion_protection: bool
    tags: Mapping[str, str]
    upgrade_support_type: SupportType = SupportType.STANDARD
    admin_role_arns: Sequence[str] = field(default_factory=tuple)
    deploy_role_arns: Sequence[str] = field(default_factory=tuple)
    preview_role_arns: Sequence[str] = field(default_factory=tuple)
    ephemeral_role_arns: Sequence[str] = field(default_factory=tuple)
    #: Called with the EKS cluster before any node group is declared; the node groups depend on
    #: what it returns (vpc-cni and the Pod Identity agent:
    #: ``infra.components.addons.BeforeCompute``).
    before_compute: Callable[[aws.eks.Cluster], Sequence[pulumi.Resource]] | None = None
    #: False when Karpenter provisions the GPU nodes (``nodeProvisioner: karpenter``).
    managed_gpu_node_group: bool = True


class Cluster(pulumi.ComponentResource):
    """An EKS cluster (``ControlPlane``), its node role and ``NodeGroup`` s.

    A system node group, and one GPU node group per GPU family unless Karpenter owns the GPU
    nodes.
    """

    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    secrets_key_arn: pulumi.Output[str]
    logs_key_arn: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    gpu_node_group_names: pulumi.Output[list[str]]
    #: The access entries and their policy associations: Kubernetes calls wait for them.
    access_resources: list[pulumi.Resource]
    control_plane_log_group_name: pulumi.Output[str]
    system_node_group: aws.eks.NodeGroup
    eks_cluster: aws.eks.Cluster

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("cluster", "Cluster")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        self._args = args
        self._ctx = AccountContext(self)
        # The control plane's and node groups' resources sat directly under this component.
        self._moved = moved_from(component_type, name)
        plane = ControlPlane(name, _control_plane_args(args, self._moved), _under(self))
        cluster = self.eks_cluster = plane.eks_cluster
        self.access_resources = plane.access_resources
        # Node groups are created after, and destroyed before, what nodes need from their start.
        self._compute_after = list(args.before_compute(cluster)) if args.before_compute else []
        node_role = self._node_role(name, dict(args.tags))
        self.node_role_arn = node_role.arn
        self._key_arn = plane.secrets_key.arn
        self.system_node_group = self._system_group(name).group
        # With nodeProvisioner karpenter a Karpenter NodePool owns the GPU nodes: no managed group
        # for cluster-autoscaler to size as well (one pool, one provisioner).
        families = gpu_instances.group_by_family(tuple(args.gpu_instance_types))
        gpu_groups = [
            self._gpu_group(name, family, types).group
            for family, types in families.items()
            if args.managed_gpu_node_group
        ]
        self._outputs(plane, gpu_groups)

    def _outputs(self, plane: ControlPlane, gpu_groups: Sequence[aws.eks.NodeGroup]) -> None:
        cluster = plane.eks_cluster
        self.name = cluster.name
        self.arn = cluster.arn
        self.endpoint = cluster.endpoint
        self.certificate_authority = cluster.certificate_authority.apply(lambda ca: ca.data or "")
        self.oidc_issuer = cluster.identities.apply(
            lambda ids: (ids[0].oidcs or [])[0].issuer or "" if ids else ""
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name, cluster.endpoint, self.certificate_authority, self._ctx.region
            ).apply(lambda v: build_kubeconfig(v[0], v[1], v[2], v[3]))
        )
        self.secrets_key_arn = plane.secrets_key.arn
        self.logs_key_arn = plane.logs_key.arn
        self.gpu_node_group_names = pulumi.Output.all(
            *[group.node_group_name for group in gpu_groups]
        ).apply(lambda names: [str(n) for n in names])
        self.control_plane_log_group_name = plane.log_group.name
        self.register_outputs(
            {
                "name": self.name,
                "arn": self.arn,
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "secrets_key_arn": self.secrets_key_arn,
                "logs_key_arn": self.logs_key_arn,
                "gpu_node_group_names": self.gpu_node_group_names,
            }
        )

    def _group_args(self, **kwargs: Any) -> NodeGroupArgs:
        args = self._args
        return NodeGroupArgs(
            cluster=self.eks_cluster,
            cluster_name=args.cluster_name,
            node_role_arn=self.node_role_arn,
            subnet_ids=args.private_subnet_ids,
            key_arn=self._key_arn,
            tags=args.tags,
            depends_on=self._compute_after,
            child_aliases=self._moved,
            **kwargs,
        )

    def _system_group(self, name: str) -> NodeGroup:
        args = self._args
        group_args = self._group_args(
            instance_types=[args.system_instance_type],
            capacity_type=CapacityType.ON_DEMAND,
            ami_type=SYSTEM_AMI_TYPE,
            scaling=args.system_scaling,
            labels=SYSTEM_NODE_LABELS,
            root_volume_gib=SYSTEM_ROOT_VOLUME_GIB,
        )
        return NodeGroup(f"{name}-system", group_args, _under(self))

    def _gpu_group(self, name: str, family: str, instance_types: tuple[str, ...]) -> NodeGroup:
        """One GPU family's group, with the node-template tags cluster-autoscaler scales from."""
        args = self._args
        first = family == gpu_instances.family_of(args.gpu_instance_types[0])
        # The minimum applies to the preferred (first) family; the others only scale from zero.
        low = args.gpu_scaling.min_size if first else 0
        labels = {**GPU_NODE_LABELS, ACCELERATOR_LABEL: gpu_instances.ACCELERATOR_BY_FAMILY[family]}
        gpus = min(gpu_instances.gpus_of(t) for t in instance_types)
        taint = (GPU_TAINT_KEY, GPU_TAINT_VALUE, GPU_TAINT_EFFECT)
        group_args = self._group_args(
            instance_types=list(instance_types),
            capacity_type=args.gpu_capacity_type,
            ami_type=GPU_AMI_TYPE,
            # Desired = minimum: `up` never waits on spot capacity or quota for nodes no pod asked
            # for; cluster-autoscaler owns the size afterwards.
            scaling=NodeScaling(low, low, args.gpu_scaling.max_size),
            labels=labels,
            taints=[
                aws.eks.NodeGroupTaintArgs(
                    key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE"
                )
            ],
            root_volume_gib=args.gpu_root_volume_gib,
            asg_tags=node_template_tags(labels, taint, gpus),
        )
        return NodeGroup(f"{name}-gpu-{family}", group_args, _under(self))

    def _node_role(self, name: str, tags: Mapping[str, str]) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=service_trust("ec2.amazonaws.com"),
            description=f"EKS nodes of {self._args.cluster_name}",
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        for policy in NODE_MANAGED_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=role.name,
                policy_arn=managed_policy_output(self._ctx.partition, policy),
                opts=pulumi.ResourceOptions(parent=self),
            )
        return role


def _under(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent)


def _control_plane_args(args: ClusterArgs, aliases: Sequence[pulumi.Alias]) -> ControlPlaneArgs:
    return ControlPlaneArgs(
        cluster_name=args.cluster_name,
        kubernetes_version=args.kubernetes_version,
        private_subnet_ids=args.private_subnet_ids,
        public_access_cidrs=args.public_access_cidrs,
        log_retention_days=args.log_retention_days,
        deletion_protection=args.deletion_protection,
        tags=args.tags,
        upgrade_support_type=args.upgrade_support_type,
        admin_role_arns=args.admin_role_arns,
        deploy_role_arns=args.deploy_role_arns,
        preview_role_arns=args.preview_role_arns,
        ephemeral_role_arns=args.ephemeral_role_arns,
        child_aliases=aliases,
    )
