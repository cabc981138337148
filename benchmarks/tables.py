"""Markdown tables of the service benchmark and the check of its targets.

The targets: the compute-heavy model served at >= 0.9 x the bare forward pass at saturation;
>= 1.2 x LitServe's throughput and >= 1.5 x a minimal FastAPI + asyncio.Queue batcher's at
concurrency 64; per-request server CPU <= 2 x the HTTP floor's; p99 with batching no worse than
with batching off at concurrency 8 and 64; and a median latency at concurrency 1 within 0.5 ms
of the model's own batch-1 forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from benchmarks.stats import CeilingFigures, Cell, ceiling_ratio

CEILING_TARGET: Final = 0.9
PEER_TARGET: Final = 1.2
MINIMAL_PEER_TARGET: Final = 1.5
FLOOR_CPU_TARGET: Final = 2.0
TAIL_TARGET: Final = 1.0
TAIL_CONCURRENCIES: Final = (8, 64)
LATENCY_SLACK_MS: Final = 0.5
SATURATION: Final = 64
#: Server names as the tables show them.
OURS: Final = "ours"
OURS_UNBATCHED: Final = "ours, batching off"
LITSERVE: Final = "LitServe"
MINIMAL_BATCHER: Final = "minimal FastAPI + asyncio.Queue batcher"
MINIMAL_UNBATCHED: Final = "minimal FastAPI, unbatched"
FLOOR: Final = "HTTP floor (no model)"


@dataclass(frozen=True)
class TargetCheck:
    """One target, what was measured against it and whether it was met."""

    name: str
    model: str
    measured: str
    goal: str
    met: bool | None  # None: not measured in this run
    #: Measured facts that bear on the result (batching, CPU use, the floor), for the reader.
    evidence: str = ""


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ceiling_table(
    ceilings: dict[str, dict[int, CeilingFigures]],
    threads: int,
    crowded: dict[str, CeilingFigures] | None = None,
) -> str:
    """The bare forward pass of every model at every batch size, alone and next to a busy core."""
    lines = [
        "| model | batch | forward ms (median) | rows/s (median) | range of repeats "
        "| torch threads |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model, by_batch in ceilings.items():
        for batch, figures in sorted(by_batch.items()):
            low, high = min(figures.rows_per_s), max(figures.rows_per_s)
            lines.append(
                f"| {model} | {batch} | {figures.forward_ms:.2f} | {figures.throughput:,.0f} "
                f"| {low:,.0f}-{high:,.0f} | {threads} |"
            )
        busy = (crowded or {}).get(model)
        if busy is not None:
            low, high = min(busy.rows_per_s), max(busy.rows_per_s)
            lines.append(
                f"| {model} | {busy.batch}, other core running a Python loop "
                f"| {busy.forward_ms:.2f} | {busy.throughput:,.0f} "
                f"| {low:,.0f}-{high:,.0f} | {threads} |"
            )
    return "\n".join(lines)


def cell_table(cells: Sequence[Cell], ceilings: dict[str, dict[int, CeilingFigures]]) -> str:
    """One row per cell: throughput with its range, latency, ratio to the ceiling, CPU use."""
    lines = [
        "| model | server | route | max batch | c | req/s (median) | range | p50 ms | p99 ms "
        "| x ceiling | mean batch | batch ms | model busy | server cores | CPU ms/req "
        "| other cores | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        low, high = cell.throughput_range
        # The floor runs no model: no ceiling to compare it with.
        ratio = None if cell.server == FLOOR else ceiling_ratio(cell, ceilings.get(cell.model, {}))
        metrics = cell.metrics
        lines.append(
            f"| {cell.model} | {cell.server} | {cell.route} | {cell.max_batch_size} "
            f"| {cell.concurrency} | {cell.throughput:,.0f} | {low:,.0f}-{high:,.0f} "
            f"| {cell.p50_ms:.2f} | {cell.p99_ms:.2f} "
            f"| {'n/a' if ratio is None else f'{ratio:.2f} (b{cell.ceiling_batch})'} "
            f"| {_num(metrics.mean_batch if metrics else None)} "
            f"| {_num(metrics.batch_ms if metrics else None, 2)} "
            f"| {'n/a' if metrics is None else f'{metrics.model_busy:.0%}'} "
            f"| {_num(cell.server_cores, 2)} | {_num(cell.cpu_ms_per_request, 2)} "
            f"| {_num(cell.other_cores, 2)} | {cell.errors} |"
        )
    return "\n".join(lines)


def _find(cells: Sequence[Cell], model: str, server: str, concurrency: int) -> Cell | None:
    for cell in cells:
        if (
            cell.model == model
            and cell.server == server
            and cell.route == "predict"
            and cell.concurrency == concurrency
        ):
            return cell
    return None


def _cpu_facts(cell: Cell) -> str:
    facts = [f"{cell.server} used {_num(cell.server_cores, 2)} cores"]
    facts.append(f"{_num(cell.cpu_ms_per_request, 2)} ms CPU per request")
    if cell.metrics is not None:
        facts.append(
            f"ran batches of {cell.metrics.mean_batch:.1f} rows on average, "
            f"{cell.metrics.batch_ms:.1f} ms each, with the model busy "
            f"{cell.metrics.model_busy:.0%} of the time"
        )
    facts.append(f"other processes used {_num(cell.other_cores, 2)} cores")
    return ", ".join(facts)


def check_targets(
    cells: Sequence[Cell],
    ceilings: dict[str, dict[int, CeilingFigures]],
    heavy_model: str,
    crowded: dict[str, CeilingFigures] | None = None,
) -> list[TargetCheck]:
    """Evaluate the three targets of the issue for every model measured."""
    checks: list[TargetCheck] = []
    saturated = _find(cells, heavy_model, OURS, SATURATION)
    if saturated is not None:
        ratio = ceiling_ratio(saturated, ceilings.get(heavy_model, {}))
        evidence = f"at c={SATURATION} {_cpu_facts(saturated)}"
        alone = ceilings.get(heavy_model, {}).get(saturated.ceiling_batch)
        busy = (crowded or {}).get(heavy_model)
        if alone is not None and busy is not None and busy.batch == alone.batch:
            evidence += (
                f"; the bare forward of batch {alone.batch} took {alone.forward_ms:.1f} ms alone "
                f"and {busy.forward_ms:.1f} ms while a Python loop kept the other core busy "
                f"({busy.throughput / alone.throughput:.2f} x the throughput), as the event "
                "loop does under load"
            )
        checks.append(
            TargetCheck(
                f"throughput at c={SATURATION} vs bare forward (batch {saturated.ceiling_batch})",
                heavy_model,
                _num(ratio, 2) + " x",
                f">= {CEILING_TARGET} x",
                None if ratio is None else ratio >= CEILING_TARGET,
                evidence,
            )
        )
    for model in dict.fromkeys(cell.model for cell in cells):
        ours = _find(cells, model, OURS, SATURATION)
        peer = _find(cells, model, LITSERVE, SATURATION)
        if ours is not None and peer is not None and peer.throughput > 0:
            ratio = ours.throughput / peer.throughput
            checks.append(
                TargetCheck(
                    f"throughput at c={SATURATION} vs LitServe",
                    model,
                    f"{ratio:.2f} x ({ours.throughput:,.0f} vs {peer.throughput:,.0f} req/s)",
                    f">= {PEER_TARGET} x",
                    ratio >= PEER_TARGET,
                    f"{_cpu_facts(ours)}; {_cpu_facts(peer)}",
                )
            )
        lone = _find(cells, model, OURS, 1)
        forward = ceilings.get(model, {}).get(1)
        if lone is not None and forward is not None:
            budget = forward.forward_ms + LATENCY_SLACK_MS
            floor = next((c for c in cells if c.server == FLOOR and c.concurrency == 1), None)
            unbatched = _find(cells, model, OURS_UNBATCHED, 1)
            facts = [f"serving added {lone.p50_ms - forward.forward_ms:.2f} ms to the forward pass"]
            if unbatched is not None:
                facts.append(f"with batching off p50 was {unbatched.p50_ms:.2f} ms")
            if floor is not None:
                facts.append(f"the HTTP floor's p50 was {floor.p50_ms:.2f} ms")
            facts.append(f"other processes used {_num(lone.other_cores, 2)} cores")
            checks.append(
                TargetCheck(
                    f"p50 at c=1 vs batch-1 forward + {LATENCY_SLACK_MS:g} ms",
                    model,
                    f"{lone.p50_ms:.2f} ms (forward {forward.forward_ms:.2f} ms)",
                    f"<= {budget:.2f} ms",
                    lone.p50_ms <= budget,
                    ", ".join(facts),
                )
            )
        checks += _serving_cost_checks(cells, model)
    return checks


def _serving_cost_checks(cells: Sequence[Cell], model: str) -> list[TargetCheck]:
    """Against the minimal peer, the HTTP floor, and our own server with batching off."""
    checks: list[TargetCheck] = []
    ours = _find(cells, model, OURS, SATURATION)
    minimal = _find(cells, model, MINIMAL_BATCHER, SATURATION)
    if ours is not None and minimal is not None and minimal.throughput > 0:
        ratio = ours.throughput / minimal.throughput
        checks.append(
            TargetCheck(
                f"throughput at c={SATURATION} vs minimal asyncio.Queue batcher",
                model,
                f"{ratio:.2f} x ({ours.throughput:,.0f} vs {minimal.throughput:,.0f} req/s)",
                f">= {MINIMAL_PEER_TARGET} x",
                ratio >= MINIMAL_PEER_TARGET,
                f"{_cpu_facts(ours)}; {_cpu_facts(minimal)}",
            )
        )
    floor = next((c for c in cells if c.server == FLOOR and c.concurrency == SATURATION), None)
    if ours is not None and floor is not None:
        mine, base = ours.cpu_ms_per_request, floor.cpu_ms_per_request
        if mine is not None and base:
            checks.append(
                TargetCheck(
                    f"server CPU per request at c={SATURATION} vs HTTP floor",
                    model,
                    f"{mine / base:.2f} x ({mine:.2f} vs {base:.2f} ms)",
                    f"<= {FLOOR_CPU_TARGET} x",
                    mine / base <= FLOOR_CPU_TARGET,
                )
            )
    for concurrency in TAIL_CONCURRENCIES:
        batched = _find(cells, model, OURS, concurrency)
        unbatched = _find(cells, model, OURS_UNBATCHED, concurrency)
        if batched is not None and unbatched is not None and unbatched.p99_ms > 0:
            ratio = batched.p99_ms / unbatched.p99_ms
            checks.append(
                TargetCheck(
                    f"p99 with batching vs without at c={concurrency}",
                    model,
                    f"{ratio:.2f} x ({batched.p99_ms:.1f} vs {unbatched.p99_ms:.1f} ms)",
                    f"<= {TAIL_TARGET} x",
                    ratio <= TAIL_TARGET,
                )
            )
    return checks


def targets_table(checks: Sequence[TargetCheck]) -> str:
    """The targets as a markdown table."""
    verdict = {True: "met", False: "**missed**", None: "not measured"}
    lines = ["| target | model | measured | goal | result |", "|---|---|---|---|---|"]
    lines += [
        f"| {c.name} | {c.model} | {c.measured} | {c.goal} | {verdict[c.met]} |" for c in checks
    ]
    evidence = [f"- {c.model}, {c.name}: {c.evidence}." for c in checks if c.evidence]
    if evidence:
        lines += ["", "Measured alongside each target:", "", *evidence]
    return "\n".join(lines)
