"""The CloudWatch dashboard of one service: traffic, errors, latency, pods, restarts, GPUs."""

from __future__ import annotations

from typing import Any

from infra.components.observability.logs import (
    CONTAINER_INSIGHTS_NAMESPACE,
    ERRORS_5XX_METRIC,
    LATENCY_METRIC,
    NODE_GPU_LIMIT_METRIC,
    PARSED_LOG_KEY,
    POD_RESTARTS_METRIC,
    REQUESTS_METRIC,
    service_metric_namespace,
)
from service import contract

#: Every widget is half the dashboard wide and six rows high.
_WIDTH, _HEIGHT = 12, 6


def _metric_widget(
    title: str, metrics: list[list[Any]], region: str, x: int, y: int
) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": _WIDTH,
        "height": _HEIGHT,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stacked": False,
            "period": 60,
            "metrics": metrics,
        },
    }


def _service_widgets(
    cluster_name: str, namespace: str, app_name: str, region: str
) -> list[dict[str, Any]]:
    """Requests and 5xx, latency, pod CPU and memory, container restarts (two rows)."""
    svc_ns = service_metric_namespace(cluster_name, namespace)
    pod_dims = ["ClusterName", cluster_name, "Namespace", namespace, "PodName", app_name]
    insights = CONTAINER_INSIGHTS_NAMESPACE
    return [
        _metric_widget(
            "Requests and 5xx per minute",
            [
                [svc_ns, REQUESTS_METRIC, {"stat": "Sum", "id": "requests"}],
                [svc_ns, ERRORS_5XX_METRIC, {"stat": "Sum", "id": "errors"}],
            ],
            region,
            0,
            0,
        ),
        _metric_widget(
            "Latency (ms)",
            [[svc_ns, LATENCY_METRIC, {"stat": "p50"}], [svc_ns, LATENCY_METRIC, {"stat": "p99"}]],
            region,
            12,
            0,
        ),
        _metric_widget(
            "Pod CPU and memory (% of limit)",
            [
                [insights, "pod_cpu_utilization_over_pod_limit", *pod_dims],
                [insights, "pod_memory_utilization_over_pod_limit", *pod_dims],
            ],
            region,
            0,
            6,
        ),
        _metric_widget(
            "Container restarts",
            [[insights, POD_RESTARTS_METRIC, *pod_dims, {"stat": "Sum"}]],
            region,
            12,
            6,
        ),
    ]


def _gpu_widget(cluster_name: str, region: str) -> dict[str, Any]:
    cluster = ["ClusterName", cluster_name]
    return _metric_widget(
        "GPUs in the cluster (per node max) and utilisation",
        [
            [CONTAINER_INSIGHTS_NAMESPACE, NODE_GPU_LIMIT_METRIC, *cluster, {"stat": "Maximum"}],
            [CONTAINER_INSIGHTS_NAMESPACE, "node_gpu_utilization", *cluster, {"stat": "Average"}],
        ],
        region,
        0,
        12,
    )


def _recent_errors_widget(
    namespace: str, region: str, application_log_group: str, x: int
) -> dict[str, Any]:
    """A Logs Insights table of the latest 5xx access-log lines."""
    fields = contract.LOG_FIELDS
    parsed = PARSED_LOG_KEY
    return {
        "type": "log",
        "x": x,
        "y": 12,
        "width": _WIDTH,
        "height": _HEIGHT,
        "properties": {
            "title": "Recent 5xx responses",
            "region": region,
            "view": "table",
            "query": (
                f"SOURCE '{application_log_group}' | "
                f"filter kubernetes.namespace_name = '{namespace}' and "
                f"{parsed}.{fields.STATUS} >= 500 | "
                f"fields @timestamp, {parsed}.{fields.ROUTE}, "
                f"{parsed}.{fields.STATUS}, {parsed}.{fields.LATENCY_MS}, "
                f"{parsed}.{fields.REQUEST_ID} | sort @timestamp desc | limit 50"
            ),
        },
    }


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
    widgets = _service_widgets(cluster_name, namespace, app_name, region)
    if gpu:
        widgets.append(_gpu_widget(cluster_name, region))
    widgets.append(
        _recent_errors_widget(namespace, region, application_log_group, 12 if gpu else 0)
    )
    return {"widgets": widgets}
