"""The per-pod in-flight target each stack scales on, and the scaling defaults per stack.

    python -m benchmarks.scaling_targets --slo-ms 100     # the target for a p99 SLO of 100 ms
    make simulate                                         # the simulation that chose the defaults

**The target is not a guess.** The service benchmark (``benchmarks/results.md``, *Servers*
table) measured one pod's p99 latency at concurrency 1, 8 and 64. The target for a stack is the
concurrency at which that p99 crosses the stack's latency SLO, interpolated linearly between the
measured points (:func:`inflight_target`). An autoscaler that keeps the average in-flight
requests per pod at or under it keeps each pod's p99 within the SLO. The figure to hand to KEDA
is :func:`keda_target`: the target rounded down to a whole request; :func:`rate_target` is the
request rate per pod at that concurrency, the second trigger that keeps the HPA from flapping.

**The defaults per stack** (:data:`RECOMMENDED`) are the ones the scaling simulation
(``benchmarks/simulation.py``, ``make simulate``) favours for each stack's traffic and
constraints; ``tests/benchmarks/test_scaling_defaults.py`` re-runs the simulation's choice and
fails if they drift apart.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from benchmarks.service_curve import ServiceCurve, load_curve

Provisioner = Literal["cluster-autoscaler", "karpenter"]
#: Name of the service's gauge the target applies to (service/metrics.py).
INFLIGHT_METRIC: Final = "inference_http_requests_in_flight"
#: The counter whose per-pod rate is the second trigger (service/metrics.py; Prometheus adds
#: ``_total`` to a counter's name).
RATE_METRIC: Final = "inference_http_requests_total"


def inflight_target(slo_p99_ms: float, curve: ServiceCurve | None = None) -> float:
    """In-flight requests per pod at which the measured p99 reaches ``slo_p99_ms``.

    Raises ValueError when the SLO is not a positive number, or is tighter than the p99 the
    benchmark measured at concurrency 1 (no replica count meets it). An SLO looser than the p99
    at the highest measured concurrency returns that concurrency: the curve is not extrapolated
    past what was measured.
    """
    if not math.isfinite(slo_p99_ms) or slo_p99_ms <= 0:
        raise ValueError(f"latency SLO {slo_p99_ms!r} ms must be a positive number of ms")
    curve = curve or load_curve()
    points = curve.points
    if slo_p99_ms < points[0].p99_ms:
        raise ValueError(
            f"latency SLO {slo_p99_ms} ms is below the p99 the benchmark measured at concurrency "
            f"{points[0].concurrency:g} ({points[0].p99_ms} ms): no number of pods meets it "
            f"(source: {curve.source})"
        )
    for low, high in itertools.pairwise(points):
        if slo_p99_ms <= high.p99_ms:
            if high.p99_ms == low.p99_ms:
                return high.concurrency
            share = (slo_p99_ms - low.p99_ms) / (high.p99_ms - low.p99_ms)
            return low.concurrency + share * (high.concurrency - low.concurrency)
    return points[-1].concurrency


def keda_target(slo_p99_ms: float, curve: ServiceCurve | None = None) -> int:
    """The ScaledObject's per-pod target: :func:`inflight_target` rounded down, at least 1."""
    return max(1, math.floor(inflight_target(slo_p99_ms, curve)))


def rate_target(slo_p99_ms: float, curve: ServiceCurve | None = None) -> int:
    """Answered requests per second per pod at the in-flight target: the second trigger.

    A batching server's in-flight count is far from proportional to its load (the benchmark:
    concurrency 8 at 567 req/s, 64 at 769 req/s), so an HPA acting on in-flight alone
    over-reacts in both directions and flaps between n and n+1 pods. The request rate is
    proportional to the load; as a second trigger (the HPA takes the larger recommendation) it
    holds the replica count while in-flight still reacts first to saturation.
    """
    curve = curve or load_curve()
    return math.floor(curve.throughput(keda_target(slo_p99_ms, curve)))


