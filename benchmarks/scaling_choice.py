"""Which scaling setup the simulation favours for each stack, by a rule written down here.

Each stack has a profile: the traffic it sees (its everyday trace and, where it has one, a
burst), its latency SLO, its replica bounds, whether it may pay a start from zero, and what it
pays for GPU hours. Every candidate (a pod autoscaling policy x a node provisioner) is
simulated on those traces, and the rule picks:

1. **Meets the SLO on the everyday trace**: at most 1 % of requests slower than the SLO
   (requests that arrived while no pod was ready are left out where the stack accepts a start
   from zero, and that start must fit its ``cold_start_budget_s``).
2. Then, for stacks with a burst trace, **at most ``burst_budget`` of the burst's requests
   slower than the SLO**. No reactive autoscaler absorbs a tenfold jump whole: a new GPU node
   plus the image pull take minutes, so the budget is what the stack accepts while they come.
3. Then **the lowest cost** over all its traces (within 2 % count as equal).
4. Ties go to cluster-autoscaler (the default provisioner), then to the policy that follows
   load on the service's own signal (it stays right when the traffic grows), then the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from benchmarks import sim_platform as plat
from benchmarks import simulation as sim
from benchmarks.scaling_targets import StackScaling, keda_target, rate_target
from benchmarks.service_curve import ServiceCurve
from benchmarks.sim_traces import Trace, burst, diurnal, quiet_night

#: The largest share of requests slower than the SLO that still meets it (a p99 SLO).
SLO_SHARE: Final = 0.01
COST_TIE: Final = 0.02
#: Preference order for ties.
POLICY_ORDER: Final = (
    "keda-inflight-rate",
    "keda-inflight",
    "keda-zero",
    "cpu-hpa",
    "cpu-hpa-2cpu",
    "static",
)


@dataclass(frozen=True)
class StackProfile:
    """What a stack serves and what it may trade, as the choice rule reads it."""

    name: str
    slo_p99_ms: float
    min_replicas: int
    max_replicas: int
    everyday: Trace
    burst: Trace | None
    #: The largest share of the burst's requests that may be slower than the SLO.
    burst_budget: float
    capacity: plat.CapacityType
    instance_type: str
    #: The longest start from zero the stack accepts, seconds; None: it must never be at zero.
    cold_start_budget_s: float | None


def profiles() -> dict[str, StackProfile]:
    """The four environments' profiles (bounds as in infra/environments.py)."""
    night = quiet_night()
    return {
        p.name: p
        for p in (
            StackProfile(
                "prod", 100.0, 2, 6, diurnal(), burst(), 0.03, "on-demand", "g5.xlarge", None
            ),
            StackProfile(
                "staging",
                100.0,
                1,
                3,
                diurnal().scaled(0.5),
                burst().scaled(0.5),
                0.05,
                "spot",
                "g5.xlarge",
                None,
            ),
            StackProfile("dev", 250.0, 1, 2, night, None, 0.0, "spot", "g5.xlarge", 600.0),
            StackProfile(
                "pr", 250.0, 1, 1, night.scaled(0.5), None, 0.0, "spot", "g5.xlarge", 600.0
            ),
        )
    }


def candidates(profile: StackProfile, curve: ServiceCurve) -> list[sim.Policy]:
    """The policies compared for a stack: no scaling, CPU (two requests), in-flight, to zero."""
    lo, hi = profile.min_replicas, profile.max_replicas
    return policy_set(profile.slo_p99_ms, lo, hi, curve, profile.cold_start_budget_s is not None)


def policy_set(
    slo_p99_ms: float, lo: int, hi: int, curve: ServiceCurve, with_zero: bool = True
) -> list[sim.Policy]:
    """No scaling, CPU (two requests), in-flight, in-flight + rate, and (optionally) to zero."""
    target = keda_target(slo_p99_ms, curve)
    rate = rate_target(slo_p99_ms, curve)
    policies = [
        sim.Policy("static", "none", lo, hi),
        sim.Policy("cpu-hpa", "cpu", lo, hi, cpu_request_cores=0.5),
        sim.Policy("cpu-hpa-2cpu", "cpu", lo, hi, cpu_request_cores=2.0),
        sim.Policy("keda-inflight", "inflight", lo, hi, inflight_target=target),
        sim.Policy(
            "keda-inflight-rate", "inflight+rate", lo, hi, inflight_target=target, rate_target=rate
        ),
    ]
    if with_zero:
        policies.append(
            sim.Policy(
                "keda-zero",
                "inflight+rate",
                0,
                hi,
                scale_to_zero=True,
                inflight_target=target,
                rate_target=rate,
            )
        )
    return policies


