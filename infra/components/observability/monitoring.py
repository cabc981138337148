"""Monitoring of the service: metric filters, alarms with an encrypted SNS topic, the dashboard.

:class:`ServiceMonitoring` comes after the workload: metric filters over the service's JSON
access logs, alarms on 5xx rate, p99 latency, pod restarts and missing GPU capacity, an SNS topic
for the alarms and a dashboard (``dashboard.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.observability.dashboard import dashboard_body
from infra.components.observability.logs import (
    CONTAINER_INSIGHTS_NAMESPACE,
    ERRORS_5XX_METRIC,
    LATENCY_METRIC,
    NODE_GPU_LIMIT_METRIC,
    POD_RESTARTS_METRIC,
    REQUESTS_METRIC,
    access_log_metrics,
    service_metric_namespace,
)
from infra.components.types import component_options, type_token
from infra.k8s.pod import require_dns_label


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
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        cluster = pulumi.Output.from_input(args.cluster_name)
        self._metric_ns = cluster.apply(lambda c: service_metric_namespace(c, args.namespace))
        # Alarm, topic and dashboard names are unique per account and region, and several stacks
        # may share one: the cluster name (one per stack) keeps them apart.
        self._prefix = cluster.apply(lambda c: f"{c}-{args.namespace}-{args.app_name}")
        filters = self._metric_filters()
        actions = self._alarm_topic()
        self.alarm_names = {}
        alarm_opts = pulumi.ResourceOptions(parent=self, depends_on=filters)
        for key, kwargs in _alarms(args, self._metric_ns).items():
            resource = aws.cloudwatch.MetricAlarm(
                f"{name}-{key}",
                name=pulumi.Output.concat(self._prefix, "-", key),
                alarm_actions=actions,
                ok_actions=actions,
                tags=dict(args.tags),
                opts=alarm_opts,
                **kwargs,
            )
            self.alarm_names[key] = resource.name
        self.dashboard_name = self._dashboard().dashboard_name
        self.register_outputs(
            {
                "alarm_topic_arn": self.alarm_topic_arn,
                "alarm_names": self.alarm_names,
                "dashboard_name": self.dashboard_name,
            }
        )

    def _metric_filters(self) -> list[aws.cloudwatch.LogMetricFilter]:
        """Requests, 5xx and latency, counted from the service's access-log lines."""
        args = self._args
        return [
            aws.cloudwatch.LogMetricFilter(
                f"{self._name}-{metric.metric_name.lower()}",
                name=pulumi.Output.concat(self._prefix, "-", metric.metric_name),
                log_group_name=args.application_log_group_name,
                pattern=metric.pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric.metric_name,
                    namespace=self._metric_ns,
                    value=metric.value,
                    unit=metric.unit,
                ),
                opts=self._child,
            )
            for metric in access_log_metrics(args.namespace, args.app_name)
        ]

    def _alarm_topic(self) -> list[pulumi.Input[str]]:
        """The encrypted SNS topic and its e-mail subscriptions; the alarms' actions."""
        args = self._args
        self.alarm_topic_arn = None
        if not args.create_alarm_topic:
            return []
        topic = aws.sns.Topic(
            f"{self._name}-alarms",
            name=pulumi.Output.concat(self._prefix, "-alarms"),
            kms_master_key_id=args.kms_key_arn,
            tags=dict(args.tags),
            opts=self._child,
        )
        self.alarm_topic_arn = topic.arn
        for index, email in enumerate(args.alarm_emails):
            aws.sns.TopicSubscription(
                f"{self._name}-alarm-email-{index}",
                topic=topic.arn,
                protocol="email",
                endpoint=email,
                opts=self._child,
            )
        return [topic.arn]

    def _dashboard(self) -> aws.cloudwatch.Dashboard:
        args = self._args
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
        return aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard",
            dashboard_name=self._prefix,
            dashboard_body=body,
            opts=self._child,
        )


def _alarms(args: ServiceMonitoringArgs, metric_ns: pulumi.Output[str]) -> dict[str, Any]:
    """MetricAlarm arguments by alarm key, in declaration order."""
    alarms = {
        "5xx-rate": _error_rate_alarm(args, metric_ns),
        "p99-latency": _latency_alarm(args, metric_ns),
        "restarts": _restarts_alarm(args),
    }
    if args.gpu_count > 0:
        alarms["gpu-capacity"] = _gpu_capacity_alarm(args)
    return alarms


def _service(args: ServiceMonitoringArgs) -> str:
    return f"{args.namespace}/{args.app_name}"


def _error_rate_alarm(args: ServiceMonitoringArgs, metric_ns: pulumi.Output[str]) -> dict[str, Any]:
    """5xx responses as a share of requests (metric math), judged only above a request floor."""
    return {
        "alarm_description": (
            f"More than {args.error_rate_threshold_percent}% of requests to {_service(args)} "
            "answered 5xx in 3 of the last 5 minutes"
        ),
        "comparison_operator": "GreaterThanThreshold",
        "threshold": args.error_rate_threshold_percent,
        "evaluation_periods": 5,
        "datapoints_to_alarm": 3,
        "treat_missing_data": "notBreaching",
        "metric_queries": [
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
    }


def _latency_alarm(args: ServiceMonitoringArgs, metric_ns: pulumi.Output[str]) -> dict[str, Any]:
    return {
        "alarm_description": (
            f"p99 latency of {_service(args)} above {args.latency_p99_threshold_ms} ms in 3 of "
            "the last 5 minutes"
        ),
        "namespace": metric_ns,
        "metric_name": LATENCY_METRIC,
        "extended_statistic": "p99",
        "period": 60,
        "comparison_operator": "GreaterThanThreshold",
        "threshold": args.latency_p99_threshold_ms,
        "evaluation_periods": 5,
        "datapoints_to_alarm": 3,
        "treat_missing_data": "notBreaching",
        # Too few requests make a p99 meaningless: keep the previous state instead.
        "evaluate_low_sample_count_percentiles": "ignore",
        "unit": "Milliseconds",
    }


def _restarts_alarm(args: ServiceMonitoringArgs) -> dict[str, Any]:
    return {
        "alarm_description": (
            f"More than {args.restart_threshold} container restarts of {_service(args)} in "
            "5 minutes"
        ),
        "namespace": CONTAINER_INSIGHTS_NAMESPACE,
        "metric_name": POD_RESTARTS_METRIC,
        "dimensions": {
            "ClusterName": args.cluster_name,
            "Namespace": args.namespace,
            "PodName": args.app_name,
        },
        "statistic": "Sum",
        "period": 300,
        "comparison_operator": "GreaterThanThreshold",
        "threshold": args.restart_threshold,
        "evaluation_periods": 1,
        "treat_missing_data": "notBreaching",
    }


def _gpu_capacity_alarm(args: ServiceMonitoringArgs) -> dict[str, Any]:
    return {
        "alarm_description": (
            f"No node offers the {args.gpu_count} GPU(s) a {_service(args)} pod needs for 15 "
            "minutes (spot reclaimed, scale-up failing, or the device plugin is down)"
        ),
        "namespace": CONTAINER_INSIGHTS_NAMESPACE,
        "metric_name": NODE_GPU_LIMIT_METRIC,
        "dimensions": {"ClusterName": args.cluster_name},
        "statistic": "Maximum",
        "period": 300,
        "comparison_operator": "LessThanThreshold",
        "threshold": args.gpu_count,
        "evaluation_periods": 3,
        # No GPU node means no data point at all: that is exactly the outage.
        "treat_missing_data": "breaching",
    }


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
