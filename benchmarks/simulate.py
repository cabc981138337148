"""``make simulate``: the scaling simulation's table, plot and per-stack choice.

    python -m benchmarks.simulate              # writes benchmarks/results.md + the SVG plot
    python -m benchmarks.simulate --no-write   # print the markdown only

It compares, on the three traces (diurnal, 10x burst, quiet night), pod autoscaling on CPU
(today's HorizontalPodAutoscaler; with the deployed 500m CPU request and with a 2-core one), on
in-flight requests (KEDA), KEDA with scale to zero, and no autoscaling, each with
cluster-autoscaler and with Karpenter; then applies the choice rule of
:mod:`benchmarks.scaling_choice` to each stack and checks it against
:data:`benchmarks.scaling_targets.RECOMMENDED`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from benchmarks import scaling_choice as choice
from benchmarks import scaling_targets as st
from benchmarks import sim_platform as plat
from benchmarks import sim_report_text as text
from benchmarks import simulation as sim
from benchmarks.report import write_section
from benchmarks.scaling_targets import RECOMMENDED, StackScaling, inflight_target, keda_target
from benchmarks.service_curve import ServiceCurve, load_curve
from benchmarks.sim_svg import Panel, Series, render
from benchmarks.sim_traces import Trace, standard_traces

SECTION: Final = "scaling-simulation"
PLOT: Final = Path(__file__).resolve().parent / "scaling_simulation.svg"
#: The comparison runs every policy with one SLO and the same bounds.
COMPARE_SLO_MS: Final = 100.0
COMPARE_MIN: Final = 1
COMPARE_MAX: Final = 6
TABLE_SLOS: Final = (25.0, 50.0, 100.0, 150.0, 200.0, 250.0)
PRICE_TYPE: Final = "g5.xlarge"
#: Per stack: its profile, the candidate the rule chose, and every candidate's outcome.
Chosen = dict[str, tuple[choice.StackProfile, choice.Outcome, list[choice.Outcome]]]


def comparison_policies(curve: ServiceCurve) -> list[sim.Policy]:
    """The policies of the comparison, with the comparison's bounds and SLO."""
    return choice.policy_set(COMPARE_SLO_MS, COMPARE_MIN, COMPARE_MAX, curve)


def run_comparison(curve: ServiceCurve, seed: int) -> list[sim.Result]:
    """Every comparison policy x provisioner on every standard trace."""
    results = []
    for trace in standard_traces().values():
        for provisioner in sim.PROVISIONERS:
            platform = choice.platform_for(provisioner, COMPARE_MAX)
            for policy in comparison_policies(curve):
                results.append(sim.simulate(curve, policy, platform, trace, COMPARE_SLO_MS, seed))
    return results


def _n(value: float) -> str:
    return f"{value:,.0f}"


def targets_table(curve: ServiceCurve) -> str:
    """SLO -> in-flight target, the derivation in one table."""
    lines = [
        "| p99 SLO | concurrency where p99 crosses it | KEDA target per pod "
        "| req/s per pod there |",
        "|---:|---:|---:|---:|",
    ]
    for slo in TABLE_SLOS:
        try:
            exact = inflight_target(slo, curve)
        except ValueError:
            lines.append(f"| {slo:g} ms | below the p99 at c=1: unattainable | - | - |")
            continue
        target = keda_target(slo, curve)
        lines.append(f"| {slo:g} ms | {exact:.1f} | {target} | {_n(curve.throughput(target))} |")
    return "\n".join(lines)


