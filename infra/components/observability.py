"""CloudWatch for the inference service: encrypted log groups, metric filters, alarms, dashboard.

Two components, because they are needed at different times:

- :class:`ContainerInsightsLogs` creates the KMS key and the four Container Insights log groups
  *before* the ``amazon-cloudwatch-observability`` add-on starts shipping logs; otherwise Fluent
  Bit would create them itself, unencrypted and kept forever.
- :class:`ServiceMonitoring` comes after the workload: metric filters over the service's JSON
  access logs (field names from ``service.contract.LOG_FIELDS``), alarms on 5xx rate, p99 latency,
  pod restarts and missing GPU capacity, an SNS topic for the alarms and a dashboard.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.iam import logs_service_statement
from infra.components.types import component_options, type_token
from infra.k8s.pod import require_dns_label
from service import contract

#: The log groups the amazon-cloudwatch-observability add-on writes to, per cluster.
CONTAINER_INSIGHTS_LOG_TYPES = ("application", "dataplane", "host", "performance")
#: Retention values CloudWatch Logs accepts (days).
ALLOWED_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
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
    if days not in ALLOWED_RETENTION_DAYS:
        raise ValueError(
            f"log retention {days} days is not a CloudWatch value; "
            f"allowed: {ALLOWED_RETENTION_DAYS}"
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


@dataclass(frozen=True)
class ServiceMonitoringArgs:
    """Inputs of :class:`ServiceMonitoring`; thresholds have production-minded defaults."""

    cluster_name: pulumi.Input[str]
    namespace: str
    #: The Deployment (and container) name; Container Insights reports a Deployment's pods
    #: under ``PodName`` = the Deployment name.
    app_name: str
    application_log_group_name: pulumi.Input[str]
    region: str
    gpu_count: int
    #: Encrypts the alarm topic; its policy must let cloudwatch.amazonaws.com use it.
    kms_key_arn: pulumi.Input[str] | None = None
    create_alarm_topic: bool = True
    alarm_emails: Sequence[str] = ()
    error_rate_threshold_percent: float = 5.0
    #: Below this many requests a minute the 5xx rate is not judged (one error in two requests
    #: is not an outage).
    error_rate_min_requests: int = 10
    latency_p99_threshold_ms: float = 1000.0
    restart_threshold: int = 3
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_dns_label("namespace", self.namespace)
        require_dns_label("app_name", self.app_name)
        if not self.region:
            raise ValueError("region must not be empty")
        if self.gpu_count < 0:
            raise ValueError(f"gpu_count {self.gpu_count} must not be negative")
        if not 0 < self.error_rate_threshold_percent < 100:
            raise ValueError(
                f"error_rate_threshold_percent {self.error_rate_threshold_percent} must be in "
                "(0, 100)"
            )
        if self.error_rate_min_requests < 1:
            raise ValueError(f"error_rate_min_requests {self.error_rate_min_requests} must be >= 1")
        if self.latency_p99_threshold_ms <= 0:
            raise ValueError(
                f"latency_p99_threshold_ms {self.latency_p99_threshold_ms} must be positive"
            )
        if self.restart_threshold < 0:
            raise ValueError(f"restart_threshold {self.restart_threshold} must not be negative")
        if self.create_alarm_topic and self.kms_key_arn is None:
            # The AWS-managed SNS key cannot be shared with CloudWatch, so alarms could not
            # publish to a topic encrypted with it.
            raise ValueError("create_alarm_topic needs kms_key_arn (a customer-managed key)")
        if self.alarm_emails and not self.create_alarm_topic:
            raise ValueError("alarm_emails need create_alarm_topic=True")
        for email in self.alarm_emails:
            if "@" not in email:
                raise ValueError(f"alarm email {email!r} is not an e-mail address")


def dashboard_body(
    *,
    cluster_name: str,
    namespace: str,
    app_name: str,
    region: str,
    application_log_group: str,
    gpu: bool,
) -> dict[str, Any]:
    """The CloudWatch dashboard: traffic, errors, latency, pods, restarts, GPUs, recent errors."""
    svc_ns = service_metric_namespace(cluster_name, namespace)
    pod_dims = ["ClusterName", cluster_name, "Namespace", namespace, "PodName", app_name]

    def metric_widget(title: str, metrics: list[list[Any]], x: int, y: int) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "view": "timeSeries",
                "stacked": False,
                "period": 60,
                "metrics": metrics,
            },
        }

    widgets = [
        metric_widget(
            "Requests and 5xx per minute",
            [
                [svc_ns, REQUESTS_METRIC, {"stat": "Sum", "id": "requests"}],
                [svc_ns, ERRORS_5XX_METRIC, {"stat": "Sum", "id": "errors"}],
            ],
            0,
            0,
        ),
        metric_widget(
            "Latency (ms)",
            [
                [svc_ns, LATENCY_METRIC, {"stat": "p50"}],
                [svc_ns, LATENCY_METRIC, {"stat": "p99"}],
            ],
            12,
            0,
        ),
        metric_widget(
            "Pod CPU and memory (% of limit)",
            [
                [CONTAINER_INSIGHTS_NAMESPACE, "pod_cpu_utilization_over_pod_limit", *pod_dims],
                [CONTAINER_INSIGHTS_NAMESPACE, "pod_memory_utilization_over_pod_limit", *pod_dims],
            ],
            0,
            6,
        ),
        metric_widget(
            "Container restarts",
            [[CONTAINER_INSIGHTS_NAMESPACE, POD_RESTARTS_METRIC, *pod_dims, {"stat": "Sum"}]],
            12,
            6,
        ),
    ]
    if gpu:
        widgets.append(
            metric_widget(
                "GPUs in the cluster (per node max) and utilisation",
                [
                    [
                        CONTAINER_INSIGHTS_NAMESPACE,
                        NODE_GPU_LIMIT_METRIC,
                        "ClusterName",
                        cluster_name,
                        {"stat": "Maximum"},
                    ],
                    [
                        CONTAINER_INSIGHTS_NAMESPACE,
                        "node_gpu_utilization",
                        "ClusterName",
                        cluster_name,
                        {"stat": "Average"},
                    ],
                ],
                0,
                12,
            )
        )
    fields = contract.LOG_FIELDS
    widgets.append(
        {
            "type": "log",
            "x": 12 if gpu else 0,
            "y": 12,
            "width": 12,
            "height": 6,
            "properties": {
                "title": "Recent 5xx responses",
                "region": region,
                "view": "table",
                "query": (
                    f"SOURCE '{application_log_group}' | "
                    f"filter kubernetes.namespace_name = '{namespace}' and "
                    f"{PARSED_LOG_KEY}.{fields.STATUS} >= 500 | "
                    f"fields @timestamp, {PARSED_LOG_KEY}.{fields.ROUTE}, "
                    f"{PARSED_LOG_KEY}.{fields.STATUS}, {PARSED_LOG_KEY}.{fields.LATENCY_MS}, "
                    f"{PARSED_LOG_KEY}.{fields.REQUEST_ID} | sort @timestamp desc | limit 50"
                ),
            },
        }
    )
    return {"widgets": widgets}


class ServiceMonitoring(pulumi.ComponentResource):
    """Metric filters, alarms (with an optional encrypted SNS topic) and a dashboard.

    Alarms: 5xx rate (metric math over two metric filters), p99 latency (metric filter on
    ``latency_ms``), container restarts (Container Insights) and, for GPU stacks, GPU capacity:
    ``node_gpu_limit`` (Container Insights' GPU count per node, from the add-on's DCGM
    integration) with no node offering ``gpu_count`` GPUs, or no data at all because no GPU node
    exists. The HPA minimum is at least one pod, so a GPU stack always needs such a node.
    """

    alarm_topic_arn: pulumi.Output[str] | None
    alarm_names: dict[str, pulumi.Output[str]]
    dashboard_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ServiceMonitoringArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        component_type = type_token("observability", "ServiceMonitoring")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        cluster = pulumi.Output.from_input(args.cluster_name)
        metric_ns = cluster.apply(lambda c: service_metric_namespace(c, args.namespace))
        # Alarm, topic and dashboard names are unique per account and region, and several stacks
        # may share one: the cluster name (one per stack) keeps them apart.
        prefix = cluster.apply(lambda c: f"{c}-{args.namespace}-{args.app_name}")
        service = f"{args.namespace}/{args.app_name}"

        filters = [
            aws.cloudwatch.LogMetricFilter(
                f"{name}-{metric.metric_name.lower()}",
                name=pulumi.Output.concat(prefix, "-", metric.metric_name),
                log_group_name=args.application_log_group_name,
                pattern=metric.pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric.metric_name,
                    namespace=metric_ns,
                    value=metric.value,
                    unit=metric.unit,
                ),
                opts=child,
            )
            for metric in access_log_metrics(args.namespace, args.app_name)
        ]
        alarm_opts = pulumi.ResourceOptions(parent=self, depends_on=filters)

        actions: list[pulumi.Input[str]] = []
        self.alarm_topic_arn = None
        if args.create_alarm_topic:
            topic = aws.sns.Topic(
                f"{name}-alarms",
                name=pulumi.Output.concat(prefix, "-alarms"),
                kms_master_key_id=args.kms_key_arn,
                tags=tags,
                opts=child,
            )
            self.alarm_topic_arn = topic.arn
            actions.append(topic.arn)
            for index, email in enumerate(args.alarm_emails):
                aws.sns.TopicSubscription(
                    f"{name}-alarm-email-{index}",
                    topic=topic.arn,
                    protocol="email",
                    endpoint=email,
                    opts=child,
                )

        def alarm(key: str, **kwargs: Any) -> aws.cloudwatch.MetricAlarm:
            resource = aws.cloudwatch.MetricAlarm(
                f"{name}-{key}",
                name=pulumi.Output.concat(prefix, "-", key),
                alarm_actions=actions,
                ok_actions=actions,
                tags=tags,
                opts=alarm_opts,
                **kwargs,
            )
            self.alarm_names[key] = resource.name
            return resource

        self.alarm_names = {}
        alarm(
            "5xx-rate",
            alarm_description=(
                f"More than {args.error_rate_threshold_percent}% of requests to {service} "
                "answered 5xx in 3 of the last 5 minutes"
            ),
            comparison_operator="GreaterThanThreshold",
            threshold=args.error_rate_threshold_percent,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            treat_missing_data="notBreaching",
            metric_queries=[
                _metric_query("errors", metric_ns, ERRORS_5XX_METRIC, "Sum"),
                _metric_query("requests", metric_ns, REQUESTS_METRIC, "Sum"),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="error_rate",
                    label="5xx responses (% of requests)",
                    expression=(
                        f"IF(requests >= {args.error_rate_min_requests}, "
                        "100 * FILL(errors, 0) / requests, 0)"
                    ),
                    return_data=True,
                ),
            ],
        )
        alarm(
            "p99-latency",
            alarm_description=(
                f"p99 latency of {service} above {args.latency_p99_threshold_ms} ms in 3 of the "
                "last 5 minutes"
            ),
            namespace=metric_ns,
            metric_name=LATENCY_METRIC,
            extended_statistic="p99",
            period=60,
            comparison_operator="GreaterThanThreshold",
            threshold=args.latency_p99_threshold_ms,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            treat_missing_data="notBreaching",
            # Too few requests make a p99 meaningless: keep the previous state instead.
            evaluate_low_sample_count_percentiles="ignore",
            unit="Milliseconds",
        )
        alarm(
            "restarts",
            alarm_description=(
                f"More than {args.restart_threshold} container restarts of {service} in 5 minutes"
            ),
            namespace=CONTAINER_INSIGHTS_NAMESPACE,
            metric_name=POD_RESTARTS_METRIC,
            dimensions={
                "ClusterName": args.cluster_name,
                "Namespace": args.namespace,
                "PodName": args.app_name,
            },
            statistic="Sum",
            period=300,
            comparison_operator="GreaterThanThreshold",
            threshold=args.restart_threshold,
            evaluation_periods=1,
            treat_missing_data="notBreaching",
        )
        if args.gpu_count > 0:
            alarm(
                "gpu-capacity",
                alarm_description=(
                    f"No node offers the {args.gpu_count} GPU(s) a {service} pod needs for 15 "
                    "minutes (spot reclaimed, scale-up failing, or the device plugin is down)"
                ),
                namespace=CONTAINER_INSIGHTS_NAMESPACE,
                metric_name=NODE_GPU_LIMIT_METRIC,
                dimensions={"ClusterName": args.cluster_name},
                statistic="Maximum",
                period=300,
                comparison_operator="LessThanThreshold",
                threshold=args.gpu_count,
                evaluation_periods=3,
                # No GPU node means no data point at all: that is exactly the outage.
                treat_missing_data="breaching",
            )

        body = pulumi.Output.all(args.cluster_name, args.application_log_group_name).apply(
            lambda values: json.dumps(
                dashboard_body(
                    cluster_name=values[0],
                    namespace=args.namespace,
                    app_name=args.app_name,
                    region=args.region,
                    application_log_group=values[1],
                    gpu=args.gpu_count > 0,
                )
            )
        )
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=prefix, dashboard_body=body, opts=child
        )
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs(
            {
                "alarm_topic_arn": self.alarm_topic_arn,
                "alarm_names": self.alarm_names,
                "dashboard_name": self.dashboard_name,
            }
        )


def _metric_query(
    query_id: str, namespace: pulumi.Input[str], metric_name: str, stat: str
) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=query_id,
        return_data=False,
        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace=namespace, metric_name=metric_name, stat=stat, period=60
        ),
    )
