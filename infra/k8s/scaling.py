"""The inference Deployment's KEDA ScaledObject and TriggerAuthentication, as plain data.

Triggers, in order of importance (KEDA builds one HPA from them; the HPA takes the largest
replica count any of them asks for):

1. **in-flight requests per pod** (primary): ``inference_http_requests_in_flight`` summed over
   the Deployment's pods, ``AverageValue`` target = ``scalingTargetInFlight`` per pod. The gauge
   counts every request the server is answering, the scrape of ``/metrics`` itself included
   (service/access_log.py), so each pod's sample is reduced by that one request.
2. **request rate per pod**: answered inference requests per second (health checks and scrapes
   left out), ``AverageValue`` target = ``scalingTargetRequestRate``. A batching pod's in-flight
   count is far from proportional to its load; the rate is, and it keeps the replica count from
   flapping where in-flight alone would (the scaling simulation ran with both).
3. **queue time**: the p99 wait in the batch queue over the last minute, in ms
   (``inference_queue_duration_seconds``), ``Value`` target = ``scalingTargetQueueMs``: a batch
   queue that grows means the GPU is the bottleneck even when requests are short.
4. **CPU** (a floor): ``Utilization`` of the CPU request, ``hpaTargetCpuUtilization``; it can add
   pods when JSON decoding saturates the CPU, it never removes pods the other triggers need.
5. **cron** (``scaleToZero: off-hours`` only): keeps ``hpaMinReplicas`` during working hours.
   Outside them ``minReplicaCount`` is 0: once nothing has been in flight (activation threshold
   0) for ``cooldownPeriod``, KEDA scales the Deployment to zero and the GPU nodes follow.

The Prometheus triggers authenticate with ``podIdentity.provider: aws`` and no ``authModes``:
KEDA signs with SigV4 only when no other auth mode is set, and rejects pod identity combined with
one (kedacore/keda pkg/scalers/prometheus_scaler.go, ``checkAuthConfigWithPodIdentity``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from service.contract import PATHS

#: The TriggerAuthentication every ScaledObject of a namespace refers to.
TRIGGER_AUTH_NAME: Final = "keda-aws-pod-identity"
IN_FLIGHT_METRIC: Final = "inference_http_requests_in_flight"
#: prometheus_client exposes the ``inference_http_requests`` counter with a ``_total`` suffix.
REQUESTS_METRIC: Final = "inference_http_requests_total"
QUEUE_METRIC: Final = "inference_queue_duration_seconds"
#: Routes that are not inference load: probes and the scrape itself (service.contract.PATHS).
NOT_LOAD_ROUTES: Final = "|".join(
    re.escape(path) for path in (PATHS.METRICS, PATHS.LIVE, PATHS.READY, PATHS.STARTUP)
)
#: How often KEDA evaluates the triggers (the value the scaling simulation ran with).
POLLING_INTERVAL_SECONDS: Final = 30
#: Scale-up: double, or add 4 pods, every 15 s, whichever is more, with no stabilisation (a GPU pod
#: takes minutes to become ready; waiting longer only grows the queue).
SCALE_UP_PERIOD_SECONDS: Final = 15
SCALE_UP_PODS: Final = 4
SCALE_UP_PERCENT: Final = 100
#: Scale-down: one pod per minute, after the stabilisation window. One pod at a time is what the
#: PodDisruptionBudget allows (maxUnavailable 1), and a minute is longer than a pod's drain
#: (terminationGracePeriodSeconds).
SCALE_DOWN_PODS: Final = 1
SCALE_DOWN_PERIOD_SECONDS: Final = 60
#: How long nothing may be in flight before KEDA scales an idle Deployment to zero.
COOLDOWN_SECONDS: Final = 300


@dataclass(frozen=True)
class ScalingSpec:
    """What a ScaledObject needs to know about the service and the stack's targets."""

    namespace: str
    app_name: str
    deployment_name: str
    query_url: str
    aws_region: str
    min_replicas: int
    max_replicas: int
    target_in_flight: int
    target_request_rate: int
    target_queue_ms: int
    target_cpu_utilization: int
    scale_down_stabilization_seconds: int
    #: Cron window (start, end, timezone) that keeps ``min_replicas``; ``None``: never zero.
    working_hours: tuple[str, str, str] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"replicas: need 1 <= min_replicas ({self.min_replicas}) <= "
                f"max_replicas ({self.max_replicas})"
            )
        if min(self.target_in_flight, self.target_request_rate, self.target_queue_ms) < 1:
            raise ValueError(
                "target_in_flight, target_request_rate and target_queue_ms must be at least 1"
            )
        if not self.query_url.startswith("https://") or self.query_url.endswith("/"):
            raise ValueError(
                f"query_url {self.query_url!r} must be the https workspace URL without a "
                "trailing '/' (KEDA appends /api/v1/query)"
            )
        if not 0 <= self.scale_down_stabilization_seconds <= 3600:
            raise ValueError("scale_down_stabilization_seconds must be 0-3600")

    @property
    def selector(self) -> str:
        """PromQL label matchers of this service's series (labels set by the scrape config)."""
        return f'namespace="{self.namespace}",app="{self.app_name}"'


