"""The scaling simulation: behaviours a user of each policy would hit, on short traces."""

from __future__ import annotations

import dataclasses
import statistics

import pytest

from benchmarks import scaling_choice as choice
from benchmarks import sim_platform as plat
from benchmarks import simulation as sim
from benchmarks.scaling_targets import keda_target, rate_target
from benchmarks.service_curve import load_curve
from benchmarks.sim_traces import HOUR, Trace, burst, quiet_night

CURVE = load_curve()
SLO = 100.0
POLICIES = {p.name: p for p in choice.policy_set(SLO, 1, 6, CURVE)}


def run(policy: str, trace: Trace, provisioner: sim.ProvisionerName = "karpenter") -> sim.Result:
    platform = choice.platform_for(provisioner, 6)
    return sim.simulate(CURVE, POLICIES[policy], platform, trace, SLO, seed=7)


def ramp(start_rps: float, end_rps: float, hours: float) -> Trace:
    """A slow linear ramp: the load a diurnal afternoon puts on two or three pods."""
    seconds = int(hours * HOUR)

    def rate(t: float) -> float:
        return start_rps + (end_rps - start_rps) * t / seconds

    return Trace("ramp", seconds, rate, "test ramp")


def test_same_seed_same_result_other_seed_other_arrivals() -> None:
    trace = burst()
    a, b = run("keda-inflight-rate", trace), run("keda-inflight-rate", trace)
    assert dataclasses.asdict(a) == dataclasses.asdict(b)
    rates = trace.rates()
    assert sim.poisson_arrivals(rates, 1) == sim.poisson_arrivals(rates, 1)
    assert sim.poisson_arrivals(rates, 1) != sim.poisson_arrivals(rates, 2)


@pytest.mark.parametrize("lam", [0.2, 3.0, 40.0, 900.0])
def test_poisson_arrivals_have_the_trace_rate(lam: float) -> None:
    draws = sim.poisson_arrivals([lam] * 20_000, seed=3)
    assert statistics.fmean(draws) == pytest.approx(lam, rel=0.05)
    assert statistics.pvariance(draws) == pytest.approx(lam, rel=0.1)


def test_a_policy_that_ignores_load_violates_the_slo_on_a_burst() -> None:
    trace = burst()
    static, blind_cpu = run("static", trace), run("cpu-hpa-2cpu", trace)
    following = run("keda-inflight-rate", trace)
    # One pod serves ~770 req/s; the burst offers 1,500 for 20 minutes.
    assert static.violation_share > 0.3
    assert static.timed_out > 0
    # CPU at a 2-core request never reaches 70 %: it is as blind as no autoscaling.
    assert blind_cpu.peak_replicas == 1
    assert blind_cpu.slo_violations == pytest.approx(static.slo_violations)
    assert following.peak_replicas >= 2
    assert following.slo_violations < static.slo_violations / 3


def test_karpenter_answers_a_burst_sooner_than_cluster_autoscaler() -> None:
    trace = burst()
    fast, slow = (
        run("keda-inflight-rate", trace),
        run("keda-inflight-rate", trace, "cluster-autoscaler"),
    )
    assert fast.slo_violations < slow.slo_violations


def test_scale_to_zero_saves_node_hours_on_a_quiet_night_and_the_first_request_pays() -> None:
    night = quiet_night()
    always_on, to_zero = run("keda-inflight-rate", night), run("keda-zero", night)
    assert always_on.node_hours == pytest.approx(12.0)  # one node all night
    assert to_zero.node_hours < always_on.node_hours / 2
    assert always_on.first_request_wait_s == 0
    assert always_on.cold_requests == 0
    # The first request after zero waits for a node, the image pull and the container start.
    floor = plat.KARPENTER_NODE_READY_S + plat.image_pull_s() + plat.cold_start_s()
    assert to_zero.cold_requests > 0
    assert floor <= to_zero.first_request_wait_s <= floor + 60
    slow = run("keda-zero", night, "cluster-autoscaler")
    assert slow.first_request_wait_s > to_zero.first_request_wait_s + 120


def test_in_flight_alone_flaps_on_a_batching_pod_and_the_rate_trigger_steadies_it() -> None:
    trace = ramp(1100, 1500, 3)
    inflight, steady = run("keda-inflight", trace), run("keda-inflight-rate", trace)
    assert inflight.replica_changes > 4 * steady.replica_changes
    assert steady.violation_share <= 0.01


def test_cpu_scaling_with_the_deployed_request_overprovisions() -> None:
    trace = ramp(300, 1200, 2)
    cpu, steady = run("cpu-hpa", trace), run("keda-inflight-rate", trace)
    assert cpu.node_hours > steady.node_hours * 1.3
    assert steady.violation_share <= 0.01


def test_nodes_are_billed_from_launch_to_the_end_of_the_trace() -> None:
    quiet = Trace("idle", 600, lambda t: 0.0, "idle")
    result = run("static", quiet)
    assert result.node_seconds == 600  # the pre-existing node, the whole trace
    assert result.cost_usd("g5.xlarge", "on-demand") == pytest.approx(600 / 3600 * 1.006)


def test_bad_policies_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="min_replicas 0 needs scale_to_zero"):
        sim.Policy("x", "inflight", 0, 3, inflight_target=10)
    with pytest.raises(ValueError, match="needs a target"):
        sim.Policy("x", "inflight", 1, 3)
    with pytest.raises(ValueError, match="request-rate trigger"):
        sim.Policy("x", "inflight+rate", 1, 3, inflight_target=keda_target(SLO, CURVE))
    with pytest.raises(ValueError, match="max_replicas"):
        sim.Policy("x", "none", 3, 2)
    assert rate_target(SLO, CURVE) > 0
