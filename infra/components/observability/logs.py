"""Logs: the encrypted Container Insights log groups, and the metrics derived from the access log.

:class:`ContainerInsightsLogs` creates the KMS key and the four Container Insights log groups
*before* the ``amazon-cloudwatch-observability`` add-on starts shipping logs; otherwise Fluent Bit
would create them itself, unencrypted and kept forever. The metric filters' patterns read the
service's JSON access log (field names from ``service.contract.LOG_FIELDS``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.iam import logs_service_statement
from infra.aws.limits import CLOUDWATCH_RETENTION_DAYS
from infra.components.types import component_options, type_token
from service import contract

#: The log groups the amazon-cloudwatch-observability add-on writes to, per cluster.
CONTAINER_INSIGHTS_LOG_TYPES = ("application", "dataplane", "host", "performance")
#: Where Fluent Bit (Container Insights) puts the parsed JSON of a log line: its kubernetes
#: filter runs with ``Merge_Log On`` and ``Merge_Log_Key log_processed``; the raw line stays in
#: ``log`` and the pod's metadata goes under ``kubernetes``.
PARSED_LOG_KEY = "log_processed"
#: CloudWatch namespace of the metrics Container Insights publishes.
CONTAINER_INSIGHTS_NAMESPACE = "ContainerInsights"
#: Metric names published by the metric filters (one CloudWatch namespace per service).
REQUESTS_METRIC = "Requests"
ERRORS_5XX_METRIC = "Errors5xx"
LATENCY_METRIC = "LatencyMs"
#: Container Insights metrics the alarms and the dashboard read.
POD_RESTARTS_METRIC = "pod_number_of_container_restarts"
NODE_GPU_LIMIT_METRIC = "node_gpu_limit"


def container_insights_log_group_name(cluster_name: str, log_type: str) -> str:
    """``/aws/containerinsights/<cluster>/<type>``: the names the add-on's Fluent Bit writes to."""
    if log_type not in CONTAINER_INSIGHTS_LOG_TYPES:
        raise ValueError(f"log type {log_type!r} is not one of {CONTAINER_INSIGHTS_LOG_TYPES}")
    return f"/aws/containerinsights/{cluster_name}/{log_type}"


def require_retention(days: int) -> int:
    """Return ``days`` if CloudWatch Logs accepts it as a retention, else raise ``ValueError``."""
    if days not in CLOUDWATCH_RETENTION_DAYS:
        raise ValueError(
            f"log retention {days} days is not a CloudWatch value; "
            f"allowed: {CLOUDWATCH_RETENTION_DAYS}"
        )
    return days


def logs_key_policy(
    *, partition: str, region: str, account_id: str, cluster_name: str
) -> dict[str, Any]:
    """Key policy: the account administers the key, CloudWatch Logs may use it for this cluster's
    Container Insights log groups only, and CloudWatch alarms may publish to the SNS topic it
    encrypts."""
    log_group_arn = (
        f"arn:{partition}:logs:{region}:{account_id}:log-group:/aws/containerinsights/"
        f"{cluster_name}/*"
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            logs_service_statement(
                "CloudWatchLogsEncryptsContainerInsights", region, account_id, log_group_arn
            ),
            {
                "Sid": "CloudWatchAlarmsPublishToEncryptedTopic",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
            },
        ],
    }


@dataclass(frozen=True)
class ContainerInsightsLogsArgs:
    """Inputs of :class:`ContainerInsightsLogs`."""

    cluster_name: pulumi.Input[str]
    account_id: pulumi.Input[str]
    region: str
    retention_days: int
    partition: str = "aws"
    #: 7 for throw-away stacks, 30 for long-lived ones (the KMS range is 7-30).
    key_deletion_window_days: int = 30
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_retention(self.retention_days)
        if not self.region:
            raise ValueError("region must not be empty")
        if not 7 <= self.key_deletion_window_days <= 30:
            raise ValueError(
                f"key_deletion_window_days {self.key_deletion_window_days} must be 7-30 (KMS)"
            )