@dataclass(frozen=True)
class StackScaling:
    """How one stack scales: what ``make simulate`` favours for its traffic and constraints."""

    #: The simulation's name for the policy (keda-inflight, keda-zero, cpu-hpa, static).
    policy: str
    #: p99 latency SLO in ms; the in-flight target is derived from it.
    slo_p99_ms: float
    min_replicas: int
    max_replicas: int
    scale_to_zero: bool
    provisioner: Provisioner
    #: Karpenter's ``disruption.consolidateAfter`` / cluster-autoscaler's unneeded time, seconds.
    node_scale_down_after_s: int
    #: Why, in one line (the constraint the simulation applied).
    reason: str

    def inflight_target(self, curve: ServiceCurve | None = None) -> int:
        """The per-pod in-flight target for this stack's SLO."""
        return keda_target(self.slo_p99_ms, curve)


#: KEDA / HPA behaviour every stack uses (the simulation ran with exactly these).
SCALE_UP_PERCENT: Final = 100  # per SCALE_UP_PERIOD_S, or SCALE_UP_PODS, whichever is more
SCALE_UP_PODS: Final = 4
SCALE_UP_PERIOD_S: Final = 15
SCALE_DOWN_STABILIZATION_S: Final = 300
SCALE_DOWN_PODS: Final = 1  # per SCALE_DOWN_PERIOD_S
SCALE_DOWN_PERIOD_S: Final = 60
#: KEDA: how often it checks the activation trigger, and how long idle before scaling to zero.
KEDA_POLLING_INTERVAL_S: Final = 30
KEDA_COOLDOWN_PERIOD_S: Final = 300
KEDA_ACTIVATION_THRESHOLD: Final = 0
#: The second trigger: the batch queue's p99 wait may use this share of the SLO before scaling.
QUEUE_TIME_SHARE_OF_SLO: Final = 0.5

_BURST_REASON = "cheapest meeting the SLO, burst within {:.0%} slow requests"
_ZERO_REASON = "cheapest meeting the SLO, start from zero within 600 s"

#: What the simulation favours per environment (``make simulate`` fails if these drift from
#: its choice). Node scale-down: Karpenter ``consolidateAfter`` in seconds.
RECOMMENDED: Final[dict[str, StackScaling]] = {
    "prod": StackScaling(
        policy="keda-inflight-rate",
        slo_p99_ms=100.0,
        min_replicas=2,
        max_replicas=6,
        scale_to_zero=False,
        provisioner="karpenter",
        node_scale_down_after_s=300,
        reason=_BURST_REASON.format(0.03),
    ),
    "staging": StackScaling(
        policy="keda-inflight-rate",
        slo_p99_ms=100.0,
        min_replicas=1,
        max_replicas=3,
        scale_to_zero=False,
        provisioner="karpenter",
        node_scale_down_after_s=300,
        reason=_BURST_REASON.format(0.05),
    ),
    "dev": StackScaling(
        policy="keda-zero",
        slo_p99_ms=250.0,
        min_replicas=0,
        max_replicas=2,
        scale_to_zero=True,
        provisioner="karpenter",
        node_scale_down_after_s=300,
        reason=_ZERO_REASON,
    ),
    "pr": StackScaling(
        policy="keda-zero",
        slo_p99_ms=250.0,
        min_replicas=0,
        max_replicas=1,
        scale_to_zero=True,
        provisioner="karpenter",
        node_scale_down_after_s=300,
        reason=_ZERO_REASON,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the in-flight target for a latency SLO, with the curve it came from."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--slo-ms", type=float, required=True, help="p99 latency SLO in ms")
    args = parser.parse_args(argv)
    curve = load_curve()
    try:
        target = inflight_target(args.slo_ms, curve)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"p99 SLO {args.slo_ms:g} ms -> {target:.1f} in-flight requests per pod")
    print(f"KEDA target ({INFLIGHT_METRIC} per pod): {keda_target(args.slo_ms, curve)}")
    print(f"second trigger (rate of {RATE_METRIC} per pod): {rate_target(args.slo_ms, curve)}")
    print(f"source: {curve.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
