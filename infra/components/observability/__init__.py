"""CloudWatch for the inference service, in three modules.

- ``logs``: the encrypted Container Insights log groups (:class:`ContainerInsightsLogs`, needed
  before the add-on ships logs) and the metrics derived from the service's access log;
- ``monitoring``: :class:`ServiceMonitoring`, after the workload: metric filters, alarms and
  their SNS topic, and the dashboard;
- ``dashboard``: the dashboard's widgets.
"""

from infra.components.observability.dashboard import dashboard_body
from infra.components.observability.logs import (
    CONTAINER_INSIGHTS_LOG_TYPES,
    CONTAINER_INSIGHTS_NAMESPACE,
    ERRORS_5XX_METRIC,
    LATENCY_METRIC,
    NODE_GPU_LIMIT_METRIC,
    PARSED_LOG_KEY,
    POD_RESTARTS_METRIC,
    REQUESTS_METRIC,
    AccessLogMetric,
    ContainerInsightsLogs,
    ContainerInsightsLogsArgs,
    access_log_filter_pattern,
    access_log_metrics,
    container_insights_log_group_name,
    logs_key_policy,
    require_retention,
    service_metric_namespace,
)
from infra.components.observability.monitoring import ServiceMonitoring, ServiceMonitoringArgs

__all__ = [
    "CONTAINER_INSIGHTS_LOG_TYPES",
    "CONTAINER_INSIGHTS_NAMESPACE",
    "ERRORS_5XX_METRIC",
    "LATENCY_METRIC",
    "NODE_GPU_LIMIT_METRIC",
    "PARSED_LOG_KEY",
    "POD_RESTARTS_METRIC",
    "REQUESTS_METRIC",
    "AccessLogMetric",
    "ContainerInsightsLogs",
    "ContainerInsightsLogsArgs",
    "ServiceMonitoring",
    "ServiceMonitoringArgs",
    "access_log_filter_pattern",
    "access_log_metrics",
    "container_insights_log_group_name",
    "dashboard_body",
    "logs_key_policy",
    "require_retention",
    "service_metric_namespace",
]
