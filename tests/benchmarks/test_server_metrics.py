"""Mean batch size and model busy share, read from the server's real metrics exposition."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from benchmarks.server_metrics import between, parse_counters
from service.metrics import ServiceMetrics


def test_counters_between_two_scrapes_give_batch_and_busy_share() -> None:
    metrics = ServiceMetrics(model="digits", version="3")
    metrics.batch_size.observe(4)
    metrics.forward_time.observe(0.5)
    before = parse_counters(generate_latest(metrics.registry).decode())
    for rows, seconds in ((32, 0.2), (16, 0.1), (30, 0.3)):
        metrics.batch_size.observe(rows)
        metrics.forward_time.observe(seconds)
    after = parse_counters(generate_latest(metrics.registry).decode())
    figures = between(before, after, seconds=1.2)
    assert figures.mean_batch == pytest.approx(26.0)
    assert figures.model_busy == pytest.approx(0.5)
    assert figures.batch_ms == pytest.approx(200.0)


def test_an_exposition_without_batch_metrics_is_an_error() -> None:
    with pytest.raises(ValueError, match="inference_batch_size"):
        parse_counters("# TYPE up gauge\nup 1\n")
