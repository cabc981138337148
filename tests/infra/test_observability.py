"""Log groups, metric filters, alarms and dashboard under Pulumi mocks.

The metric filter patterns are checked against access-log lines written by the service's own
access middleware and JSON formatter, wrapped the way Container Insights' Fluent Bit ships them
(raw line in ``log``, parsed JSON in ``log_processed``, pod metadata in ``kubernetes``), using a
small evaluator of CloudWatch's JSON filter syntax.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import re
from types import SimpleNamespace
from typing import Any

import pytest

from infra.components import observability as obs
from service import contract
from service.access_log import AccessMiddleware
from service.json_logging import JsonFormatter
from service.metrics import ServiceMetrics
from tests.infra.component_harness import (
    ACCOUNT_ID,
    REGION,
    all_of,
    one,
    only,
    run_under_mocks,
)
from tools.mocks import Registration

CLUSTER = "torch-eks-inference-staging"
NAMESPACE = "inference"
APP = "torch-inference"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0d6f1c1e-0000-4000-8000-000000000001"
APP_LOG_GROUP = f"/aws/containerinsights/{CLUSTER}/application"

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

#: Container Insights metrics (namespace ContainerInsights) as AWS documents them.
KNOWN_CONTAINER_INSIGHTS_METRICS = {
    "pod_number_of_container_restarts",
    "pod_cpu_utilization_over_pod_limit",
    "pod_memory_utilization_over_pod_limit",
    "node_gpu_limit",
    "node_gpu_utilization",
}


# ----------------------------------------------------------------- log lines and the evaluator
def access_log_line(status: int, route: str) -> dict[str, Any]:
    """One access-log line written by the service's middleware, as a parsed JSON object."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access_logger = logging.getLogger("service.access_log")
    access_logger.addHandler(handler)
    previous_level = access_logger.level
    access_logger.setLevel(logging.INFO)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = SimpleNamespace(path=route)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": route, "headers": []}
    try:
        asyncio.run(AccessMiddleware(app, ServiceMetrics())(scope, receive, send))  # type: ignore[arg-type]
    finally:
        access_logger.removeHandler(handler)
        access_logger.setLevel(previous_level)
    (line,) = stream.getvalue().splitlines()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def fluent_bit_record(line: dict[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    """The CloudWatch log event Container Insights' Fluent Bit makes of one container line.

    The add-on's application-log.conf runs the kubernetes filter with ``Merge_Log On`` and
    ``Merge_Log_Key log_processed``: written out here, not taken from the code under test.
    """
    return {
        "time": "2026-11-25T20:00:00.000000000Z",
        "stream": "stdout",
        "log": json.dumps(line),
        "log_processed": line,
        "kubernetes": {
            "pod_name": f"{APP}-6d9f7c8b5d-x2x7q",
            "namespace_name": namespace,
            "container_name": APP,
            "host": "ip-10-0-1-23.us-east-1.compute.internal",
        },
    }


_TERM = re.compile(
    r'^\(\$\.(?P<path>[\w.]+) (?P<op>=|!=|>=|<=|>|<) (?P<value>"[^"]*"|-?\d+(\.\d+)?)\)$'
)


def parse_pattern(pattern: str) -> list[tuple[list[str], str, str | float]]:
    """Parse ``{ ($.a.b op v) && ... }`` into (path, op, value) terms; fail on anything else."""
    assert pattern.startswith("{ "), pattern
    assert pattern.endswith(" }"), pattern
    terms = []
    for raw in pattern[2:-2].split(" && "):
        match = _TERM.match(raw)
        assert match, f"unsupported term {raw!r} in {pattern!r}"
        value = match["value"]
        parsed: str | float = value[1:-1] if value.startswith('"') else float(value)
        terms.append((match["path"].split("."), match["op"], parsed))
    return terms


def _lookup(record: dict[str, Any], path: list[str]) -> Any:
    node: Any = record
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def matches(pattern: str, record: dict[str, Any]) -> bool:
    """CloudWatch JSON filter semantics: every term must hold; a missing field never matches."""
    for path, op, expected in parse_pattern(pattern):
        actual = _lookup(record, path)
        if actual is None:
            return False
        if isinstance(expected, str):
            if not isinstance(actual, str):
                return False
            ok = actual == expected if op == "=" else actual != expected
        else:
            if not isinstance(actual, int | float) or isinstance(actual, bool):
                return False
            ok = {
                "=": actual == expected,
                "!=": actual != expected,
                ">=": actual >= expected,
                "<=": actual <= expected,
                ">": actual > expected,
                "<": actual < expected,
            }[op]
        if not ok:
            return False
    return True


# ----------------------------------------------------------------- components under mocks
def logs_args(**changes: Any) -> obs.ContainerInsightsLogsArgs:
    args = obs.ContainerInsightsLogsArgs(
        cluster_name=CLUSTER, account_id=ACCOUNT_ID, region=REGION, retention_days=30
    )
    return dataclasses.replace(args, **changes)


def monitoring_args(**changes: Any) -> obs.ServiceMonitoringArgs:
    args = obs.ServiceMonitoringArgs(
        cluster_name=CLUSTER,
        namespace=NAMESPACE,
        app_name=APP,
        application_log_group_name=APP_LOG_GROUP,
        region=REGION,
        gpu_count=1,
        kms_key_arn=KEY_ARN,
        alarm_emails=("oncall@example.com",),
    )
    return dataclasses.replace(args, **changes)


@pytest.fixture(scope="module")
def logs() -> list[Registration]:
    return run_under_mocks(lambda: obs.ContainerInsightsLogs("obs", logs_args()) and None)


@pytest.fixture(scope="module")
def monitoring() -> list[Registration]:
    return run_under_mocks(lambda: obs.ServiceMonitoring("mon", monitoring_args()) and None)


def alarm(resources: list[Registration], key: str) -> dict[str, Any]:
    return only(resources, ALARM, f"mon-{key}")


def test_four_container_insights_log_groups_with_retention_and_kms(
    logs: list[Registration],
) -> None:
    groups = all_of(logs, LOG_GROUP)
    assert sorted(g["name"] for g in groups) == sorted(
        f"/aws/containerinsights/{CLUSTER}/{t}"
        for t in ("application", "dataplane", "host", "performance")
    )
    key = only(logs, "aws:kms/key:Key")
    key_arn = one(logs, "aws:kms/key:Key").outputs["arn"]  # the key this component created
    for group in groups:
        assert group["retentionInDays"] == 30
        assert group["kmsKeyId"] == key_arn
    assert key["enableKeyRotation"] is True


def test_key_policy_lets_cloudwatch_logs_use_it_for_this_cluster_only(
    logs: list[Registration],
) -> None:
    policy = json.loads(only(logs, "aws:kms/key:Key")["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    logs_statement = statements["CloudWatchLogsEncryptsContainerInsights"]
    assert logs_statement["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}
    assert logs_statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/containerinsights/{CLUSTER}/*"
    )
    assert statements["AccountAdministers"]["Principal"] == {
        "AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"
    }
    assert statements["CloudWatchAlarmsPublishToEncryptedTopic"]["Principal"] == {
        "Service": "cloudwatch.amazonaws.com"
    }


@pytest.mark.parametrize("days", [0, 2, 10, 366, 10000])
def test_retention_must_be_a_cloudwatch_value(days: int) -> None:
    with pytest.raises(ValueError, match=f"log retention {days} days"):
        logs_args(retention_days=days)


def test_log_metric_filters_target_the_application_group(
    monitoring: list[Registration],
) -> None:
    filters = all_of(monitoring, METRIC_FILTER)
    assert {f["metricTransformation"]["name"] for f in filters} == {
        obs.REQUESTS_METRIC,
        obs.ERRORS_5XX_METRIC,
        obs.LATENCY_METRIC,
    }
    for f in filters:
        assert f["logGroupName"] == APP_LOG_GROUP
        assert f["metricTransformation"]["namespace"] == obs.service_metric_namespace(
            CLUSTER, NAMESPACE
        )


def test_filter_patterns_read_only_contract_log_fields() -> None:
    contract_fields = {f.default for f in dataclasses.fields(contract.LOG_FIELDS)}
    for metric in obs.access_log_metrics(NAMESPACE, APP):
        for path, _, _ in parse_pattern(metric.pattern):
            if path[0] == obs.PARSED_LOG_KEY:
                assert path[1] in contract_fields, metric.pattern
            else:
                assert path[0] == "kubernetes"
        if metric.value != "1":
            assert metric.value.removeprefix(f"$.{obs.PARSED_LOG_KEY}.") in contract_fields


def _patterns() -> dict[str, obs.AccessLogMetric]:
    return {m.metric_name: m for m in obs.access_log_metrics(NAMESPACE, APP)}


@pytest.mark.parametrize(
    ("status", "route", "counted", "error"),
    [
        (200, contract.PATHS.PREDICT, True, False),
        (422, contract.PATHS.MODEL_INFER, True, False),
        (500, contract.PATHS.PREDICT, True, True),
        (503, contract.PATHS.MODEL_INFER, True, True),
        (200, contract.PATHS.LIVE, False, False),
        (503, contract.PATHS.READY, False, False),
        (503, contract.PATHS.STARTUP, False, False),
    ],
)
def test_filters_match_real_access_log_lines(
    status: int, route: str, counted: bool, error: bool
) -> None:
    line = access_log_line(status, route)
    assert line[contract.LOG_FIELDS.STATUS] == status  # the service wrote what we asked for
    record = fluent_bit_record(line)
    patterns = _patterns()
    assert matches(patterns[obs.REQUESTS_METRIC].pattern, record) is counted
    assert matches(patterns[obs.ERRORS_5XX_METRIC].pattern, record) is error
    assert matches(patterns[obs.LATENCY_METRIC].pattern, record) is counted
    if counted:
        value_path = patterns[obs.LATENCY_METRIC].value.removeprefix("$.").split(".")
        assert isinstance(_lookup(record, value_path), float | int)


def test_filters_ignore_other_namespaces_and_non_access_lines() -> None:
    patterns = _patterns()
    other = fluent_bit_record(access_log_line(500, contract.PATHS.PREDICT), namespace="pr-12")
    startup = fluent_bit_record(
        {contract.LOG_FIELDS.LEVEL: "INFO", contract.LOG_FIELDS.MESSAGE: "model loaded"}
    )
    for metric in patterns.values():
        assert not matches(metric.pattern, other)
        assert not matches(metric.pattern, startup)


def test_5xx_rate_alarm_is_metric_math_over_the_filter_metrics(
    monitoring: list[Registration],
) -> None:
    spec = alarm(monitoring, "5xx-rate")
    queries = {q["id"]: q for q in spec["metricQueries"]}
    assert queries["errors"]["metric"]["metricName"] == obs.ERRORS_5XX_METRIC
    assert queries["requests"]["metric"]["metricName"] == obs.REQUESTS_METRIC
    expression = queries["error_rate"]["expression"]
    assert set(re.findall(r"\b[a-z_]+\b", expression)) <= {"errors", "requests"}
    assert queries["error_rate"]["returnData"] is True
    assert spec["threshold"] == 5.0
    assert spec["comparisonOperator"] == "GreaterThanThreshold"


def test_p99_latency_alarm(monitoring: list[Registration]) -> None:
    spec = alarm(monitoring, "p99-latency")
    assert spec["metricName"] == obs.LATENCY_METRIC
    assert spec["namespace"] == obs.service_metric_namespace(CLUSTER, NAMESPACE)
    assert spec["extendedStatistic"] == "p99"
    assert spec["threshold"] == 1000.0


def test_restart_alarm_reads_container_insights_for_the_deployment(
    monitoring: list[Registration],
) -> None:
    spec = alarm(monitoring, "restarts")
    assert (spec["namespace"], spec["metricName"]) == (
        "ContainerInsights",
        "pod_number_of_container_restarts",
    )
    assert spec["dimensions"] == {"ClusterName": CLUSTER, "Namespace": NAMESPACE, "PodName": APP}


def test_gpu_capacity_alarm_breaches_when_no_gpu_node_reports(
    monitoring: list[Registration],
) -> None:
    spec = alarm(monitoring, "gpu-capacity")
    assert (spec["namespace"], spec["metricName"]) == ("ContainerInsights", "node_gpu_limit")
    assert spec["dimensions"] == {"ClusterName": CLUSTER}
    assert spec["comparisonOperator"] == "LessThanThreshold"
    assert spec["threshold"] == 1
    assert spec["treatMissingData"] == "breaching"


def test_names_are_unique_per_cluster(monitoring: list[Registration]) -> None:
    # Alarm, topic and dashboard names are account-wide; the cluster (one per stack) is in each.
    named = [*all_of(monitoring, ALARM), only(monitoring, "aws:sns/topic:Topic")]
    for spec in named:
        assert spec["name"].startswith(f"{CLUSTER}-{NAMESPACE}-{APP}-")
    dashboard = only(monitoring, "aws:cloudwatch/dashboard:Dashboard")
    assert dashboard["dashboardName"] == f"{CLUSTER}-{NAMESPACE}-{APP}"
    assert obs.service_metric_namespace(CLUSTER, NAMESPACE) != obs.service_metric_namespace(
        "torch-eks-inference-dev", NAMESPACE
    )


def test_cpu_stack_has_no_gpu_alarm() -> None:
    resources = run_under_mocks(
        lambda: obs.ServiceMonitoring("mon", monitoring_args(gpu_count=0)) and None
    )
    names = {r.name for r in resources if r.type == ALARM}
    assert names == {"mon-5xx-rate", "mon-p99-latency", "mon-restarts"}


def test_every_alarm_notifies_the_encrypted_topic(monitoring: list[Registration]) -> None:
    topic = only(monitoring, "aws:sns/topic:Topic")
    assert topic["kmsMasterKeyId"] == KEY_ARN
    topic_arn = one(monitoring, "aws:sns/topic:Topic").outputs["arn"]  # the topic created here
    alarms = all_of(monitoring, ALARM)
    assert len(alarms) == 4
    for spec in alarms:
        assert spec["alarmActions"] == [topic_arn]
        assert spec["okActions"] == [topic_arn]
    subscription = only(monitoring, "aws:sns/topicSubscription:TopicSubscription")
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "oncall@example.com")


def test_alarms_without_topic_have_no_actions() -> None:
    resources = run_under_mocks(
        lambda: (
            obs.ServiceMonitoring(
                "mon", monitoring_args(create_alarm_topic=False, alarm_emails=(), kms_key_arn=None)
            )
            and None
        )
    )
    assert not all_of(resources, "aws:sns/topic:Topic")
    for spec in all_of(resources, ALARM):
        assert spec.get("alarmActions", []) == []


def test_dashboard_reads_only_metrics_that_exist(monitoring: list[Registration]) -> None:
    body = json.loads(only(monitoring, "aws:cloudwatch/dashboard:Dashboard")["dashboardBody"])
    filter_metrics = {f["metricTransformation"]["name"] for f in all_of(monitoring, METRIC_FILTER)}
    seen = set()
    for widget in body["widgets"]:
        if widget["type"] == "metric":
            for metric in widget["properties"]["metrics"]:
                namespace, name = metric[0], metric[1]
                seen.add(name)
                if namespace == obs.CONTAINER_INSIGHTS_NAMESPACE:
                    assert name in KNOWN_CONTAINER_INSIGHTS_METRICS
                else:
                    assert namespace == obs.service_metric_namespace(CLUSTER, NAMESPACE)
                    assert name in filter_metrics
        else:
            assert widget["type"] == "log"
            assert f"SOURCE '{APP_LOG_GROUP}'" in widget["properties"]["query"]
    assert {obs.LATENCY_METRIC, obs.POD_RESTARTS_METRIC, obs.NODE_GPU_LIMIT_METRIC} <= seen


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"error_rate_threshold_percent": 0}, "error_rate_threshold_percent"),
        ({"latency_p99_threshold_ms": -1}, "latency_p99_threshold_ms"),
        ({"kms_key_arn": None}, "kms_key_arn"),
        ({"alarm_emails": ("not-an-address",)}, "not-an-address"),
        ({"create_alarm_topic": False}, "alarm_emails need"),
        ({"gpu_count": -1}, "gpu_count"),
    ],
)
def test_bad_monitoring_args_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        monitoring_args(**changes)
