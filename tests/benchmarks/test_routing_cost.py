"""The routing-cost benchmark runs every variant for real (no timing is asserted)."""

from __future__ import annotations

import asyncio

from benchmarks import routing_cost


def test_every_variant_answers_and_lands_in_the_table() -> None:
    # _send raises on any status but 200, so a variant that stopped working fails here.
    best = asyncio.run(routing_cost.measure(routing_cost.ROUNDS * 5))
    assert set(best) == set(routing_cost.variants())
    assert all(0 < us < float("inf") for us in best.values())
    table = routing_cost.table(best)
    assert table.count("\n") == len(best) + 1
    assert "| include_router |" in table
