"""The prose of the scaling simulation's results section, with its figures filled in."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks import scaling_targets as st
from benchmarks import sim_platform as plat
from benchmarks import simulation as sim
from benchmarks.service_curve import ServiceCurve
from benchmarks.sim_traces import Trace


def _get(results: Sequence[sim.Result], trace: str, prov: str, policy: str) -> sim.Result:
    for r in results:
        if (r.trace, r.provisioner, r.policy) == (trace, prov, policy):
            return r
    raise KeyError((trace, prov, policy))


def reading(results: Sequence[sim.Result]) -> str:
    """What the comparison shows, each point with the figures from this run."""
    k, ca = "karpenter", "cluster-autoscaler"
    d_cpu = _get(results, "diurnal", k, "cpu-hpa")
    d_cpu2 = _get(results, "diurnal", k, "cpu-hpa-2cpu")
    d_in = _get(results, "diurnal", k, "keda-inflight")
    d_best = _get(results, "diurnal", k, "keda-inflight-rate")
    b_best_k = _get(results, "burst", k, "keda-inflight-rate")
    b_best_ca = _get(results, "burst", ca, "keda-inflight-rate")
    b_cpu2, b_static = (
        _get(results, "burst", k, "cpu-hpa-2cpu"),
        _get(results, "burst", k, "static"),
    )
    n_on = _get(results, "quiet-night", k, "keda-inflight-rate")
    n_zero_k = _get(results, "quiet-night", k, "keda-zero")
    n_zero_ca = _get(results, "quiet-night", ca, "keda-zero")
    more = d_cpu.node_hours / d_best.node_hours - 1
    cpu_text = (
        "- **CPU is the wrong signal, in both directions.** With the deployed 500m CPU request "
        "and a 70 % target, the HPA adds a pod long before the GPU is busy: on the diurnal day "
        f"it held {d_cpu.node_hours:.1f} GPU node-hours against {d_best.node_hours:.1f} for "
        f"in-flight + rate scaling ({more:.0%} more) for a p99 of {d_cpu.p99_ms:.0f} ms where "
        f"{d_best.p99_ms:.0f} ms was within the SLO. With a 2-core request the same HPA never "
        "scales: a saturated pod's serving path uses well under 70 % of 2 cores, so "
        f"{d_cpu2.violation_share:.0%} of the day's requests and {b_cpu2.violation_share:.0%} "
        "of the burst's were slower than the SLO, like no autoscaling at all "
        f"({b_static.violation_share:.0%})."
    )
    flap_text = (
        "- **In-flight alone flaps; in-flight plus request rate does not.** A batching pod's "
        "in-flight count is far from proportional to its load (8 at 567 req/s, 64 at 769 req/s "
        "in the benchmark), so the HPA's proportional rule over-reacts both ways: on the "
        f"diurnal day in-flight alone changed the replica count {d_in.replica_changes} times, "
        f"held {d_in.node_hours:.1f} node-hours and left {d_in.violation_share:.2%} of requests "
        "slower than the SLO. Adding the request rate per pod as a second trigger (target: the "
        "rate at the in-flight target; the HPA takes the larger recommendation) made it "
        f"{d_best.replica_changes} changes, {d_best.node_hours:.1f} node-hours and "
        f"{d_best.violation_share:.2%}: the lowest cost of the policies that met the SLO."
    )
    burst_text = (
        "- **A tenfold burst costs what a new GPU node costs.** No reactive policy absorbs it "
        f"whole: {b_best_k.violation_share:.1%} of the burst's requests were slower than the "
        f"SLO with Karpenter and {b_best_ca.violation_share:.1%} with cluster-autoscaler, the "
        f"difference being the node's start ({plat.KARPENTER_NODE_READY_S} s vs "
        f"{plat.CA_NODE_READY_S} s) plus the {plat.image_pull_s():.0f} s image pull both pay. "
        "Headroom (a higher minimum) or a smaller image are the levers, not the signal."
    )
    zero_text = (
        "- **Scale to zero pays on a quiet night, and the first request pays for it.** "
        f"{n_zero_k.node_hours:.1f} node-hours with Karpenter and {n_zero_ca.node_hours:.1f} "
        f"with cluster-autoscaler against {n_on.node_hours:.1f} for one pod always on; the first "
        f"request after zero waited {n_zero_k.first_request_wait_s:.0f} s (Karpenter) and "
        f"{n_zero_ca.first_request_wait_s:.0f} s (cluster-autoscaler) for a pod, so a client "
        f"with a {sim.CLIENT_TIMEOUT_S} s timeout gives up ({n_zero_k.timed_out:,.0f} requests "
        "timed out with Karpenter) and must retry."
    )
    return "\n".join([cpu_text, flap_text, burst_text, zero_text])


def section(
    *,
    curve: ServiceCurve,
    seed: int,
    traces: dict[str, Trace],
    targets: str,
    comparison: str,
    stacks: str,
    cold_start: str,
    prices: str,
    plot_name: str,
    results: Sequence[sim.Result],
) -> str:
    """The whole ``scaling-simulation`` section of results.md."""
    trace_lines = "\n".join(f"  - `{t.name}`: {t.description}" for t in traces.values())
    return f"""## Scaling simulation

