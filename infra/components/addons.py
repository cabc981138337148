"""Cluster add-ons: EKS managed add-ons, the NVIDIA device plugin, cluster-autoscaler and the
AWS Load Balancer Controller.

Two components, because EKS needs some add-ons before any node and others after:

- :class:`BeforeComputeAddons` (vpc-cni, kube-proxy, eks-pod-identity-agent) is created from
  ``ClusterArgs.before_compute`` so the node groups depend on it: nodes join with pod networking
  and Pod Identity already there, and on destroy the nodes go first. This is terraform-aws-eks's
  ``before_compute = true`` (terraform-aws-modules/terraform-aws-eks main.tf:
  ``aws_eks_addon.before_compute`` has no node-group dependency, ``aws_eks_addon.this`` depends
  on the node groups).
- :class:`Addons` (CoreDNS, metrics-server, CloudWatch, Helm releases) waits for the system nodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.aws.eks_versions import CLUSTER_AUTOSCALER
from infra.aws.iam import (
    AccountContext,
    document,
    managed_policy_output,
    pod_identity_trust,
)
from infra.components import load_balancer_controller as lbc
from infra.components.cluster import GPU_NODE_LABELS, SYSTEM_NODE_LABELS
from infra.components.types import component_options, type_token
from infra.k8s.labels import GPU_TAINT_KEY

#: Helm charts, pinned: (repository, chart, version).
NVIDIA_DEVICE_PLUGIN_CHART: Final = (
    "https://nvidia.github.io/k8s-device-plugin",
    "nvidia-device-plugin",
    "0.17.1",
)
#: cluster-autoscaler's chart repository; chart version and image tag follow the cluster's minor
#: version from one map, ``infra.aws.eks_versions.CLUSTER_AUTOSCALER``.
CLUSTER_AUTOSCALER_REPOSITORY: Final = (
    "https://kubernetes.github.io/autoscaler",
    "cluster-autoscaler",
)


def cluster_autoscaler_pin(kubernetes_version: str) -> tuple[tuple[str, str, str], str]:
    """((repository, chart, chart version), image tag) for a cluster's Kubernetes minor."""
    chart_version, image_tag = CLUSTER_AUTOSCALER[kubernetes_version]
    return (*CLUSTER_AUTOSCALER_REPOSITORY, chart_version), image_tag


CLUSTER_AUTOSCALER_SERVICE_ACCOUNT: Final = "cluster-autoscaler"
CLOUDWATCH_AGENT_NAMESPACE: Final = "amazon-cloudwatch"
CLOUDWATCH_AGENT_SERVICE_ACCOUNT: Final = "cloudwatch-agent"
#: The CloudWatch agent's configuration, replacing the add-on's default: Container Insights
#: (with the GPU metrics the alarms read) and no Application Signals. The add-on turns
#: Application Signals on by default, and an ``application_signals`` (or ``app_signals``)
#: section under ``logs.metrics_collected`` / ``traces.traces_collected`` is what enables it
#: (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Application_Signals.html,
#: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Observability-EKS-addon.html).
#: Left on, it would ship X-Ray traces under a role that has only CloudWatchAgentServerPolicy
#: and bill per request for a service that exports its own Prometheus metrics.
CLOUDWATCH_AGENT_CONFIG: Final[Mapping[str, Any]] = {
    "logs": {
        "metrics_collected": {
            "kubernetes": {"enhanced_container_insights": True, "accelerated_compute_metrics": True}
        }
    }
}

#: Add-ons that run before any node exists (DaemonSets on host networking); the node groups
#: depend on them, so they are created before compute and deleted after it.
NODELESS_ADDONS: Final = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
#: Add-ons whose Deployments need the system nodes to become ACTIVE.
NODE_ADDONS: Final = ("coredns", "metrics-server", "amazon-cloudwatch-observability")

#: Read-only calls cluster-autoscaler makes on every group it discovers.
AUTOSCALER_DESCRIBE_ACTIONS: Final = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
)
#: Calls that change capacity, allowed only on this cluster's groups.
AUTOSCALER_MUTATING_ACTIONS: Final = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
)


