"""The EKS control plane: its KMS keys, log group, IAM role, the cluster and its access entries."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.aws import kms
from infra.aws.eks_versions import SupportType
from infra.aws.iam import AccountContext, document, managed_policy_arn, service_trust
from infra.components.types import component_options, type_token

#: Every control-plane log type EKS can ship to CloudWatch.
CONTROL_PLANE_LOG_TYPES: Final = ("api", "audit", "authenticator", "controllerManager", "scheduler")
#: What the cluster role needs on the secrets key for envelope encryption.
CLUSTER_KMS_ACTIONS: Final = ("kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey")
#: EKS access policies (https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html).
CLUSTER_ADMIN_POLICY: Final = "AmazonEKSClusterAdminPolicy"
VIEW_POLICY: Final = "AmazonEKSViewPolicy"
#: Kubernetes group of the roles that deploy workloads (preview dry runs and pr stacks); the
#: ClusterRole bound to it (infra/components/cluster_rbac.py) grants the workload's object kinds
#: only.
WORKLOAD_DEPLOYERS_GROUP: Final = "torch-eks-inference:workload-deployers"


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


def control_plane_log_group_name(cluster_name: str) -> str:
    """The log group EKS writes control-plane logs to (fixed by EKS)."""
    return f"/aws/eks/{cluster_name}/cluster"


@dataclass(frozen=True)
class ControlPlaneArgs:
    """Inputs of ``ControlPlane``."""

    cluster_name: str
    kubernetes_version: str
    private_subnet_ids: pulumi.Input[Sequence[str]]
    public_access_cidrs: Sequence[str]
    log_retention_days: int
    deletion_protection: bool
    tags: Mapping[str, str]
    upgrade_support_type: SupportType = SupportType.STANDARD
    admin_role_arns: Sequence[str] = field(default_factory=tuple)
    deploy_role_arns: Sequence[str] = field(default_factory=tuple)
    preview_role_arns: Sequence[str] = field(default_factory=tuple)
    ephemeral_role_arns: Sequence[str] = field(default_factory=tuple)
    #: Aliases of the children, for a control plane whose resources sat under another parent.
    child_aliases: Sequence[pulumi.Alias] = ()


class ControlPlane(pulumi.ComponentResource):
    """An EKS cluster with envelope-encrypted secrets, all control-plane logs, API access entries.

    Access entries come only from the four role lists of the args; nobody, not even whoever runs
    ``pulumi up``, is admitted implicitly (a creator grant would move to whoever ran the last
    ``up``). Children are named ``{name}-...``.
    """

    eks_cluster: aws.eks.Cluster
    secrets_key: aws.kms.Key
    logs_key: aws.kms.Key
    log_group: aws.cloudwatch.LogGroup
    #: The access entries and their policy associations: Kubernetes calls wait for them.
    access_resources: list[pulumi.Resource]

    def __init__(
        self, name: str, args: ControlPlaneArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("cluster", "ControlPlane")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        self._args = args
        self._ctx = AccountContext(self)
        self._child = pulumi.ResourceOptions(parent=self, aliases=list(args.child_aliases))
        self._keys(name)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=control_plane_log_group_name(args.cluster_name),
            retention_in_days=args.log_retention_days,
            kms_key_id=self.logs_key.arn,
            tags=dict(args.tags),
            opts=self._protected(),
        )
        self.eks_cluster = self._cluster(name, self._cluster_role(name))
        self.access_resources = self._access_entries(name, self.eks_cluster)
        self.register_outputs({"name": self.eks_cluster.name, "arn": self.eks_cluster.arn})

    def _protected(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        """Child options with ``protect`` where the stack asks for deletion protection."""
        extra = pulumi.ResourceOptions(
            protect=self._args.deletion_protection, depends_on=list(depends_on)
        )
        return pulumi.ResourceOptions.merge(self._child, extra)

    def _keys(self, name: str) -> None:
        args, ctx = self._args, self._ctx
        secrets_policy = pulumi.Output.all(ctx.partition, ctx.account_id).apply(
            lambda v: kms.secrets_key_document(v[0], v[1])
        )
        logs_policy = pulumi.Output.all(ctx.partition, ctx.account_id, ctx.region).apply(
            lambda v: kms.logs_key_document(v[0], v[1], v[2], args.cluster_name)
        )
        key = functools.partial(
            kms.key_with_alias,
            long_deletion_window=args.deletion_protection,
            tags=args.tags,
            opts=self._protected(),
            alias_opts=self._child,
        )
        self.secrets_key = key(
            f"{name}-secrets-key",
            alias=f"alias/{args.cluster_name}/secrets",
            description=(
                f"{args.cluster_name}: EKS secret envelope encryption and node root volumes"
            ),
            policy=secrets_policy,
        )
        self.logs_key = key(
            f"{name}-logs-key",
            alias=f"alias/{args.cluster_name}/logs",
            description=f"{args.cluster_name}: the control-plane log group",
            policy=logs_policy,
        )

    def _cluster_role(self, name: str) -> aws.iam.Role:
        """The control plane's role: the EKS cluster policy, and the secrets key only."""
        args = self._args
        role = aws.iam.Role(
            f"{name}-cluster-role",
            assume_role_policy=service_trust(
                "eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession")
            ),
            description=f"EKS control plane of {args.cluster_name}",
            tags=dict(args.tags),
            opts=self._child,
        )
        self._role_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-cluster-policy",
                role=role.name,
                policy_arn=self._ctx.partition.apply(
                    lambda p: managed_policy_arn(p, "AmazonEKSClusterPolicy")
                ),
                opts=self._child,
            ),
            # EKS encrypts and decrypts Kubernetes secrets as the cluster role: allow that key.
            aws.iam.RolePolicy(
                f"{name}-cluster-kms",
                role=role.id,
                policy=self.secrets_key.arn.apply(
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
                opts=self._child,
            ),
        ]
        return role

    def _cluster(self, name: str, role: aws.iam.Role) -> aws.eks.Cluster:
        args = self._args
        return aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=role.arn,
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
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=self.secrets_key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(
                support_type=args.upgrade_support_type.value
            ),
            deletion_protection=args.deletion_protection,
            tags=dict(args.tags),
            opts=self._protected(depends_on=[self.log_group, *self._role_policies]),
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
        replace_in_place = pulumi.ResourceOptions.merge(
            self._child, pulumi.ResourceOptions(delete_before_replace=True)
        )
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
            created += [
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
                for policy in grant.policies
            ]
        return created