Written by `make simulate` (`python -m benchmarks.simulate`, seed {seed}; pure Python, about a
minute on this machine). The model and every figure's source are in `benchmarks/simulation.py`,
`benchmarks/sim_platform.py` and `benchmarks/service_curve.py`; the choice rule per stack in
`benchmarks/scaling_choice.py`.

- **One pod** serves like the benchmarked pod: {curve.source}. Requests per pod settle at the
  concurrency where its measured throughput equals the offered rate, with that concurrency's
  measured p50/p99; past saturation ({curve.max_throughput_rps:,.0f} req/s) requests queue.
- **Traces** (Poisson arrivals, the same draw for every policy):
{trace_lines}
- **Policies**: `static` (no autoscaling); `cpu-hpa` (HPA on CPU, 500m request, 70 %: today's
  `infra/components/workload.py`); `cpu-hpa-2cpu` (the same with a 2-core request);
  `keda-inflight` (KEDA on
  `inference_http_requests_in_flight` per pod, target from the SLO below); `keda-inflight-rate`
  (the same plus the per-pod rate of `inference_http_requests_total` as a second trigger);
  `keda-zero` (`keda-inflight-rate` with minReplicaCount 0, activation on any request, cooldown
  {st.KEDA_COOLDOWN_PERIOD_S} s). All use the same HPA behaviour (up: 100 % or 4 pods per
  15 s; down: {st.SCALE_DOWN_STABILIZATION_S} s stabilisation, 1 pod per minute). Bounds
  1-6 replicas (0-6 to zero), one GPU per node, p99 SLO 100 ms, client timeout
  {sim.CLIENT_TIMEOUT_S} s.
- **Costs**: GPU node-hours billed per second from launch to removal (60 s minimum), at the
  {", ".join(plat.PRICES)} prices below (on-demand {plat.PRICES_AS_OF}; spot a snapshot).

### The in-flight target per pod, from the benchmark

The concurrency at which the measured p99 crosses the SLO, rounded down
(`benchmarks/scaling_targets.py`; `python -m benchmarks.scaling_targets --slo-ms 100`):

{targets}

### Policies compared

![scaling simulation: burst and quiet night]({plot_name})

{comparison}

Reading:

{reading(results)}

### What the first request after zero costs

{cold_start}

### Defaults per stack (what the simulation favours)

Each stack's own traffic and bounds, chosen by the rule in `benchmarks/scaling_choice.py`
(meet the SLO on the everyday trace; keep the burst within its budget, 3 % prod, 5 % staging;
then the cheapest; ties to cluster-autoscaler, then to in-flight scaling). prod's minimum of 2
is its availability floor, not the simulation's; dev and pr run the quiet night (outside
working hours; dev keeps a working-hours floor through a cron trigger) and accept a start from
zero within 600 s. These are `RECOMMENDED` in `benchmarks/scaling_targets.py`, and
`make simulate` fails if the two differ.

{stacks}

### Prices used

{prices}
"""
