"""Karpenter as the GPU node provisioner of a stack (``nodeProvisioner: karpenter``).

Declares: the SQS interruption queue (SSE) with its EventBridge rules, the node role with its
EC2_LINUX access entry, the controller's Pod Identity role, the ``karpenter-crd`` and
``karpenter`` Helm releases (pinned per Kubernetes minor; Karpenter's compatibility per release
from https://endoflife.date/karpenter), and the GPU ``EC2NodeClass`` and ``NodePool``.
The stack then has no managed GPU node group: one pool, one provisioner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.aws.eks_versions import chart_for_minor
from infra.aws.iam import AccountContext, managed_policy_output, pod_identity_trust, service_trust
from infra.components.cluster import SYSTEM_NODE_LABELS
from infra.components.types import component_options, type_token
from infra.config import CapacityType
from infra.k8s import karpenter_spec as spec

KARPENTER_OCI: Final = "oci://public.ecr.aws/karpenter"
KARPENTER_NAMESPACE: Final = "kube-system"
KARPENTER_SERVICE_ACCOUNT: Final = "karpenter"
#: Chart (= controller) version per Kubernetes minor. Karpenter's chart pins its controller image
#: by digest for its own version, so the chart version pins the image too.
KARPENTER_CHART_BY_MINOR: Final[Mapping[str, str]] = {
    "1.31": "1.8.2",
    "1.32": "1.8.2",
    "1.33": "1.8.2",
    "1.34": "1.8.2",
    "1.35": "1.11.1",
}
#: Kubernetes minors each pinned release supports (endoflife.date/karpenter).
KARPENTER_SUPPORTED_RANGE: Final[Mapping[str, tuple[str, str]]] = {
    "1.8.2": ("1.29", "1.34"),
    "1.11.1": ("1.29", "1.35"),
}


def karpenter_chart_version(kubernetes_version: str) -> str:
    """The pinned Karpenter chart for a cluster's minor version; a clear error otherwise."""
    return chart_for_minor(
        "Karpenter",
        kubernetes_version,
        KARPENTER_CHART_BY_MINOR,
        KARPENTER_SUPPORTED_RANGE,
        "infra/components/karpenter.py",
    )


