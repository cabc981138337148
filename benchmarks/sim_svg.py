"""A small SVG line chart writer (matplotlib is not among the project's dependencies).

Enough for the scaling simulation's plot: stacked panels, each with a title, axes with a few
ticks, and line series with a legend. Output is plain SVG 1.1 text, deterministic for the same
input, so the committed plot only changes when the figures do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import escape

WIDTH: Final = 900
PANEL_HEIGHT: Final = 260
MARGIN_LEFT: Final = 70
MARGIN_RIGHT: Final = 190
MARGIN_TOP: Final = 34
MARGIN_BOTTOM: Final = 40
COLOURS: Final = ("#444444", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd")


@dataclass(frozen=True)
class Series:
    """One line: a label and its (x, y) points."""

    label: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


@dataclass(frozen=True)
class Panel:
    """One chart: title, axis labels and its series."""

    title: str
    x_label: str
    y_label: str
    series: Sequence[Series]


def _ticks(top: float, count: int = 4) -> list[float]:
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(top / step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:g}"


def _panel(panel: Panel, top_y: float) -> list[str]:
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    xs = [x for s in panel.series for x, _ in s.points] or [0.0, 1.0]
    ys = [y for s in panel.series for _, y in s.points] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_ticks = _ticks(max(ys) * 1.05 or 1.0)
    y1 = max(y_ticks[-1], max(ys)) or 1.0
    left, base = MARGIN_LEFT, top_y + MARGIN_TOP + plot_h

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return base - y / y1 * plot_h

    out = [
        f'<text x="{left}" y="{top_y + 20}" font-size="14" font-weight="bold">'
        f"{escape(panel.title)}</text>",
        f'<rect x="{left}" y="{top_y + MARGIN_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#999"/>',
    ]
    for tick in y_ticks:
        out.append(
            f'<line x1="{left - 4}" y1="{py(tick):.1f}" x2="{left + plot_w}" y2="{py(tick):.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{left - 8}" y="{py(tick) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{_fmt(tick)}</text>"
        )
    for tick in _ticks(x1 - x0, 6):
        x = x0 + tick
        out.append(
            f'<text x="{px(x):.1f}" y="{base + 16}" font-size="11" text-anchor="middle">'
            f"{_fmt(x)}</text>"
        )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{base + 34}" font-size="12" text-anchor="middle">'
        f"{escape(panel.x_label)}</text>"
        f'<text x="16" y="{top_y + MARGIN_TOP + plot_h / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {top_y + MARGIN_TOP + plot_h / 2})">'
        f"{escape(panel.y_label)}</text>"
    )
    for i, series in enumerate(panel.series):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if series.dashed else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in series.points)
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{path}"/>'
        )
        ly = top_y + MARGIN_TOP + 14 + i * 18
        lx = left + plot_w + 12
        out.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 22}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="2"{dash}/>'
            f'<text x="{lx + 28}" y="{ly}" font-size="11">{escape(series.label)}</text>'
        )
    return out


def render(panels: Sequence[Panel]) -> str:
    """The SVG document with ``panels`` stacked top to bottom."""
    height = PANEL_HEIGHT * len(panels)
    body = [line for i, p in enumerate(panels) for line in _panel(p, i * PANEL_HEIGHT)]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">\n'
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    )