class ContainerInsightsLogs(pulumi.ComponentResource):
    """A KMS key and the cluster's Container Insights log groups, with per-stack retention.

    Create it before the ``amazon-cloudwatch-observability`` add-on (``depends_on``) so Fluent
    Bit finds the encrypted groups instead of creating its own.
    """

    kms_key_arn: pulumi.Output[str]
    log_group_names: dict[str, pulumi.Output[str]]
    application_log_group_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ContainerInsightsLogsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        component_type = type_token("observability", "ContainerInsightsLogs")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        policy = pulumi.Output.all(args.account_id, args.cluster_name).apply(
            lambda values: json.dumps(
                logs_key_policy(
                    partition=args.partition,
                    region=args.region,
                    account_id=values[0],
                    cluster_name=values[1],
                )
            )
        )
        key = aws.kms.Key(
            f"{name}-logs-key",
            description="Encrypts the Container Insights log groups and the alarm topic",
            enable_key_rotation=True,
            deletion_window_in_days=args.key_deletion_window_days,
            policy=policy,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.kms_key_arn = key.arn
        self.log_group_names = {}
        for log_type in CONTAINER_INSIGHTS_LOG_TYPES:
            group = aws.cloudwatch.LogGroup(
                f"{name}-{log_type}",
                name=pulumi.Output.from_input(args.cluster_name).apply(
                    functools.partial(container_insights_log_group_name, log_type=log_type)
                ),
                retention_in_days=args.retention_days,
                kms_key_id=key.arn,
                tags=dict(args.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.log_group_names[log_type] = group.name
        self.application_log_group_name = self.log_group_names["application"]
        self.register_outputs(
            {
                "kms_key_arn": self.kms_key_arn,
                "log_group_names": self.log_group_names,
            }
        )


def _json_condition(path: str, op: str, value: str | int) -> str:
    rendered = f'"{value}"' if isinstance(value, str) else str(value)
    return f"(${path} {op} {rendered})"


def access_log_filter_pattern(namespace: str, container: str, *conditions: str) -> str:
    """A CloudWatch JSON filter pattern over one container's access-log lines.

    Matches Fluent Bit records of pods in ``namespace`` whose container is ``container``, skips
    the kubelet's probe requests (they would flatten latency and inflate the request count) and
    adds ``conditions`` (already rendered ``($.x op v)`` terms).
    """
    fields = contract.LOG_FIELDS
    terms = [
        _json_condition(".kubernetes.namespace_name", "=", namespace),
        _json_condition(".kubernetes.container_name", "=", container),
        *(
            _json_condition(f".{PARSED_LOG_KEY}.{fields.ROUTE}", "!=", path)
            for path in (contract.PATHS.LIVE, contract.PATHS.READY, contract.PATHS.STARTUP)
        ),
        *conditions,
    ]
    return "{ " + " && ".join(terms) + " }"


@dataclass(frozen=True)
class AccessLogMetric:
    """One metric filter: its metric name, pattern, value and unit."""

    metric_name: str
    pattern: str
    value: str
    unit: str


def access_log_metrics(namespace: str, container: str) -> list[AccessLogMetric]:
    """Request count, 5xx count and latency metric filters over the service's JSON access log."""
    fields = contract.LOG_FIELDS
    status = f".{PARSED_LOG_KEY}.{fields.STATUS}"
    latency = f".{PARSED_LOG_KEY}.{fields.LATENCY_MS}"
    return [
        AccessLogMetric(
            metric_name=REQUESTS_METRIC,
            pattern=access_log_filter_pattern(
                namespace, container, _json_condition(status, ">=", 100)
            ),
            value="1",
            unit="Count",
        ),
        AccessLogMetric(
            metric_name=ERRORS_5XX_METRIC,
            pattern=access_log_filter_pattern(
                namespace, container, _json_condition(status, ">=", 500)
            ),
            value="1",
            unit="Count",
        ),
        AccessLogMetric(
            metric_name=LATENCY_METRIC,
            pattern=access_log_filter_pattern(
                namespace, container, _json_condition(latency, ">=", 0)
            ),
            value=f"${latency}",
            unit="Milliseconds",
        ),
    ]


def service_metric_namespace(cluster_name: str, namespace: str) -> str:
    """CloudWatch namespace of one service's log-derived metrics.

    Per cluster and Kubernetes namespace: dev and staging may share an account and region and
    both run in namespace ``inference``; their metrics must never mix.
    """
    return f"TorchInference/{cluster_name}/{namespace}"