@dataclass(frozen=True)
class KarpenterArgs:
    """Inputs of :class:`Karpenter`."""

    cluster_name: str
    cluster: aws.eks.Cluster
    kubernetes_version: str
    k8s_provider: k8s.Provider
    private_subnet_ids: pulumi.Input[Sequence[str]]
    cluster_security_group_id: pulumi.Input[str]
    volume_key_arn: pulumi.Input[str]
    gpu_instance_types: Sequence[str]
    capacity: CapacityType
    gpu_limit: int
    root_volume_gib: int
    consolidate_after_seconds: int
    tags: Mapping[str, str]
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class Karpenter(pulumi.ComponentResource):
    """Karpenter controller, its interruption handling, and the GPU NodePool/EC2NodeClass."""

    queue_name: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("scaling", "Karpenter")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        self._args = args
        self._ctx = AccountContext(self)
        version = karpenter_chart_version(args.kubernetes_version)
        queue = self._interruption_queue(name)
        node_role = self._node_role(name)
        association = self._controller_identity(name, queue, node_role)
        release = self._releases(name, version, queue, [association])
        self._gpu_pool(name, node_role, release)
        self.queue_name = queue.name
        self.node_role_arn = node_role.arn
        self.register_outputs({"queue_name": self.queue_name, "node_role_arn": self.node_role_arn})

    def _child(self, **kwargs: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _interruption_queue(self, name: str) -> aws.sqs.Queue:
        queue = aws.sqs.Queue(
            f"{name}-interruptions",
            name=f"{self._args.cluster_name}-karpenter"[:80],
            message_retention_seconds=spec.INTERRUPTION_MESSAGE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=dict(self._args.tags),
            opts=self._child(delete_before_replace=True),
        )
        aws.sqs.QueuePolicy(
            f"{name}-interruptions-policy",
            queue_url=queue.url,
            policy=queue.arn.apply(spec.queue_policy),
            opts=self._child(),
        )
        for suffix, source, detail_type in spec.INTERRUPTION_EVENTS:
            rule = aws.cloudwatch.EventRule(
                f"{name}-{suffix}",
                description=f"{self._args.cluster_name}: {detail_type} to Karpenter",
                event_pattern=spec.event_pattern(source, detail_type),
                tags=dict(self._args.tags),
                opts=self._child(),
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{suffix}-target",
                rule=rule.name,
                target_id="KarpenterInterruptionQueueTarget",
                arn=queue.arn,
                opts=self._child(),
            )
        return queue

    def _node_role(self, name: str) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=service_trust("ec2.amazonaws.com"),
            description=f"{self._args.cluster_name}: GPU nodes launched by Karpenter",
            tags=dict(self._args.tags),
            opts=self._child(),
        )
        for policy in spec.NODE_MANAGED_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=role.name,
                policy_arn=managed_policy_output(self._ctx.partition, policy),
                opts=self._child(),
            )
        # API-mode clusters admit nodes through an EC2_LINUX access entry for their role.
        aws.eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=self._args.cluster.name,
            principal_arn=role.arn,
            type="EC2_LINUX",
            tags=dict(self._args.tags),
            opts=self._child(delete_before_replace=True),
        )
        return role

    def _controller_identity(
        self, name: str, queue: aws.sqs.Queue, node_role: aws.iam.Role
    ) -> aws.eks.PodIdentityAssociation:
        args, ctx = self._args, self._ctx
        role = aws.iam.Role(
            f"{name}-controller-role",
            assume_role_policy=pulumi.Output.all(ctx.account_id, args.cluster.arn).apply(
                lambda v: pod_identity_trust(v[0], v[1])
            ),
            description=f"{args.cluster_name}: Karpenter controller (EKS Pod Identity)",
            tags=dict(args.tags),
            opts=self._child(),
        )
        policy = pulumi.Output.all(
            ctx.partition, ctx.region, ctx.account_id, queue.arn, node_role.arn, args.volume_key_arn
        ).apply(
            lambda v: spec.controller_policy(
                partition=v[0],
                region=v[1],
                account=v[2],
                cluster_name=args.cluster_name,
                queue_arn=v[3],
                node_role_arn=v[4],
                volume_key_arn=v[5],
            )
        )
        inline = aws.iam.RolePolicy(
            f"{name}-controller-policy", role=role.id, policy=policy, opts=self._child()
        )
        return aws.eks.PodIdentityAssociation(
            f"{name}-controller",
            cluster_name=args.cluster.name,
            namespace=KARPENTER_NAMESPACE,
            service_account=KARPENTER_SERVICE_ACCOUNT,
            role_arn=role.arn,
            tags=dict(args.tags),
            opts=self._child(depends_on=[*args.depends_on, inline], delete_before_replace=True),
        )

    def _releases(
        self,
        name: str,
        version: str,
        queue: aws.sqs.Queue,
        depends_on: Sequence[pulumi.Resource],
    ) -> k8s.helm.v3.Release:
        args = self._args
        common: dict[str, Any] = {
            "version": version,
            "namespace": KARPENTER_NAMESPACE,
            "atomic": True,
            "cleanup_on_fail": True,
        }
        provider = args.k8s_provider
        # CRDs in their own chart: Helm never upgrades the CRDs a chart carries in crds/.
        crds = k8s.helm.v3.Release(
            f"{name}-crd",
            name="karpenter-crd",
            chart=f"{KARPENTER_OCI}/karpenter-crd",
            **common,
            opts=self._child(provider=provider, depends_on=list(args.depends_on)),
        )
        values: dict[str, Any] = {
            "settings": {"clusterName": args.cluster_name, "interruptionQueue": queue.name},
            "serviceAccount": {"create": True, "name": KARPENTER_SERVICE_ACCOUNT},
            "nodeSelector": dict(SYSTEM_NODE_LABELS),
        }
        return k8s.helm.v3.Release(
            f"{name}-release",
            name="karpenter",
            chart=f"{KARPENTER_OCI}/karpenter",
            skip_crds=True,
            values=values,
            **common,
            opts=self._child(provider=provider, depends_on=[crds, *depends_on]),
        )

    def _gpu_pool(self, name: str, node_role: aws.iam.Role, release: k8s.helm.v3.Release) -> None:
        args = self._args
        node_class = pulumi.Output.all(
            node_role.name,
            args.private_subnet_ids,
            args.cluster_security_group_id,
            args.volume_key_arn,
        ).apply(
            lambda v: spec.node_class_spec(
                node_role_name=v[0],
                subnet_ids=v[1],
                security_group_ids=[v[2]],
                root_volume_gib=args.root_volume_gib,
                volume_key_arn=v[3],
                tags=args.tags,
            )
        )
        opts = self._child(
            provider=args.k8s_provider, depends_on=[release], delete_before_replace=True
        )
        k8s.apiextensions.CustomResource(
            f"{name}-node-class",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=spec.NODE_CLASS_NAME),
            spec=node_class,
            opts=opts,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-node-pool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=spec.NODE_POOL_NAME),
            spec=spec.node_pool_spec(
                instance_types=args.gpu_instance_types,
                capacity=args.capacity,
                gpu_limit=args.gpu_limit,
                consolidate_after_seconds=args.consolidate_after_seconds,
            ),
            opts=opts,
        )