def autoscaler_policy(partition: str, region: str, account: str, cluster_name: str) -> str:
    """Least-privilege policy of cluster-autoscaler: mutate only ASGs tagged for this cluster."""
    return document(
        [
            {
                "Sid": "Discover",
                "Effect": "Allow",
                "Action": list(AUTOSCALER_DESCRIBE_ACTIONS),
                "Resource": "*",
            },
            {
                "Sid": "DescribeOwnNodeGroups",
                "Effect": "Allow",
                "Action": "eks:DescribeNodegroup",
                "Resource": f"arn:{partition}:eks:{region}:{account}:nodegroup/{cluster_name}/*",
            },
            {
                "Sid": "ScaleOwnGroupsOnly",
                "Effect": "Allow",
                "Action": list(AUTOSCALER_MUTATING_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"
                    }
                },
            },
        ]
    )


def managed_addon(
    resource_name: str,
    addon: str,
    *,
    cluster: aws.eks.Cluster,
    kubernetes_version: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    pod_identity: Sequence[aws.eks.AddonPodIdentityAssociationArgs] = (),
) -> aws.eks.Addon:
    """An EKS managed add-on at the newest version EKS offers for the cluster's Kubernetes."""
    version = aws.eks.get_addon_version_output(
        addon_name=addon,
        kubernetes_version=kubernetes_version,
        most_recent=True,
        opts=pulumi.InvokeOutputOptions(parent=parent),
    ).version
    return aws.eks.Addon(
        resource_name,
        cluster_name=cluster.name,
        addon_name=addon,
        addon_version=version,
        configuration_values=_addon_configuration(addon),
        pod_identity_associations=list(pod_identity) or None,
        # EKS installs vpc-cni, kube-proxy and coredns itself; take them over in place.
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


@dataclass(frozen=True)
class BeforeComputeAddonsArgs:
    """Inputs of ``BeforeComputeAddons``."""

    cluster: aws.eks.Cluster
    kubernetes_version: str
    tags: Mapping[str, str]


class BeforeComputeAddons(pulumi.ComponentResource):
    """vpc-cni, kube-proxy and eks-pod-identity-agent: what a node needs the moment it joins."""

    addons: dict[str, aws.eks.Addon]

    def __init__(
        self, name: str, args: BeforeComputeAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("cluster", "BeforeComputeAddons")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        self.addons = {
            addon: managed_addon(
                f"{name}-{addon}",
                addon,
                cluster=args.cluster,
                kubernetes_version=args.kubernetes_version,
                tags=args.tags,
                parent=self,
            )
            for addon in NODELESS_ADDONS
        }
        self.register_outputs({"addons": sorted(self.addons)})


class BeforeCompute:
    """The ``ClusterArgs.before_compute`` hook: builds ``BeforeComputeAddons`` once the EKS
    cluster exists and hands the cluster its add-ons to order the node groups after."""

    def __init__(self, name: str, kubernetes_version: str, tags: Mapping[str, str]) -> None:
        self._name = name
        self._kubernetes_version = kubernetes_version
        self._tags = dict(tags)
        self._component: BeforeComputeAddons | None = None

    def __call__(self, cluster: aws.eks.Cluster) -> list[pulumi.Resource]:
        self._component = BeforeComputeAddons(
            self._name,
            BeforeComputeAddonsArgs(cluster, self._kubernetes_version, self._tags),
        )
        return list(self._component.addons.values())

    @property
    def component(self) -> BeforeComputeAddons:
        """The add-ons, once the cluster has called the hook."""
        if self._component is None:
            raise RuntimeError("the cluster has not created its before-compute add-ons yet")
        return self._component


@dataclass(frozen=True)
class AddonsArgs:
    """Inputs of ``Addons``."""

    cluster_name: str
    cluster: aws.eks.Cluster
    kubernetes_version: str
    system_node_group: aws.eks.NodeGroup
    k8s_provider: k8s.Provider
    tags: Mapping[str, str]
    #: The add-ons the node groups were ordered after (Pod Identity's agent among them).
    before_compute: BeforeComputeAddons
    #: The VPC the AWS Load Balancer Controller puts load balancers in.
    vpc_id: pulumi.Input[str]
    #: Resources the CloudWatch add-on must wait for (our log groups, so retention/KMS are ours).
    log_groups: Sequence[pulumi.Resource] = field(default_factory=tuple)


class Addons(pulumi.ComponentResource):
    """Node-hosted EKS add-ons, the NVIDIA device plugin, cluster-autoscaler and the AWS Load
    Balancer Controller."""

    addons: dict[str, aws.eks.Addon]

    def __init__(
        self, name: str, args: AddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("cluster", "Addons")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        self._args = args
        self._ctx = AccountContext(self)
        self._pod_identity_agent = args.before_compute.addons["eks-pod-identity-agent"]
        self.addons = {}
        cloudwatch_role = self._pod_role(
            f"{name}-cloudwatch-agent",
            managed=("CloudWatchAgentServerPolicy",),
            inline=None,
        )
        for addon in NODE_ADDONS:
            extra: list[pulumi.Resource] = [args.system_node_group]
            pod_identity: list[aws.eks.AddonPodIdentityAssociationArgs] = []
            if addon == "amazon-cloudwatch-observability":
                extra += [*args.log_groups, self._pod_identity_agent]
                pod_identity = [
                    aws.eks.AddonPodIdentityAssociationArgs(
                        role_arn=cloudwatch_role.arn,
                        service_account=CLOUDWATCH_AGENT_SERVICE_ACCOUNT,
                    )
                ]
            self.addons[addon] = managed_addon(
                f"{name}-{addon}",
                addon,
                cluster=args.cluster,
                kubernetes_version=args.kubernetes_version,
                tags=args.tags,
                parent=self,
                depends_on=extra,
                pod_identity=pod_identity,
            )
        self.nvidia_device_plugin = self._device_plugin(name)
        self.cluster_autoscaler = self._cluster_autoscaler(name)
        self.load_balancer_controller = self._load_balancer_controller(name)
        self.register_outputs({"addons": sorted(self.addons)})

    def _pod_role(
        self, name: str, managed: Sequence[str], inline: pulumi.Output[str] | None
    ) -> aws.iam.Role:
        trust = pulumi.Output.all(self._ctx.account_id, self._args.cluster.arn).apply(
            lambda v: pod_identity_trust(v[0], v[1])
        )
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=trust,
            description=f"{self._args.cluster_name}: {name} (EKS Pod Identity)",
            tags=dict(self._args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        for policy in managed:
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy}",
                role=role.name,
                policy_arn=managed_policy_output(self._ctx.partition, policy),
                opts=pulumi.ResourceOptions(parent=self),
            )
        if inline is not None:
            aws.iam.RolePolicy(
                f"{name}-policy",
                role=role.id,
                policy=inline,
                opts=pulumi.ResourceOptions(parent=self),
            )
        return role

    def _kube_system_release(
        self,
        resource_name: str,
        chart_spec: tuple[str, str, str],
        values: pulumi.Input[dict[str, Any]],
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.helm.v3.Release:
        """A pinned Helm chart in kube-system, installed atomically once nodes and DNS exist."""
        repo, chart, version = chart_spec
        return k8s.helm.v3.Release(
            resource_name,
            name=chart,
            chart=chart,
            version=version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo),
            namespace="kube-system",
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=self._args.k8s_provider,
                depends_on=[self._args.system_node_group, self.addons["coredns"], *depends_on],
            ),
        )

    def _device_plugin(self, name: str) -> k8s.helm.v3.Release:
        values: dict[str, Any] = {
            "nodeSelector": dict(GPU_NODE_LABELS),
            "tolerations": [
                {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
                {"key": "CriticalAddonsOnly", "operator": "Exists"},
            ],
            "gfd": {"enabled": False},
            "nfd": {"enabled": False},
            "priorityClassName": "system-node-critical",
        }
        return self._kube_system_release(
            f"{name}-nvidia-device-plugin", NVIDIA_DEVICE_PLUGIN_CHART, values
        )

    def _cluster_autoscaler(self, name: str) -> k8s.helm.v3.Release:
        cluster_name = self._args.cluster_name
        policy = pulumi.Output.all(
            self._ctx.partition, self._ctx.region, self._ctx.account_id
        ).apply(lambda v: autoscaler_policy(v[0], v[1], v[2], cluster_name))
        role = self._pod_role(f"{name}-cluster-autoscaler", managed=(), inline=policy)
        association = self._kube_system_identity(
            f"{name}-cluster-autoscaler", CLUSTER_AUTOSCALER_SERVICE_ACCOUNT, role
        )
        chart, image_tag = cluster_autoscaler_pin(self._args.kubernetes_version)
        values: dict[str, Any] = {
            "cloudProvider": "aws",
            "awsRegion": self._ctx.region,
            "autoDiscovery": {"clusterName": cluster_name},
            # The autoscaler's minor version must match the cluster's.
            "image": {"tag": image_tag},
            "fullnameOverride": "cluster-autoscaler",
            "rbac": {
                "create": True,
                "serviceAccount": {"create": True, "name": CLUSTER_AUTOSCALER_SERVICE_ACCOUNT},
            },
            "extraArgs": {
                "balance-similar-node-groups": True,
                "expander": "least-waste",
                "skip-nodes-with-system-pods": False,
                "scale-down-unneeded-time": "5m",
            },
            "nodeSelector": dict(SYSTEM_NODE_LABELS),
            "priorityClassName": "system-cluster-critical",
        }
        return self._kube_system_release(f"{name}-cluster-autoscaler", chart, values, [association])

    def _kube_system_identity(
        self, resource_name: str, service_account: str, role: aws.iam.Role
    ) -> aws.eks.PodIdentityAssociation:
        """Pod Identity for a kube-system service account, once the agent runs."""
        return aws.eks.PodIdentityAssociation(
            resource_name,
            cluster_name=self._args.cluster.name,
            namespace="kube-system",
            service_account=service_account,
            role_arn=role.arn,
            tags=dict(self._args.tags),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self._pod_identity_agent],
                # One association per namespace + service account: the old one must go first.
                delete_before_replace=True,
            ),
        )

    def _load_balancer_controller(self, name: str) -> k8s.helm.v3.Release:
        """The AWS Load Balancer Controller with its published IAM policy, through Pod Identity."""
        policy = self._ctx.partition.apply(lbc.iam_policy)
        role = self._pod_role(f"{name}-load-balancer-controller", managed=(), inline=policy)
        association = self._kube_system_identity(
            f"{name}-load-balancer-controller", lbc.SERVICE_ACCOUNT, role
        )
        values = pulumi.Output.all(self._ctx.region, self._args.vpc_id).apply(
            lambda v: lbc.helm_values(
                cluster_name=self._args.cluster_name,
                region=v[0],
                vpc_id=v[1],
                node_selector=dict(SYSTEM_NODE_LABELS),
            )
        )
        return self._kube_system_release(
            f"{name}-load-balancer-controller", lbc.CHART, values, [association]
        )


def _addon_configuration(addon: str) -> str | None:
    """Add-on settings that differ from EKS defaults, as the JSON EKS expects."""
    settings: dict[str, Any] | None = None
    if addon == "vpc-cni":
        # Without this the workload's NetworkPolicy objects are accepted but not enforced.
        settings = {"enableNetworkPolicy": "true"}
    elif addon == "amazon-cloudwatch-observability":
        settings = {
            "containerLogs": {"enabled": True},
            "agent": {"config": CLOUDWATCH_AGENT_CONFIG},
        }
    return json.dumps(settings, sort_keys=True) if settings is not None else None
