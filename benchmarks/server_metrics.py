"""Read our server's /metrics around a cell: the mean batch size and how busy the model was."""

from __future__ import annotations

import urllib.request
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.stats import ServerMetrics
from service.contract import PATHS

BATCH_SIZE: Final = "inference_batch_size"
BATCH_DURATION: Final = "inference_batch_duration_seconds"
_WANTED: Final = (
    f"{BATCH_SIZE}_sum",
    f"{BATCH_SIZE}_count",
    f"{BATCH_DURATION}_sum",
    f"{BATCH_DURATION}_count",
)


def parse_counters(text: str) -> dict[str, float]:
    """The batch-size and batch-duration sums and counts in a Prometheus text exposition.

    Series of the same name (the server labels them with its model and version) are added up.
    """
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _WANTED:
                values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    missing = [name for name in _WANTED if name not in values]
    if missing:
        raise ValueError(f"/metrics lacks {missing}")
    return values


def scrape(base_url: str) -> dict[str, float]:
    """The counters of the server at ``base_url``."""
    with urllib.request.urlopen(base_url + PATHS.METRICS, timeout=10) as response:
        return parse_counters(response.read().decode())


def between(before: dict[str, float], after: dict[str, float], seconds: float) -> ServerMetrics:
    """Mean batch size, batch time and the model's busy share between two scrapes."""
    batches = after[f"{BATCH_SIZE}_count"] - before[f"{BATCH_SIZE}_count"]
    rows = after[f"{BATCH_SIZE}_sum"] - before[f"{BATCH_SIZE}_sum"]
    timed = after[f"{BATCH_DURATION}_count"] - before[f"{BATCH_DURATION}_count"]
    busy = after[f"{BATCH_DURATION}_sum"] - before[f"{BATCH_DURATION}_sum"]
    return ServerMetrics(
        mean_batch=rows / batches if batches > 0 else 0.0,
        model_busy=busy / seconds if seconds > 0 else 0.0,
        batch_ms=busy / timed * 1000 if timed > 0 else 0.0,
    )
