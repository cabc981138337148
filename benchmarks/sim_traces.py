"""Load traces the scaling simulation replays: requests per second, one value per second.

Each trace is a deterministic rate curve; the simulation draws Poisson arrivals from it with a
seeded generator, so one (trace, seed) pair is the same sequence of arrivals for every policy.

- ``diurnal``: 24 h, a cosine between a night trough at 04:00 and an afternoon peak at 16:00.
- ``burst``: 2 h at a steady rate with 20 minutes at ten times that rate.
- ``quiet-night``: 12 h (19:00-07:00) with no traffic but three short sessions: someone trying
  the service in the evening, one lone probe at 02:00 and the morning ramp from 06:30.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

HOUR: Final = 3600


@dataclass(frozen=True)
class Trace:
    """A named load curve: ``rate(t)`` requests per second for ``t`` in [0, duration_s)."""

    name: str
    duration_s: int
    rate: Callable[[float], float]
    description: str

    def scaled(self, factor: float) -> Trace:
        """The same shape at ``factor`` times the rate (a smaller stack's share of traffic)."""
        if factor <= 0:
            raise ValueError(f"scale factor {factor} must be positive")
        base = self.rate
        return Trace(
            name=self.name if factor == 1 else f"{self.name} x{factor:g}",
            duration_s=self.duration_s,
            rate=lambda t: base(t) * factor,
            description=self.description,
        )

    def rates(self) -> list[float]:
        """The rate at the middle of every second of the trace."""
        return [max(0.0, self.rate(t + 0.5)) for t in range(self.duration_s)]


def diurnal(trough_rps: float = 40.0, peak_rps: float = 1600.0) -> Trace:
    """24 h: ``trough_rps`` at 04:00 rising along a cosine to ``peak_rps`` at 16:00."""

    def rate(t: float) -> float:
        phase = 2 * math.pi * (t - 4 * HOUR) / (24 * HOUR)
        return trough_rps + (peak_rps - trough_rps) * (1 - math.cos(phase)) / 2

    return Trace(
        "diurnal",
        24 * HOUR,
        rate,
        f"24 h, {trough_rps:g} req/s at 04:00 to {peak_rps:g} req/s at 16:00 (cosine)",
    )


def burst(base_rps: float = 150.0, factor: float = 10.0, start_s: int = 1200) -> Trace:
    """2 h at ``base_rps`` with ``factor`` times that from ``start_s`` for 20 minutes."""
    end_s = start_s + 1200

    def rate(t: float) -> float:
        return base_rps * factor if start_s <= t < end_s else base_rps

    return Trace(
        "burst",
        2 * HOUR,
        rate,
        f"2 h at {base_rps:g} req/s, {factor:g}x ({base_rps * factor:g} req/s) for 20 min "
        f"from minute {start_s // 60}",
    )


#: (start s, end s, req/s) of the quiet night's sessions, counted from 19:00.
NIGHT_SESSIONS: Final = (
    (int(2.5 * HOUR), int(2.5 * HOUR) + 600, 2.0),  # 21:30, 10 min of someone trying it
    (7 * HOUR, 7 * HOUR + 60, 0.2),  # 02:00, one lone probe minute
    (int(11.5 * HOUR), 12 * HOUR, 20.0),  # 06:30, the morning starts
)


def quiet_night() -> Trace:
    """12 h from 19:00 with no traffic outside :data:`NIGHT_SESSIONS`."""

    def rate(t: float) -> float:
        for start, end, rps in NIGHT_SESSIONS:
            if start <= t < end:
                return rps
        return 0.0

    return Trace(
        "quiet-night",
        12 * HOUR,
        rate,
        "12 h from 19:00, idle but for 10 min at 2 req/s (21:30), one minute at 0.2 req/s "
        "(02:00) and 20 req/s from 06:30",
    )


def standard_traces() -> dict[str, Trace]:
    """The three traces of the issue, at production scale."""
    return {t.name: t for t in (diurnal(), burst(), quiet_night())}
