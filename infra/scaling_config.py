"""The autoscaling part of a stack's configuration: targets, scale to zero, node provisioner.

``infra.config`` reads these keys with the same reader (every problem collected, each naming the
key, the value and what is allowed) and keeps the result in ``StackConfig.scaling``. They live in
a module of their own so the scaling settings, their defaults and their rules read as one piece.

Where the defaults come from:

- ``latencySloMs`` per environment, and the per-pod targets derived from it, are what the scaling
  simulation favours (``make simulate``; ``benchmarks/scaling_targets.py`` ``RECOMMENDED``):
  ``scalingTargetInFlight`` is the concurrency at which one pod's benchmarked p99 crosses the SLO
  (``keda_target``: 28 for 100 ms, 64 for 250 ms, from the ``heavy | ours | predict`` rows of
  ``benchmarks/results.md``), ``scalingTargetRequestRate`` the pod's measured throughput there
  (``rate_target``: 639 and 769 req/s), and ``scalingTargetQueueMs`` half the SLO for the batch
  queue's p99 wait (``QUEUE_TIME_SHARE_OF_SLO``). ``python -m benchmarks.scaling_targets
  --slo-ms N`` prints the targets for another SLO.
- ``scaleToZero: off-hours`` (dev and pr stacks): a KEDA cron trigger keeps ``hpaMinReplicas``
  warm during ``workingHoursStart``..``workingHoursEnd`` (``workingHoursTimezone``); outside it the
  Deployment falls to zero once no request has been in flight for the cooldown period, and the
  GPU nodes follow.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from infra.config import Environment, NodeScaling, _Reader


class NodeProvisioner(StrEnum):
    """What starts and stops the GPU nodes: one of them per stack, never both on one pool."""

    CLUSTER_AUTOSCALER = "cluster-autoscaler"
    KARPENTER = "karpenter"


class ScaleToZero(StrEnum):
    """When the inference Deployment may have no pods at all."""

    NEVER = "never"
    OFF_HOURS = "off-hours"


@dataclass(frozen=True)
class ScalingConfig:
    """Validated autoscaling settings of one stack."""

    node_provisioner: NodeProvisioner = NodeProvisioner.CLUSTER_AUTOSCALER
    latency_slo_ms: int = 100
    target_in_flight: int = 28
    target_request_rate: int = 639
    target_queue_ms: int = 50
    scale_to_zero: ScaleToZero = ScaleToZero.NEVER
    working_hours_start: str = "0 8 * * 1-5"
    working_hours_end: str = "0 19 * * 1-5"
    working_hours_timezone: str = "UTC"
    scale_down_stabilization_seconds: int = 300


#: Defaults shared by every environment (Pulumi.yaml declares them with a sentinel default).
SCALING_COMMON_DEFAULTS: Final[Mapping[str, Any]] = {
    "nodeProvisioner": "cluster-autoscaler",
    "workingHoursStart": "0 8 * * 1-5",
    "workingHoursEnd": "0 19 * * 1-5",
    "workingHoursTimezone": "UTC",
    "scaleDownStabilizationSeconds": 300,
}
#: Targets for a 100 ms and a 250 ms p99 SLO (``make simulate`` / ``benchmarks.scaling_targets``).
_SLO_100_MS: Final = {
    "latencySloMs": 100,
    "scalingTargetInFlight": 28,
    "scalingTargetRequestRate": 639,
    "scalingTargetQueueMs": 50,
}
_SLO_250_MS: Final = {
    "latencySloMs": 250,
    "scalingTargetInFlight": 64,
    "scalingTargetRequestRate": 769,
    "scalingTargetQueueMs": 125,
}
#: Per-environment defaults, as the simulation chose them: production-like stacks keep a 100 ms
#: SLO and never sleep; dev and pr stacks accept 250 ms and sleep outside working hours.
SCALING_ENVIRONMENT_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "dev": {**_SLO_250_MS, "scaleToZero": "off-hours"},
    "staging": {**_SLO_100_MS, "scaleToZero": "never"},
    "prod": {**_SLO_100_MS, "scaleToZero": "never"},
    "pr": {**_SLO_250_MS, "scaleToZero": "off-hours"},
}
#: Keys that shape the cluster, so pr stacks (which borrow dev's cluster) may not set them.
SCALING_CLUSTER_ONLY_KEYS: Final = frozenset({"nodeProvisioner"})

#: A five-field cron expression (minute hour day-of-month month day-of-week), what KEDA's cron
#: scaler accepts (https://keda.sh/docs/latest/scalers/cron/).
_CRON_FIELD = r"[0-9*,/\-A-Za-z]+"
_CRON = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")


def keys() -> frozenset[str]:
    """Every config key this module reads."""
    env_keys = {key for defaults in SCALING_ENVIRONMENT_DEFAULTS.values() for key in defaults}
    return frozenset(SCALING_COMMON_DEFAULTS) | env_keys


def defaults_for(environment: str) -> dict[str, Any]:
    """The scaling defaults of one environment kind (dev, staging, prod, pr)."""
    return {**SCALING_COMMON_DEFAULTS, **SCALING_ENVIRONMENT_DEFAULTS[environment]}


def _given(r: _Reader, name: str) -> bool:
    from infra.config import is_unset

    full = r.key(name)
    return full in r.raw and not is_unset(r.raw[full])


def _working_hours(r: _Reader) -> tuple[str, str, str]:
    start = r.string("workingHoursStart", lambda v: bool(_CRON.match(v)), _CRON_HELP)
    end = r.string("workingHoursEnd", lambda v: bool(_CRON.match(v)), _CRON_HELP)
    timezone = r.string(
        "workingHoursTimezone",
        lambda v: v in zoneinfo.available_timezones(),
        "an IANA time zone name such as UTC, Europe/Berlin or America/New_York",
    )
    if start and start == end:
        r.fail("workingHoursEnd", end, "must differ from workingHoursStart")
    return start, end, timezone


_CRON_HELP = "a five-field cron expression such as '0 8 * * 1-5' (08:00 Monday to Friday)"


def read_scaling(
    r: _Reader,
    environment: Environment,
    gpu_nodes: NodeScaling,
    gpu_stack: bool,
) -> ScalingConfig:
    """Read and check the scaling keys; problems go to ``r`` like every other key's."""
    provisioner = r.choice("nodeProvisioner", NodeProvisioner, NodeProvisioner.CLUSTER_AUTOSCALER)
    slo = r.integer("latencySloMs", 10, 60_000)
    in_flight = r.integer("scalingTargetInFlight", 1, 1024)
    request_rate = r.integer("scalingTargetRequestRate", 1, 1_000_000)
    queue_ms = r.integer("scalingTargetQueueMs", 1, 60_000)
    if queue_ms >= slo:
        r.fail(
            "scalingTargetQueueMs",
            queue_ms,
            f"must be below latencySloMs ({slo}): a queue wait that long already breaks the SLO",
        )
    zero = r.choice("scaleToZero", ScaleToZero, ScaleToZero.NEVER)
    start, end, timezone = _working_hours(r)
    stabilization = r.integer("scaleDownStabilizationSeconds", 0, 3600)

    if zero is not ScaleToZero.NEVER and environment.value == "prod":
        r.fail("scaleToZero", zero.value, "prod keeps hpaMinReplicas warm: must be never")
        zero = ScaleToZero.NEVER  # reported; do not pile a second problem on top
    is_karpenter = provisioner is NodeProvisioner.KARPENTER
    if is_karpenter and environment.value != "pr":
        # One pool, one provisioner: Karpenter owns the GPU nodes, so there is no managed GPU node
        # group whose size cluster-autoscaler would also change.
        for key in ("gpuNodeMin",):
            if _given(r, key):
                r.fail(
                    key,
                    r.raw[r.key(key)],
                    "sizes the cluster-autoscaler GPU node groups; with nodeProvisioner karpenter "
                    "the GPU nodes come from a Karpenter NodePool (gpuNodeMax caps it): remove it",
                )
    elif (
        zero is not ScaleToZero.NEVER
        and gpu_stack
        and environment.value != "pr"
        and gpu_nodes.min_size > 0
    ):
        r.fail(
            "gpuNodeMin",
            gpu_nodes.min_size,
            f"scaleToZero {zero.value} lets the pods go to zero, so the GPU node group must be "
            "allowed to follow: set gpuNodeMin to 0",
        )
    return ScalingConfig(
        node_provisioner=provisioner,
        latency_slo_ms=slo,
        target_in_flight=in_flight,
        target_request_rate=request_rate,
        target_queue_ms=queue_ms,
        scale_to_zero=zero,
        working_hours_start=start,
        working_hours_end=end,
        working_hours_timezone=timezone,
        scale_down_stabilization_seconds=stabilization,
    )
