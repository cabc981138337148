"""The pieces of the scaling simulation's report: the target table and the SVG plot."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from benchmarks import simulate
from benchmarks.service_curve import load_curve
from benchmarks.sim_svg import Panel, Series, render


def test_target_table_says_which_slos_are_unattainable() -> None:
    table = simulate.targets_table(load_curve())
    assert "| 100 ms | 28.6 | 28 | 639 |" in table
    assert "unattainable" not in table  # every listed SLO is above the p99 at concurrency 1


def test_svg_is_well_formed_and_draws_every_series() -> None:
    svg = render(
        [
            Panel("a & b", "minutes", "req/s", [Series("x<1", [(0, 0), (1, 5)]), Series("y", [])]),
            Panel("c", "hours", "nodes", [Series("z", [(0, 1), (2, 3)], dashed=True)]),
        ]
    )
    root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 3
    assert "a &amp; b" in svg
    assert "x&lt;1" in svg
    assert render([Panel("c", "h", "n", [Series("z", [(0, 1), (2, 3)])])]) == render(
        [Panel("c", "h", "n", [Series("z", [(0, 1), (2, 3)])])]
    )