def comparison_table(results: Sequence[sim.Result]) -> str:
    """One row per trace x provisioner x policy."""
    price = plat.PRICES[PRICE_TYPE]
    lines = [
        "| trace | provisioner | policy | requests | slower than SLO | p99 ms | timed out | "
        "first request after zero | GPU node-hours | on-demand $ | spot $ |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        first = f"{r.first_request_wait_s:.0f} s" if r.cold_requests else "-"
        lines.append(
            f"| {r.trace} | {r.provisioner} | {r.policy} | {_n(r.requests)} | "
            f"{_n(r.slo_violations)} ({r.violation_share:.2%}) | {_n(r.p99_ms)} | "
            f"{_n(r.timed_out)} | {first} | {r.node_hours:.2f} | "
            f"{r.node_hours * price.on_demand_usd_h:.2f} | {r.node_hours * price.spot_usd_h:.2f} |"
        )
    return "\n".join(lines)


def stacks_table(chosen: Chosen) -> str:
    """The per-stack choice with the figures it rests on."""
    lines = [
        "| stack | SLO p99 | in-flight target | min-max replicas | policy | scale to zero | "
        "provisioner | everyday: slower than SLO | burst: slower than SLO | cost $ |",
        "|---|---:|---:|---|---|---|---|---:|---:|---:|",
    ]
    for name, (profile, outcome, _) in chosen.items():
        every, spike = outcome.everyday, outcome.burst
        burst_text = f"{spike.violation_share:.2%}" if spike else "-"
        every_text = f"{every.warm_violation_share():.2%}"
        if every.cold_requests:
            every_text += f" (+{_n(every.cold_requests)} met no pod)"
        lines.append(
            f"| {name} | {profile.slo_p99_ms:g} ms | {keda_target(profile.slo_p99_ms)} | "
            f"{outcome.policy.min_replicas}-{outcome.policy.max_replicas} | "
            f"{outcome.policy.name} | {'yes' if outcome.policy.scale_to_zero else 'no'} | "
            f"{outcome.provisioner} | {every_text} | {burst_text} | "
            f"{outcome.cost(profile):.2f} ({profile.capacity} {profile.instance_type}) |"
        )
    return "\n".join(lines)


def cold_start_text() -> str:
    """What the first request after zero pays, from its parts."""
    pull, start = plat.image_pull_s(), plat.cold_start_s()
    lines = []
    for name, node in (
        ("cluster-autoscaler", plat.CA_SCAN_INTERVAL_S / 2 + plat.CA_NODE_READY_S),
        ("Karpenter", plat.KARPENTER_BATCH_IDLE_S + plat.KARPENTER_NODE_READY_S),
    ):
        lines.append(
            f"- {name}: GPU node {node:.0f} s + image pull {pull:.0f} s "
            f"({plat.cuda_image_gb():.2f} GB at {plat.PULL_GB_PER_S * 1000:.0f} MB/s) + "
            f"container start to ready {start:.2f} s = **{node + pull + start:.0f} s**, plus up to "
            f"{st.KEDA_POLLING_INTERVAL_S} s for KEDA's activation poll and "
            f"{plat.SCRAPE_INTERVAL_S} s for the scrape that sees the first request."
        )
    return "\n".join(lines)


def prices_table() -> str:
    """The price table the costs use."""
    lines = ["| instance | GPU | on-demand $/h | spot $/h |", "|---|---|---:|---:|"]
    for p in plat.PRICES.values():
        lines.append(
            f"| {p.instance_type} | {p.gpu} | {p.on_demand_usd_h:.4g} | {p.spot_usd_h:.3f} |"
        )
    return "\n".join(lines)


def _pick(results: Sequence[sim.Result], trace: str, provisioner: str, policy: str) -> sim.Result:
    for r in results:
        if (r.trace, r.provisioner, r.policy) == (trace, provisioner, policy):
            return r
    raise KeyError((trace, provisioner, policy))


def plot(results: Sequence[sim.Result], curve: ServiceCurve) -> str:
    """Burst: offered load vs ready capacity; quiet night: GPU nodes, always-on vs to zero."""
    per_pod = curve.throughput(keda_target(COMPARE_SLO_MS, curve))
    first = _pick(results, "burst", "karpenter", "keda-inflight-rate")
    burst_series = [Series("offered req/s", [(t / 60, rate) for t, rate, _, _ in first.timeline])]
    for provisioner, policy in (
        ("karpenter", "keda-inflight-rate"),
        ("cluster-autoscaler", "keda-inflight-rate"),
        ("karpenter", "keda-inflight"),
        ("karpenter", "cpu-hpa"),
        ("karpenter", "cpu-hpa-2cpu"),
    ):
        r = _pick(results, "burst", provisioner, policy)
        burst_series.append(
            Series(
                f"{policy}, {provisioner}",
                [(t / 60, ready * per_pod) for t, _, ready, _ in r.timeline],
                dashed=provisioner == "cluster-autoscaler",
            )
        )
    night_series = []
    for provisioner, policy in (
        ("karpenter", "keda-inflight-rate"),
        ("karpenter", "keda-zero"),
        ("cluster-autoscaler", "keda-zero"),
    ):
        r = _pick(results, "quiet-night", provisioner, policy)
        night_series.append(
            Series(
                f"{policy}, {provisioner}",
                [(t / 3600, nodes) for t, _, _, nodes in r.timeline],
                dashed=provisioner == "cluster-autoscaler",
            )
        )
    return render(
        [
            Panel(
                f"10x burst: offered load vs ready pods x {per_pod:.0f} req/s (target load)",
                "minutes",
                "req/s",
                burst_series,
            ),
            Panel("Quiet night: GPU nodes held", "hours from 19:00", "nodes", night_series),
        ]
    )


def stack_choices(curve: ServiceCurve, seed: int) -> Chosen:
    """The choice rule applied to every stack's profile, with every candidate's outcome."""
    out = {}
    for name, profile in choice.profiles().items():
        outcomes = choice.evaluate(profile, curve, seed)
        out[name] = (profile, choice.choose(profile, outcomes), outcomes)
    return out


def sensitivity(chosen: Chosen, budget: float = 0.10) -> str:
    """How the choice moves if the burst budget is looser (the rule's one judgement call)."""
    lines = []
    for name, (profile, outcome, outcomes) in chosen.items():
        ca = [o for o in outcomes if o.provisioner == "cluster-autoscaler"]
        try:
            best_ca = choice.choose(dataclasses.replace(profile, burst_budget=1.0), ca)
            spike = best_ca.burst
            lines.append(
                f"- {name}, best with cluster-autoscaler: {best_ca.policy.name}, everyday "
                f"{best_ca.everyday.warm_violation_share():.2%} slower than the SLO"
                + (f", burst {spike.violation_share:.2%}" if spike else "")
                + (
                    f", first request after zero {best_ca.everyday.first_request_wait_s:.0f} s"
                    if best_ca.everyday.cold_requests
                    else ""
                )
                + f", cost {best_ca.cost(profile):.2f} $."
            )
        except ValueError as err:
            lines.append(f"- {name}, best with cluster-autoscaler: none ({err}).")
        if profile.burst is None:
            continue
        alt = choice.choose(dataclasses.replace(profile, burst_budget=budget), outcomes)
        same = (alt.policy.name, alt.provisioner) == (outcome.policy.name, outcome.provisioner)
        lines.append(
            f"- {name}: with {budget:.0%} of the burst allowed slower than the SLO instead of "
            f"{profile.burst_budget:.0%}, the rule picks {alt.policy.name} with {alt.provisioner}"
            + (" (unchanged)." if same else f" (cost {alt.cost(profile):.2f} $).")
        )
    return "\n".join(lines)


def drift(chosen: Chosen) -> list[str]:
    """Stacks whose RECOMMENDED defaults differ from the simulation's choice."""
    problems = []
    for name, (profile, outcome, _) in chosen.items():
        expected: StackScaling = choice.as_stack_scaling(profile, outcome)
        if RECOMMENDED.get(name) != expected:
            problems.append(
                f"{name}: RECOMMENDED has {RECOMMENDED.get(name)}, simulation favours {expected}"
            )
    return problems


def markdown(
    curve: ServiceCurve,
    results: Sequence[sim.Result],
    chosen: Chosen,
    seed: int,
    traces: dict[str, Trace],
) -> str:
    """The results.md section."""
    return text.section(
        curve=curve,
        seed=seed,
        traces=traces,
        targets=targets_table(curve),
        comparison=comparison_table(results),
        stacks=stacks_table(chosen) + "\n\n" + sensitivity(chosen),
        cold_start=cold_start_text(),
        prices=prices_table(),
        plot_name=PLOT.name,
        results=results,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and the per-stack choice; write the table and the plot."""
    parser = argparse.ArgumentParser(description="scaling simulation (see benchmarks/simulate.py)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the Poisson arrivals")
    parser.add_argument("--no-write", action="store_true", help="print, write nothing")
    args = parser.parse_args(argv)
    curve = load_curve()
    results = run_comparison(curve, args.seed)
    chosen = stack_choices(curve, args.seed)
    section = markdown(curve, results, chosen, args.seed, standard_traces())
    print(section)
    if not args.no_write:
        PLOT.write_text(plot(results, curve))
        write_section(SECTION, section)
        print(f"\nwrote {PLOT.name} and the {SECTION!r} section of results.md")
    problems = drift(chosen)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