def platform_for(provisioner: sim.ProvisionerName, max_nodes: int) -> sim.Platform:
    """Pod start and node figures from the benchmarks and the published sources."""
    return sim.Platform(
        provisioner=provisioner,
        image_pull_s=plat.image_pull_s(),
        container_start_s=plat.cold_start_s(),
        max_nodes=max_nodes,
    )


@dataclass(frozen=True)
class Outcome:
    """One candidate's results on a stack's traces."""

    policy: sim.Policy
    provisioner: sim.ProvisionerName
    everyday: sim.Result
    burst: sim.Result | None

    def cost(self, profile: StackProfile) -> float:
        """USD for all the stack's traces."""
        runs = [self.everyday] + ([self.burst] if self.burst else [])
        return sum(r.cost_usd(profile.instance_type, profile.capacity) for r in runs)

    def meets_slo(self, profile: StackProfile) -> bool:
        """Rule 1 (see the module docstring)."""
        run = self.everyday
        if profile.cold_start_budget_s is None:
            return run.cold_requests == 0 and run.violation_share <= SLO_SHARE
        return (
            run.warm_violation_share() <= SLO_SHARE
            and run.first_request_wait_s <= profile.cold_start_budget_s
        )


def evaluate(profile: StackProfile, curve: ServiceCurve, seed: int = 1) -> list[Outcome]:
    """Every candidate of ``profile`` simulated on its traces."""
    outcomes = []
    for provisioner in sim.PROVISIONERS:
        platform = platform_for(provisioner, profile.max_replicas)
        for policy in candidates(profile, curve):
            everyday = sim.simulate(
                curve, policy, platform, profile.everyday, profile.slo_p99_ms, seed
            )
            spike = (
                sim.simulate(curve, policy, platform, profile.burst, profile.slo_p99_ms, seed)
                if profile.burst
                else None
            )
            outcomes.append(Outcome(policy, provisioner, everyday, spike))
    return outcomes


def _within(best: float, tie: float) -> Callable[[float], bool]:
    return lambda value: value <= best * (1 + tie) + 1e-9


def choose(profile: StackProfile, outcomes: list[Outcome]) -> Outcome:
    """The candidate the rule favours (see the module docstring)."""
    pool = [o for o in outcomes if o.meets_slo(profile)]
    if not pool:
        raise ValueError(f"{profile.name}: no candidate meets the SLO on its everyday trace")
    if profile.burst is not None:
        pool = [o for o in pool if o.burst and o.burst.violation_share <= profile.burst_budget]
        if not pool:
            raise ValueError(
                f"{profile.name}: no candidate keeps the burst within "
                f"{profile.burst_budget:.0%} SLO-violating requests"
            )
    cheap = _within(min(o.cost(profile) for o in pool), COST_TIE)
    pool = [o for o in pool if cheap(o.cost(profile))]
    return min(
        pool,
        key=lambda o: (
            sim.PROVISIONERS.index(o.provisioner),
            POLICY_ORDER.index(o.policy.name),
        ),
    )


def as_stack_scaling(profile: StackProfile, chosen: Outcome) -> StackScaling:
    """The chosen candidate as the per-stack defaults it stands for."""
    karpenter = chosen.provisioner == "karpenter"
    reason = (
        f"cheapest meeting the SLO, burst within {profile.burst_budget:.0%} slow requests"
        if profile.burst
        else f"cheapest meeting the SLO, start from zero within {profile.cold_start_budget_s:g} s"
    )
    return StackScaling(
        policy=chosen.policy.name,
        slo_p99_ms=profile.slo_p99_ms,
        min_replicas=chosen.policy.min_replicas,
        max_replicas=chosen.policy.max_replicas,
        scale_to_zero=chosen.policy.scale_to_zero,
        provisioner=chosen.provisioner,
        node_scale_down_after_s=(
            plat.KARPENTER_CONSOLIDATE_AFTER_S if karpenter else plat.CA_SCALE_DOWN_UNNEEDED_S
        ),
        reason=reason,
    )
