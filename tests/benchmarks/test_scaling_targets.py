"""The in-flight target derived from the benchmark's latency curve."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import scaling_targets as targets
from benchmarks.service_curve import CurvePoint, ServiceCurve, load_curve

CURVE = load_curve()
P99_AT_1 = CURVE.points[0].p99_ms


@given(
    st.floats(min_value=P99_AT_1, max_value=2000.0),
    st.floats(min_value=P99_AT_1, max_value=2000.0),
)
def test_a_looser_slo_never_gives_a_smaller_target(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert targets.inflight_target(low, CURVE) <= targets.inflight_target(high, CURVE)
    assert targets.keda_target(low, CURVE) <= targets.keda_target(high, CURVE)


def test_the_target_is_where_the_measured_p99_crosses_the_slo() -> None:
    for point in CURVE.points:
        assert targets.inflight_target(point.p99_ms, CURVE) == pytest.approx(point.concurrency)
    mid = (CURVE.points[1].p99_ms + CURVE.points[2].p99_ms) / 2
    between = (CURVE.points[1].concurrency + CURVE.points[2].concurrency) / 2
    assert targets.inflight_target(mid, CURVE) == pytest.approx(between)
    # At the target, the curve's own p99 is the SLO.
    assert CURVE.latency_ms(targets.inflight_target(100.0, CURVE))[1] == pytest.approx(100.0)


def test_an_slo_tighter_than_one_request_is_refused_with_the_figure() -> None:
    with pytest.raises(ValueError, match=rf"below the p99 .* \({P99_AT_1} ms\)"):
        targets.inflight_target(P99_AT_1 / 2, CURVE)
    for bad in (0.0, -5.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="positive number"):
            targets.inflight_target(bad, CURVE)


def test_no_extrapolation_past_the_measured_concurrency() -> None:
    assert targets.inflight_target(10_000.0, CURVE) == CURVE.max_concurrency


def test_keda_and_rate_targets_round_down_from_the_crossing() -> None:
    curve = ServiceCurve(
        points=(CurvePoint(1, 100, 1, 2), CurvePoint(11, 600, 10, 102)),
        cpu_ms_per_request=((1, 1.0),),
        source="test",
    )
    assert targets.inflight_target(52.0, curve) == pytest.approx(6.0)
    assert targets.inflight_target(51.0, curve) == pytest.approx(5.9)
    assert targets.keda_target(51.0, curve) == 5
    assert targets.rate_target(51.0, curve) == 300  # 100 + 500 * 4/10 req/s at concurrency 5


def test_every_recommended_stack_has_an_attainable_target() -> None:
    for name, stack in targets.RECOMMENDED.items():
        assert stack.inflight_target(CURVE) >= 1, name
        assert stack.min_replicas == 0 if stack.scale_to_zero else stack.min_replicas >= 1


def test_cli_prints_the_target_and_refuses_a_bad_slo(capsys: pytest.CaptureFixture[str]) -> None:
    assert targets.main(["--slo-ms", "100"]) == 0
    out = capsys.readouterr().out
    assert f"KEDA target ({targets.INFLIGHT_METRIC} per pod): 28" in out
    assert targets.main(["--slo-ms", "1"]) == 2
    assert "no number of pods meets it" in capsys.readouterr().err
