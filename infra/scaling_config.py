"""The autoscaling part of a stack's configuration: targets, scale to zero, node provisioner.

``StackConfig.scaling`` is this model; ``infra.config`` fills it from the same flat config keys
(``latencySloMs``, ``scaleToZero`` ...) and reports its problems with every other key's. The rules
that need the rest of the stack (prod never sleeps, one provisioner per pool, GPU nodes follow
the pods to zero) live with the other cross-key rules in ``infra.config.model``.

Where the defaults (``infra/environments.py``) come from:

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

import zoneinfo
from enum import StrEnum
from typing import Annotated, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from infra.config import fields as f


class NodeProvisioner(StrEnum):
    """What starts and stops the GPU nodes: one of them per stack, never both on one pool."""

    CLUSTER_AUTOSCALER = "cluster-autoscaler"
    KARPENTER = "karpenter"


class ScaleToZero(StrEnum):
    """When the inference Deployment may have no pods at all."""

    NEVER = "never"
    OFF_HOURS = "off-hours"


#: Keys that shape the cluster, so pr stacks (which borrow dev's cluster) may not set them.
SCALING_CLUSTER_ONLY_KEYS: Final = frozenset({"nodeProvisioner"})

#: A five-field cron expression (minute hour day-of-month month day-of-week), what KEDA's cron
#: scaler accepts (https://keda.sh/docs/latest/scalers/cron/).
_CRON_FIELD = r"[0-9*,/\-A-Za-z]+"
_CRON = rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$"
_CRON_HELP = "a five-field cron expression such as '0 8 * * 1-5' (08:00 Monday to Friday)"
_Cron = Annotated[str, f.pattern(_CRON, _CRON_HELP)]


def _is_time_zone(value: str) -> bool:
    return value in zoneinfo.available_timezones()


class ScalingConfig(BaseModel):
    """Validated autoscaling settings of one stack (the defaults are the prod-like ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    node_provisioner: Annotated[NodeProvisioner, f.one_of(NodeProvisioner)] = Field(
        NodeProvisioner.CLUSTER_AUTOSCALER, alias="nodeProvisioner"
    )
    latency_slo_ms: Annotated[int, f.between(10, 60_000)] = Field(100, alias="latencySloMs")
    target_in_flight: Annotated[int, f.between(1, 1024)] = Field(28, alias="scalingTargetInFlight")
    target_request_rate: Annotated[int, f.between(1, 1_000_000)] = Field(
        639, alias="scalingTargetRequestRate"
    )
    target_queue_ms: Annotated[int, f.between(1, 60_000)] = Field(50, alias="scalingTargetQueueMs")
    scale_to_zero: Annotated[ScaleToZero, f.one_of(ScaleToZero)] = Field(
        ScaleToZero.NEVER, alias="scaleToZero"
    )
    working_hours_start: _Cron = Field("0 8 * * 1-5", alias="workingHoursStart")
    working_hours_end: _Cron = Field("0 19 * * 1-5", alias="workingHoursEnd")
    working_hours_timezone: Annotated[
        str,
        f.matches(
            _is_time_zone, "an IANA time zone name such as UTC, Europe/Berlin or America/New_York"
        ),
    ] = Field("UTC", alias="workingHoursTimezone")
    scale_down_stabilization_seconds: Annotated[int, f.between(0, 3600)] = Field(
        300, alias="scaleDownStabilizationSeconds"
    )

    @model_validator(mode="after")
    def _window_and_queue(self) -> Self:
        problems: list[f.Problem] = []
        if self.target_queue_ms >= self.latency_slo_ms:
            problems.append(
                (
                    "scalingTargetQueueMs",
                    self.target_queue_ms,
                    f"must be below latencySloMs ({self.latency_slo_ms}): a queue wait that "
                    "long already breaks the SLO",
                )
            )
        if self.working_hours_start and self.working_hours_start == self.working_hours_end:
            problems.append(
                ("workingHoursEnd", self.working_hours_end, "must differ from workingHoursStart")
            )
        if problems:
            raise f.rules_error(problems)
        return self


def keys() -> frozenset[str]:
    """Every config key this model reads."""
    return frozenset(str(field.alias) for field in ScalingConfig.model_fields.values())


__all__ = ["SCALING_CLUSTER_ONLY_KEYS", "NodeProvisioner", "ScaleToZero", "ScalingConfig", "keys"]
