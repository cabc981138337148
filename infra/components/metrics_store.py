"""Metrics with no Prometheus server to run: an AMP workspace fed by the AWS managed collector.

One Amazon Managed Service for Prometheus workspace per long-lived stack, encrypted with the
stack's own KMS key (rotating, like the log groups' keys) and keeping samples as long as the
stack keeps its logs (capped at AMP's 1095-day maximum). An ``aws.amp.Scraper`` scrapes the
cluster from ENIs in its private subnets (``infra.k8s.scrape_config``). The collector reaches the
Kubernetes API as the user ``aps-collector-user``: an EKS access entry maps its service-linked role
to that user and a ClusterRole lets it discover pods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.aws.iam import AccountContext, account_root_statement, document
from infra.components.types import component_options, type_token
from infra.k8s.scrape_config import scrape_configuration

#: AMP keeps samples at most three years
#: (https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-workspace-configuration.html).
MAX_RETENTION_DAYS: Final = 1095
#: The Kubernetes user the collector authenticates as, and its ClusterRole (names from the AMP
#: user guide, "Configuring your Amazon EKS cluster" for managed collectors).
COLLECTOR_USER: Final = "aps-collector-user"
COLLECTOR_CLUSTER_ROLE: Final = "aps-collector-role"
#: What a scraper's role ARN looks like: a service-linked role under a path.
_SLR_WITH_PATH = re.compile(r"^(arn:[^:]+:iam::\d{12}:role)/(?:[^/]+/)+([^/]+)$")


def retention_days(log_retention_days: int) -> int:
    """Days AMP keeps samples: the stack's log retention, within AMP's limit."""
    return max(1, min(log_retention_days, MAX_RETENTION_DAYS))


def role_arn_without_path(arn: str) -> str:
    """The role ARN as a Kubernetes identity mapping wants it: without the IAM path.

    ``DescribeScraper`` reports ``.../role/aws-service-role/scraper.aps.amazonaws.com/
    AWSServiceRoleForAmazonPrometheusScraper_...``; the AMP guide maps
    ``.../role/AWSServiceRoleForAmazonPrometheusScraper_...`` (the path cut out).
    """
    match = _SLR_WITH_PATH.match(arn)
    return f"{match[1]}/{match[2]}" if match else arn


def query_url(prometheus_endpoint: str) -> str:
    """The base URL the KEDA Prometheus scaler wants: the workspace endpoint without its ``/``.

    AMP reports ``https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>/``; KEDA appends
    ``/api/v1/query`` itself (kedacore/keda pkg/scalers/prometheus_scaler.go), and a double slash
    is not the query API.
    """
    return prometheus_endpoint.rstrip("/")


def workspace_key_policy(partition: str, account: str, region: str) -> str:
    """Key policy: the account administers the key; AMP may use it for this account's calls."""
    return document(
        [
            account_root_statement(partition, account),
            {
                "Sid": "AmpUseThroughTheService",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                "Action": [
                    "kms:CreateGrant",
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:GenerateDataKey*",
                ],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": f"aps.{region}.amazonaws.com",
                        "kms:CallerAccount": account,
                    }
                },
            },
        ]
    )


@dataclass(frozen=True)
class ManagedPrometheusArgs:
    """Inputs of :class:`ManagedPrometheus`."""

    cluster_name: str
    cluster_arn: pulumi.Input[str]
    #: Private subnets in at least two AZs: the collector puts one ENI in each.
    subnet_ids: pulumi.Input[Sequence[str]]
    #: The cluster security group, so the ENIs may reach the nodes and the API server.
    security_group_ids: pulumi.Input[Sequence[str]]
    log_retention_days: int
    deletion_protection: bool
    k8s_provider: k8s.Provider
    tags: Mapping[str, str]


class ManagedPrometheus(pulumi.ComponentResource):
    """AMP workspace (KMS, retention), managed collector, and its access to the cluster."""

    workspace_arn: pulumi.Output[str]
    workspace_id: pulumi.Output[str]
    query_url: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ManagedPrometheusArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("observability", "ManagedPrometheus")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        ctx = AccountContext(self)
        tags = dict(args.tags)
        protect = args.deletion_protection
        key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.cluster_name}: Amazon Managed Prometheus workspace",
            enable_key_rotation=True,
            deletion_window_in_days=30 if protect else 7,
            policy=pulumi.Output.all(ctx.partition, ctx.account_id, ctx.region).apply(
                lambda v: workspace_key_policy(v[0], v[1], v[2])
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{args.cluster_name}/metrics",
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        workspace = aws.amp.Workspace(
            f"{name}-workspace",
            alias=args.cluster_name,
            kms_key_arn=key.arn,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        aws.amp.WorkspaceConfiguration(
            f"{name}-retention",
            workspace_id=workspace.id,
            retention_period_in_days=retention_days(args.log_retention_days),
            opts=pulumi.ResourceOptions(parent=self),
        )
        scraper = aws.amp.Scraper(
            f"{name}-scraper",
            alias=f"{args.cluster_name}-scraper"[:100],
            scrape_configuration=scrape_configuration(),
            source=aws.amp.ScraperSourceArgs(
                eks=aws.amp.ScraperSourceEksArgs(
                    cluster_arn=args.cluster_arn,
                    subnet_ids=args.subnet_ids,
                    security_group_ids=args.security_group_ids,
                )
            ),
            destination=aws.amp.ScraperDestinationArgs(
                amp=aws.amp.ScraperDestinationAmpArgs(workspace_arn=workspace.arn)
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._cluster_access(name, args, scraper)

        self.workspace_arn = workspace.arn
        self.workspace_id = workspace.id
        self.query_url = workspace.prometheus_endpoint.apply(query_url)
        self.kms_key_arn = key.arn
        self.register_outputs(
            {
                "workspace_arn": self.workspace_arn,
                "workspace_id": self.workspace_id,
                "query_url": self.query_url,
                "kms_key_arn": self.kms_key_arn,
            }
        )

    def _cluster_access(
        self, name: str, args: ManagedPrometheusArgs, scraper: aws.amp.Scraper
    ) -> None:
        aws.eks.AccessEntry(
            f"{name}-collector-access",
            cluster_name=args.cluster_name,
            principal_arn=scraper.role_arn.apply(role_arn_without_path),
            type="STANDARD",
            user_name=COLLECTOR_USER,
            tags=dict(args.tags),
            # One entry per principal and cluster: a replacement must delete the old one first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        # Fixed names: a replacement must delete the old object first.
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=args.k8s_provider, delete_before_replace=True
        )
        read = ["get", "list", "watch"]
        k8s.rbac.v1.ClusterRole(
            f"{name}-collector-role",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=COLLECTOR_CLUSTER_ROLE),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["nodes", "nodes/metrics", "services", "endpoints", "pods"],
                    verbs=read,
                ),
                k8s.rbac.v1.PolicyRuleArgs(non_resource_urls=["/metrics"], verbs=["get"]),
            ],
            opts=k8s_opts,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-collector-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{COLLECTOR_USER}-role-binding"),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name=COLLECTOR_CLUSTER_ROLE,
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    api_group="rbac.authorization.k8s.io", kind="User", name=COLLECTOR_USER
                )
            ],
            opts=k8s_opts,
        )
