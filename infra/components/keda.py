"""KEDA: the operator that turns each service's ScaledObject into an HPA on its own metrics.

KEDA's Helm chart is pinned per Kubernetes minor version (like the other kube-system releases),
from KEDA's compatibility matrix (https://keda.sh/docs/latest/operate/cluster/: v2.17 is tested on
Kubernetes 1.30-1.32, v2.20 on 1.33-1.35). The operator reads Amazon Managed Prometheus with
SigV4: the Prometheus scaler signs its queries (service ``aps``) with the operator's AWS
credentials when a TriggerAuthentication names ``podIdentity.provider: aws``
(kedacore/keda pkg/scalers/aws/aws_sigv4.go). Those credentials come from EKS Pod Identity,
through a role that may query this stack's one workspace and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.aws.eks_versions import chart_for_minor
from infra.aws.iam import AccountContext, document, pod_identity_trust
from infra.components.cluster import SYSTEM_NODE_LABELS
from infra.components.types import component_options, type_token

KEDA_REPOSITORY: Final = "https://kedacore.github.io/charts"
#: Chart version per Kubernetes minor. Chart and app versions match for these releases (chart
#: 2.17.2 ships KEDA 2.17.2; adfinis/helm-charts#1447 and #2005 track 2.17.2 and 2.20.2), and the
#: images are pinned to the same tag (ghcr.io/kedacore/keda:<version>, likewise
#: keda-metrics-apiserver and keda-admission-webhooks), so the chart's appVersion never decides.
KEDA_CHART_BY_MINOR: Final[Mapping[str, str]] = {
    "1.31": "2.17.2",
    "1.32": "2.17.2",
    "1.33": "2.20.2",
    "1.34": "2.20.2",
    "1.35": "2.20.2",
}
#: Kubernetes minors each pinned KEDA release is tested on (KEDA's compatibility matrix).
KEDA_TESTED_RANGE: Final[Mapping[str, tuple[str, str]]] = {
    "2.17.2": ("1.30", "1.32"),
    "2.20.2": ("1.33", "1.35"),
}
KEDA_NAMESPACE: Final = "kube-system"
#: The operator's ServiceAccount in the chart (``serviceAccount.operator.name`` default).
KEDA_OPERATOR_SERVICE_ACCOUNT: Final = "keda-operator"
#: Read-only Prometheus-compatible query actions (https://docs.aws.amazon.com/prometheus/latest/
#: userguide/AMP-and-IAM.html); the scaler calls /api/v1/query, i.e. aps:QueryMetrics.
AMP_QUERY_ACTIONS: Final = (
    "aps:QueryMetrics",
    "aps:GetSeries",
    "aps:GetLabels",
    "aps:GetMetricMetadata",
)


def keda_chart_version(kubernetes_version: str) -> str:
    """The pinned KEDA chart for a cluster's minor version; a clear error for any other."""
    return chart_for_minor(
        "KEDA",
        kubernetes_version,
        KEDA_CHART_BY_MINOR,
        KEDA_TESTED_RANGE,
        "infra/components/keda.py KEDA_CHART_BY_MINOR",
        verb="is tested on",
    )


def keda_query_policy(workspace_arn: str, key_arn: str, region: str) -> str:
    """The operator's policy: query one AMP workspace, decrypt its key only through AMP."""
    return document(
        [
            {
                "Sid": "QueryThisWorkspaceOnly",
                "Effect": "Allow",
                "Action": list(AMP_QUERY_ACTIONS),
                "Resource": workspace_arn,
            },
            {
                "Sid": "ReadEncryptedSamplesThroughAmp",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"aps.{region}.amazonaws.com"}},
            },
        ]
    )


@dataclass(frozen=True)
class KedaArgs:
    """Inputs of :class:`Keda`."""

    cluster_name: str
    cluster: aws.eks.Cluster
    kubernetes_version: str
    k8s_provider: k8s.Provider
    workspace_arn: pulumi.Input[str]
    workspace_key_arn: pulumi.Input[str]
    tags: Mapping[str, str]
    #: What must exist first: the system nodes, CoreDNS and the Pod Identity agent (the add-ons).
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class Keda(pulumi.ComponentResource):
    """The KEDA Helm release, its Pod Identity role (one AMP workspace) and the association."""

    role_arn: pulumi.Output[str]
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None):
        component_type = type_token("scaling", "Keda")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        ctx = AccountContext(self)
        version = keda_chart_version(args.kubernetes_version)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.all(ctx.account_id, args.cluster.arn).apply(
                lambda v: pod_identity_trust(v[0], v[1])
            ),
            description=f"{args.cluster_name}: KEDA operator (EKS Pod Identity), AMP queries",
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = aws.iam.RolePolicy(
            f"{name}-query-policy",
            role=role.id,
            policy=pulumi.Output.all(args.workspace_arn, args.workspace_key_arn, ctx.region).apply(
                lambda v: keda_query_policy(v[0], v[1], v[2])
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        association = aws.eks.PodIdentityAssociation(
            f"{name}-operator",
            cluster_name=args.cluster.name,
            namespace=KEDA_NAMESPACE,
            service_account=KEDA_OPERATOR_SERVICE_ACCOUNT,
            role_arn=role.arn,
            tags=dict(args.tags),
            # One association per namespace and service account: delete the old one first.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=list(args.depends_on), delete_before_replace=True
            ),
        )
        values: dict[str, Any] = {
            "image": {
                component: {"tag": version}
                for component in ("keda", "metricsApiServer", "webhooks")
            },
            "nodeSelector": dict(SYSTEM_NODE_LABELS),
            # Credentials come from EKS Pod Identity, not IRSA: no role annotation on the SA.
            "podIdentity": {"aws": {"irsa": {"enabled": False}}},
        }
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="keda",
            chart="keda",
            version=version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KEDA_REPOSITORY),
            namespace=KEDA_NAMESPACE,
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.k8s_provider,
                depends_on=[*args.depends_on, association, policy],
            ),
        )
        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn, "chart_version": version})