def in_flight_query(s: ScalingSpec) -> str:
    """Requests in flight across the service's pods, the scrape's own request left out."""
    return f"sum(clamp_min({IN_FLIGHT_METRIC}{{{s.selector}}} - 1, 0))"


def request_rate_query(s: ScalingSpec) -> str:
    """Inference requests answered per second across the service's pods."""
    return f'sum(rate({REQUESTS_METRIC}{{{s.selector},route!~"{NOT_LOAD_ROUTES}"}}[1m]))'


def queue_time_query(s: ScalingSpec) -> str:
    """p99 batch-queue wait over the last minute, in milliseconds (0 without traffic)."""
    buckets = f"sum by (le) (rate({QUEUE_METRIC}_bucket{{{s.selector}}}[1m]))"
    return f"1000 * histogram_quantile(0.99, {buckets})"


def _prometheus_trigger(
    s: ScalingSpec, name: str, query: str, threshold: int, metric_type: str
) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        "metricType": metric_type,
        "metadata": {
            "serverAddress": s.query_url,
            "query": query,
            "threshold": str(threshold),
            # Active while anything at all is in flight: the Deployment only drops to zero
            # (when minReplicaCount is 0) after a full cooldown without a request.
            "activationThreshold": "0",
            "awsRegion": s.aws_region,
        },
        "authenticationRef": {"name": TRIGGER_AUTH_NAME},
    }


def triggers(s: ScalingSpec) -> list[dict[str, Any]]:
    """The ScaledObject's triggers (see the module docstring for the order and why)."""
    result = [
        _prometheus_trigger(s, "in-flight", in_flight_query(s), s.target_in_flight, "AverageValue"),
        _prometheus_trigger(
            s, "request-rate", request_rate_query(s), s.target_request_rate, "AverageValue"
        ),
        _prometheus_trigger(s, "queue-time", queue_time_query(s), s.target_queue_ms, "Value"),
        {
            "type": "cpu",
            "name": "cpu-floor",
            "metricType": "Utilization",
            "metadata": {"value": str(s.target_cpu_utilization)},
        },
    ]
    if s.working_hours is not None:
        start, end, timezone = s.working_hours
        result.append(
            {
                "type": "cron",
                "name": "working-hours",
                "metadata": {
                    "timezone": timezone,
                    "start": start,
                    "end": end,
                    "desiredReplicas": str(s.min_replicas),
                },
            }
        )
    return result


def behavior(s: ScalingSpec) -> dict[str, Any]:
    """HPA behaviour: fast up, slow and stabilised down (one pod per drain-safe period)."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": SCALE_UP_PODS, "periodSeconds": SCALE_UP_PERIOD_SECONDS},
                {
                    "type": "Percent",
                    "value": SCALE_UP_PERCENT,
                    "periodSeconds": SCALE_UP_PERIOD_SECONDS,
                },
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": s.scale_down_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [
                {
                    "type": "Pods",
                    "value": SCALE_DOWN_PODS,
                    "periodSeconds": SCALE_DOWN_PERIOD_SECONDS,
                }
            ],
        },
    }


def scaled_object_spec(s: ScalingSpec) -> dict[str, Any]:
    """The ScaledObject spec (keda.sh/v1alpha1); KEDA creates and owns the HPA from it."""
    return {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": s.deployment_name,
        },
        "pollingInterval": POLLING_INTERVAL_SECONDS,
        "cooldownPeriod": COOLDOWN_SECONDS,
        "minReplicaCount": 0 if s.working_hours is not None else s.min_replicas,
        "maxReplicaCount": s.max_replicas,
        "advanced": {
            "horizontalPodAutoscalerConfig": {"name": s.app_name, "behavior": behavior(s)},
        },
        "triggers": triggers(s),
    }


def trigger_authentication_spec() -> dict[str, Any]:
    """Use the KEDA operator's own AWS identity (EKS Pod Identity) to sign AMP queries."""
    return {"podIdentity": {"provider": "aws"}}
