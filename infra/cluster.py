"""The EKS control plane, its encryption and logging, and the system and GPU node groups."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.config import CapacityType, NodeScaling
from infra.iam import (
    AccountContext,
    account_root_statement,
    document,
    eks_access_policy_arn,
    logs_service_statement,
    managed_policy_arn,
    managed_policy_output,
    service_trust,
)

#: Every control-plane log type EKS can ship to CloudWatch.
CONTROL_PLANE_LOG_TYPES: Final = ("api", "audit", "authenticator", "controllerManager", "scheduler")

#: Taint that keeps everything but GPU workloads off the GPU nodes.
GPU_TAINT_KEY: Final = "nvidia.com/gpu"
GPU_TAINT_VALUE: Final = "true"
GPU_TAINT_EFFECT: Final = "NoSchedule"
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
#: The ASG tag prefix cluster-autoscaler reads to build a node template for an empty group.
NODE_TEMPLATE_PREFIX: Final = "k8s.io/cluster-autoscaler/node-template"
#: Managed policies the nodes need: join the cluster, pull images, run the VPC CNI.
NODE_MANAGED_POLICIES: Final = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEKS_CNI_Policy",
)
#: What the cluster role needs on the secrets key for envelope encryption.
CLUSTER_KMS_ACTIONS: Final = ("kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey")
#: EKS access policy of the admin entries; its ARN carries the partition (eks_access_policy_arn).
CLUSTER_ADMIN_POLICY: Final = "AmazonEKSClusterAdminPolicy"


def _first_asg_name(resources: Sequence[aws.eks.outputs.NodeGroupResource]) -> str:
    """Name of the Auto Scaling group behind a managed node group."""
    groups = resources[0].autoscaling_groups if resources else None
    if not groups or not groups[0].name:
        raise ValueError("the node group reports no Auto Scaling group")
    return groups[0].name


def control_plane_log_group_name(cluster_name: str) -> str:
    """The log group EKS writes control-plane logs to (fixed by EKS)."""
    return f"/aws/eks/{cluster_name}/cluster"


def node_template_tags(
    labels: Mapping[str, str], taint: tuple[str, str, str], gpus: int
) -> dict[str, str]:
    """cluster-autoscaler node-template tags: labels, taint and GPU count of an empty group."""
    key, value, effect = taint
    tags = {f"{NODE_TEMPLATE_PREFIX}/label/{k}": v for k, v in labels.items()}
    tags[f"{NODE_TEMPLATE_PREFIX}/taint/{key}"] = f"{value}:{effect}"
    tags[f"{NODE_TEMPLATE_PREFIX}/resources/nvidia.com/gpu"] = str(gpus)
    return tags


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
    gpus_per_node: int
    gpu_root_volume_gib: int
    system_instance_type: str
    system_scaling: NodeScaling
    log_retention_days: int
    deletion_protection: bool
    tags: Mapping[str, str]
    admin_role_arns: Sequence[str] = field(default_factory=tuple)
    #: Called with the EKS cluster before any node group is declared; the node groups depend on
    #: what it returns (vpc-cni and the Pod Identity agent: ``infra.addons.BeforeCompute``).
    before_compute: Callable[[aws.eks.Cluster], Sequence[pulumi.Resource]] | None = None


class Cluster(pulumi.ComponentResource):
    """An EKS cluster with envelope-encrypted secrets, full control-plane logs and two node groups.

    The deployer's IAM role (the caller running ``pulumi up``) and ``admin_role_arns`` get
    cluster-admin access entries; nothing else is bootstrapped as admin.
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
    gpu_node_group_name: pulumi.Output[str]
    gpu_asg_name: pulumi.Output[str]
    control_plane_log_group_name: pulumi.Output[str]
    system_node_group: aws.eks.NodeGroup
    eks_cluster: aws.eks.Cluster

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("torch-eks:infra:Cluster", name, None, opts)
        self._args = args
        self._ctx = AccountContext(self)
        tags = dict(args.tags)
        protect = args.deletion_protection
        child = pulumi.ResourceOptions(parent=self, protect=protect)

        secrets_key = self._kms_key(
            f"{name}-secrets-key",
            "secrets",
            "EKS secret envelope encryption and node root volumes",
            self._secrets_key_policy(),
            child,
        )
        logs_key = self._kms_key(
            f"{name}-logs-key",
            "logs",
            "the control-plane log group",
            self._logs_key_policy(),
            child,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=control_plane_log_group_name(args.cluster_name),
            retention_in_days=args.log_retention_days,
            kms_key_id=logs_key.arn,
            tags=tags,
            opts=child,
        )
        cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            assume_role_policy=service_trust(
                "eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession")
            ),
            description=f"EKS control plane of {args.cluster_name}",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=cluster_role.name,
            policy_arn=self._ctx.partition.apply(
                lambda p: managed_policy_arn(p, "AmazonEKSClusterPolicy")
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # EKS encrypts and decrypts Kubernetes secrets as the cluster role: allow that one key.
        cluster_kms = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=cluster_role.id,
            policy=secrets_key.arn.apply(
                lambda arn: document(
                    [
                        {
                            "Sid": "EnvelopeEncryptionOfSecrets",
                            "Effect": "Allow",
                            "Action": list(CLUSTER_KMS_ACTIONS),
                            "Resource": arn,
                        }
                    ]
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.private_subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(args.public_access_cidrs),
                public_access_cidrs=list(args.public_access_cidrs) or None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                # Admins are explicit access entries below, not an invisible creator grant.
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            deletion_protection=args.deletion_protection,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self, protect=protect, depends_on=[log_group, cluster_policy, cluster_kms]
            ),
        )
        self.eks_cluster = cluster
        self._access_entries(name, cluster)
        compute_after = list(args.before_compute(cluster)) if args.before_compute else []
        node_role = self._node_role(name, tags)
        self.system_node_group = self._node_group(
            f"{name}-system",
            cluster,
            node_role,
            instance_types=[args.system_instance_type],
            capacity_type=CapacityType.ON_DEMAND,
            ami_type=SYSTEM_AMI_TYPE,
            scaling=args.system_scaling,
            labels=SYSTEM_NODE_LABELS,
            taints=[],
            root_volume_gib=40,
            key_arn=secrets_key.arn,
            tags=tags,
            depends_on=compute_after,
        )
        gpu_group = self._node_group(
            f"{name}-gpu",
            cluster,
            node_role,
            instance_types=list(args.gpu_instance_types),
            capacity_type=args.gpu_capacity_type,
            ami_type=GPU_AMI_TYPE,
            scaling=args.gpu_scaling,
            labels=GPU_NODE_LABELS,
            taints=[
                aws.eks.NodeGroupTaintArgs(
                    key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE"
                )
            ],
            root_volume_gib=args.gpu_root_volume_gib,
            key_arn=secrets_key.arn,
            tags=tags,
            depends_on=compute_after,
        )
        gpu_asg = gpu_group.resources.apply(_first_asg_name)
        # Managed node groups do not copy labels and taints to their ASG, so an empty GPU group
        # looks GPU-less to cluster-autoscaler until these tags tell it what a node would be.
        template = node_template_tags(
            GPU_NODE_LABELS, (GPU_TAINT_KEY, GPU_TAINT_VALUE, GPU_TAINT_EFFECT), args.gpus_per_node
        )
        for key, value in sorted(template.items()):
            aws.autoscaling.Tag(
                f"{name}-gpu-asg-{key.removeprefix(NODE_TEMPLATE_PREFIX + '/')}",
                autoscaling_group_name=gpu_asg,
                tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                opts=pulumi.ResourceOptions(parent=self),
            )

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
        self.secrets_key_arn = secrets_key.arn
        self.logs_key_arn = logs_key.arn
        self.node_role_arn = node_role.arn
        self.gpu_node_group_name = gpu_group.node_group_name
        self.gpu_asg_name = gpu_asg
        self.control_plane_log_group_name = log_group.name
        self.register_outputs(
            {
                "name": self.name,
                "arn": self.arn,
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "secrets_key_arn": self.secrets_key_arn,
                "logs_key_arn": self.logs_key_arn,
                "gpu_asg_name": self.gpu_asg_name,
            }
        )

    def _kms_key(
        self,
        name: str,
        alias: str,
        purpose: str,
        policy: pulumi.Output[str],
        opts: pulumi.ResourceOptions,
    ) -> aws.kms.Key:
        key = aws.kms.Key(
            name,
            description=f"{self._args.cluster_name}: {purpose}",
            enable_key_rotation=True,
            deletion_window_in_days=30 if self._args.deletion_protection else 7,
            policy=policy,
            tags=dict(self._args.tags),
            opts=opts,
        )
        aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{self._args.cluster_name}/{alias}",
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return key

    def _secrets_key_policy(self) -> pulumi.Output[str]:
        def build(partition: str, account: str) -> str:
            # EC2 Auto Scaling launches the nodes and must use the key for their root volumes.
            asg_role = (
                f"arn:{partition}:iam::{account}:role/aws-service-role/"
                "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
            )
            return document(
                [
                    account_root_statement(partition, account),
                    {
                        "Sid": "AutoScalingUseForNodeVolumes",
                        "Effect": "Allow",
                        "Principal": {"AWS": asg_role},
                        "Action": [
                            "kms:Encrypt",
                            "kms:Decrypt",
                            "kms:ReEncrypt*",
                            "kms:GenerateDataKey*",
                            "kms:DescribeKey",
                        ],
                        "Resource": "*",
                    },
                    {
                        "Sid": "AutoScalingGrantsForNodeVolumes",
                        "Effect": "Allow",
                        "Principal": {"AWS": asg_role},
                        "Action": "kms:CreateGrant",
                        "Resource": "*",
                        "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                    },
                ]
            )

        return pulumi.Output.all(self._ctx.partition, self._ctx.account_id).apply(
            lambda v: build(v[0], v[1])
        )

    def _logs_key_policy(self) -> pulumi.Output[str]:
        cluster = self._args.cluster_name

        def build(partition: str, account: str, region: str) -> str:
            groups = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/eks/{cluster}/*"
            return document(
                [
                    account_root_statement(partition, account),
                    logs_service_statement("CloudWatchLogsOfThisCluster", region, account, groups),
                ]
            )

        return pulumi.Output.all(self._ctx.partition, self._ctx.account_id, self._ctx.region).apply(
            lambda v: build(v[0], v[1], v[2])
        )

    def _access_entries(self, name: str, cluster: aws.eks.Cluster) -> None:
        # The deployer may be an assumed-role session; access entries need the role itself.
        deployer = aws.iam.get_session_context_output(
            arn=self._ctx.caller_arn, opts=pulumi.InvokeOutputOptions(parent=self)
        ).issuer_arn
        principals: list[tuple[str, pulumi.Input[str]]] = [("deployer", deployer)]
        principals += [(f"admin-{i}", arn) for i, arn in enumerate(self._args.admin_role_arns)]
        for label, principal in principals:
            entry = aws.eks.AccessEntry(
                f"{name}-{label}-access",
                cluster_name=cluster.name,
                principal_arn=principal,
                type="STANDARD",
                tags=dict(self._args.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-{label}-admin",
                cluster_name=cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=self._ctx.partition.apply(
                    lambda p: eks_access_policy_arn(p, CLUSTER_ADMIN_POLICY)
                ),
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(parent=self),
            )

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

    def _node_group(
        self,
        name: str,
        cluster: aws.eks.Cluster,
        role: aws.iam.Role,
        *,
        instance_types: list[str],
        capacity_type: CapacityType,
        ami_type: str,
        scaling: NodeScaling,
        labels: Mapping[str, str],
        taints: list[aws.eks.NodeGroupTaintArgs],
        root_volume_gib: int,
        key_arn: pulumi.Output[str],
        tags: Mapping[str, str],
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> aws.eks.NodeGroup:
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"{self._args.cluster_name} {name} nodes",
            # IMDSv2 only, and one hop: pods (one hop further) cannot reach the node's role.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=root_volume_gib,
                        volume_type="gp3",
                        encrypted="true",
                        kms_key_id=key_arn,
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=dict(tags))
                for kind in ("instance", "volume", "network-interface")
            ],
            update_default_version=True,
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return aws.eks.NodeGroup(
            name,
            cluster_name=cluster.name,
            version=cluster.version,
            node_role_arn=role.arn,
            subnet_ids=self._args.private_subnet_ids,
            instance_types=instance_types,
            capacity_type=capacity_type.value,
            ami_type=ami_type,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=scaling.min_size,
                desired_size=scaling.desired_size,
                max_size=scaling.max_size,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            labels=dict(labels),
            taints=taints,
            tags=dict(tags),
            opts=pulumi.ResourceOptions(
                parent=self,
                # Created after, and destroyed before, the add-ons nodes need from their start.
                depends_on=list(depends_on),
                # cluster-autoscaler owns the desired size once the group exists.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
