"""The EKS control plane, its encryption and logging, and the system and GPU node groups."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.aws import gpu_instances
from infra.aws.eks_versions import SupportType
from infra.aws.iam import (
    AccountContext,
    account_root_statement,
    document,
    logs_service_statement,
    managed_policy_arn,
    managed_policy_output,
    service_trust,
)
from infra.components.types import component_options, type_token
from infra.config import CapacityType, NodeScaling

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
#: EKS access policies (https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html).
CLUSTER_ADMIN_POLICY: Final = "AmazonEKSClusterAdminPolicy"
VIEW_POLICY: Final = "AmazonEKSViewPolicy"
#: Kubernetes group of the roles that deploy workloads (preview dry runs and pr stacks); the
#: ClusterRole bound to it (infra/components/cluster_rbac.py) grants the workload's object kinds
#: only.
WORKLOAD_DEPLOYERS_GROUP: Final = "torch-eks-inference:workload-deployers"
#: Label cluster-autoscaler's AWS provider reads to tell GPU nodes apart.
ACCELERATOR_LABEL: Final = "k8s.amazonaws.com/accelerator"
#: The Auto Scaling service-linked role: EC2 Auto Scaling launches the nodes with it, so it must
#: use the key of their root volumes. It exists only after an account's first Auto Scaling group.
AUTOSCALING_SERVICE_ROLE_PATH: Final = (
    "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
)


def access_policy_arn(partition: str, policy: str) -> str:
    """ARN of an EKS access policy (owned by the ``aws`` account, no region)."""
    return f"arn:{partition}:eks::aws:cluster-access-policy/{policy}"


@dataclass(frozen=True)
class AccessGrant:
    """What one IAM role may do in the cluster: access policies by scope, Kubernetes groups."""

    principal_arn: str
    policies: tuple[str, ...]
    kubernetes_groups: tuple[str, ...]


def access_grants(
    admins: Sequence[str],
    deployers: Sequence[str],
    previewers: Sequence[str],
    ephemeral: Sequence[str],
) -> list[AccessGrant]:
    """One grant per role (EKS allows one access entry per principal), least privilege per list.

    - admins, deployers: cluster admin (the add-ons install CRDs and cluster-wide RBAC);
    - previewers: view, plus the workload-deployers group, because a server-side dry run needs
      the write verbs of what it previews;
    - ephemeral (pr stacks): the workload-deployers group only.
    """
    policies: dict[str, set[str]] = {}
    groups: dict[str, set[str]] = {}
    for arn in [*admins, *deployers]:
        policies.setdefault(arn, set()).add(CLUSTER_ADMIN_POLICY)
    for arn in previewers:
        policies.setdefault(arn, set()).add(VIEW_POLICY)
        groups.setdefault(arn, set()).add(WORKLOAD_DEPLOYERS_GROUP)
    for arn in ephemeral:
        policies.setdefault(arn, set())
        groups.setdefault(arn, set()).add(WORKLOAD_DEPLOYERS_GROUP)
    return [
        AccessGrant(
            arn,
            tuple(sorted(policies[arn])),
            tuple(sorted(groups.get(arn, ()))) if CLUSTER_ADMIN_POLICY not in policies[arn] else (),
        )
        for arn in policies
    ]


def _principal_slug(arn: str) -> str:
    """A short, stable logical-name part for a role ARN (role name + hash of the whole ARN)."""
    role = arn.rsplit("/", 1)[-1].lower()
    digest = hashlib.sha256(arn.encode()).hexdigest()[:6]
    return f"{role[:40]}-{digest}"


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
    """An EKS cluster with envelope-encrypted secrets, full control-plane logs and node groups.

    A system node group, and one GPU node group per GPU family. Access entries come only from the
    four role lists of ``ClusterArgs``; nobody, not even whoever runs ``pulumi up``, is admitted
    implicitly (a creator grant would move to whoever ran the last ``up``).
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
        token = type_token("cluster", "Cluster")
        super().__init__(token, name, None, component_options(token, opts))
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
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(
                support_type=args.upgrade_support_type.value
            ),
            deletion_protection=args.deletion_protection,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self, protect=protect, depends_on=[log_group, cluster_policy, cluster_kms]
            ),
        )
        self.eks_cluster = cluster
        self.access_resources = self._access_entries(name, cluster)
        # Node groups are created after, and destroyed before, what nodes need from their start.
        self._compute_after = list(args.before_compute(cluster)) if args.before_compute else []
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
            depends_on=self._compute_after,
        )
        # With nodeProvisioner karpenter a Karpenter NodePool owns the GPU nodes: no managed group
        # for cluster-autoscaler to size as well (one pool, one provisioner).
        gpu_groups = [
            self._gpu_node_group(name, family, types, cluster, node_role, secrets_key.arn, tags)
            for family, types in gpu_instances.group_by_family(
                tuple(args.gpu_instance_types)
            ).items()
            if args.managed_gpu_node_group
        ]

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
        self.gpu_node_group_names = pulumi.Output.all(
            *[group.node_group_name for group in gpu_groups]
        ).apply(lambda names: [str(n) for n in names])
        self.control_plane_log_group_name = log_group.name
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
            # EC2 Auto Scaling launches the nodes and must use the key for their root volumes
            # (https://docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html).
            # Naming its service-linked role as Principal fails with
            # MalformedPolicyDocumentException in an account that has never had an Auto Scaling
            # group (the role does not exist yet, and KMS validates principals). A wildcard
            # principal pinned by aws:PrincipalArn + aws:PrincipalAccount admits exactly that
            # role once it exists, and KMS does not validate condition values
            # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn).
            asg_role = f"arn:{partition}:iam::{account}:{AUTOSCALING_SERVICE_ROLE_PATH}"
            only_that_role = {
                "StringEquals": {"aws:PrincipalAccount": account},
                "ArnEquals": {"aws:PrincipalArn": asg_role},
            }
            return document(
                [
                    account_root_statement(partition, account),
                    {
                        "Sid": "AutoScalingUseForNodeVolumes",
                        "Effect": "Allow",
                        "Principal": {"AWS": "*"},
                        "Action": [
                            "kms:Encrypt",
                            "kms:Decrypt",
                            "kms:ReEncrypt*",
                            "kms:GenerateDataKey*",
                            "kms:DescribeKey",
                        ],
                        "Resource": "*",
                        "Condition": only_that_role,
                    },
                    {
                        "Sid": "AutoScalingGrantsForNodeVolumes",
                        "Effect": "Allow",
                        "Principal": {"AWS": "*"},
                        "Action": "kms:CreateGrant",
                        "Resource": "*",
                        "Condition": {
                            **only_that_role,
                            "Bool": {"kms:GrantIsForAWSResource": "true"},
                        },
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

    def _access_entries(self, name: str, cluster: aws.eks.Cluster) -> list[pulumi.Resource]:
        args = self._args
        created: list[pulumi.Resource] = []
        grants = access_grants(
            args.admin_role_arns,
            args.deploy_role_arns,
            args.preview_role_arns,
            args.ephemeral_role_arns,
        )
        # One entry per principal is all EKS allows: a replacement must delete the old one first.
        replace_in_place = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        for grant in grants:
            slug = _principal_slug(grant.principal_arn)
            entry = aws.eks.AccessEntry(
                f"{name}-access-{slug}",
                cluster_name=cluster.name,
                principal_arn=grant.principal_arn,
                type="STANDARD",
                kubernetes_groups=list(grant.kubernetes_groups) or None,
                tags=dict(args.tags),
                opts=replace_in_place,
            )
            created.append(entry)
            for policy in grant.policies:
                created.append(
                    aws.eks.AccessPolicyAssociation(
                        f"{name}-access-{slug}-{policy}",
                        cluster_name=cluster.name,
                        principal_arn=entry.principal_arn,
                        policy_arn=self._ctx.partition.apply(
                            functools.partial(access_policy_arn, policy=policy)
                        ),
                        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                        opts=replace_in_place,
                    )
                )
        return created

    def _gpu_node_group(
        self,
        name: str,
        family: str,
        instance_types: tuple[str, ...],
        cluster: aws.eks.Cluster,
        role: aws.iam.Role,
        key_arn: pulumi.Output[str],
        tags: Mapping[str, str],
    ) -> aws.eks.NodeGroup:
        """One GPU family's group, with the node-template tags cluster-autoscaler scales from."""
        args = self._args
        first = family == gpu_instances.family_of(args.gpu_instance_types[0])
        # The minimum applies to the preferred (first) family; the others only scale from zero.
        low = args.gpu_scaling.min_size if first else 0
        labels = {**GPU_NODE_LABELS, ACCELERATOR_LABEL: gpu_instances.ACCELERATOR_BY_FAMILY[family]}
        group = self._node_group(
            f"{name}-gpu-{family}",
            cluster,
            role,
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
            key_arn=key_arn,
            tags=tags,
            depends_on=self._compute_after,
        )
        asg = group.resources.apply(_first_asg_name)
        # Managed node groups do not copy labels and taints to their ASG, so an empty GPU group
        # looks GPU-less to cluster-autoscaler until these tags tell it what a node would be
        # (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/cloudprovider/aws/README.md#scaling-a-node-group-to-0).
        gpus = min(gpu_instances.gpus_of(t) for t in instance_types)
        template = node_template_tags(
            labels, (GPU_TAINT_KEY, GPU_TAINT_VALUE, GPU_TAINT_EFFECT), gpus
        )
        for key, value in sorted(template.items()):
            aws.autoscaling.Tag(
                f"{name}-gpu-{family}-asg-{key.removeprefix(NODE_TEMPLATE_PREFIX + '/')}",
                autoscaling_group_name=asg,
                tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                opts=pulumi.ResourceOptions(parent=self),
            )
        return group

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
