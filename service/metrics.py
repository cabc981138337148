"""Prometheus metrics of the inference server, kept in a registry of their own per app instance.

A registry per app (rather than the global default) lets tests build many apps in one process
and read exact values back; ``/metrics`` serves this registry in the Prometheus text format.

Every service series carries ``model`` and ``version`` labels, so dashboards and autoscaling
queries can tell two models (or a canary version) apart. They are added when ``/metrics`` is
scraped, not on every observation, so a request pays for no extra label lookups. The registry
also holds the standard process collector (``process_resident_memory_bytes``, CPU seconds, open
file descriptors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

# The *_created series only double the scrape size; rates and histograms do not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds; fine at the low end because a small model answers in about a millisecond.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class _ModelLabelled(Collector):
    """Serves the metrics of ``inner`` with the model's ``model`` and ``version`` labels added."""

    def __init__(self, inner: CollectorRegistry, labels: Callable[[], dict[str, str]]) -> None:
        self._inner = inner
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        extra = self._labels()
        for family in self._inner.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [
                Sample(s.name, {**extra, **s.labels}, s.value, s.timestamp, s.exemplar)
                for s in family.samples
            ]
            yield labelled


class ServiceMetrics:
    """The server's metrics: requests, latency, in-flight, batching, queue and model load time."""

    def __init__(self, model: str = "", version: str = "") -> None:
        #: What ``/metrics`` serves: the service's series, model-labelled, and the process's.
        self.registry = CollectorRegistry(auto_describe=True)
        self.model = model
        #: The served model's version; empty until the model is loaded.
        self.version = version
        own = CollectorRegistry(auto_describe=True)
        self.registry.register(_ModelLabelled(own, self._model_labels))
        ProcessCollector(registry=self.registry)
        self._own = own
        self.requests = Counter(
            "inference_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "inference_http_request_duration_seconds",
            "Time from receiving a request to sending the end of its response.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.in_flight = Gauge(
            "inference_http_requests_in_flight",
            "HTTP requests received and not yet answered.",
            registry=own,
        )
        self.batch_size = Histogram(
            "inference_batch_size",
            "Rows in each batch the model ran.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=own,
        )
        self.queue_time = Histogram(
            "inference_queue_duration_seconds",
            "Time a request waited in the batch queue before its batch started.",
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.forward_time = Histogram(
            "inference_batch_duration_seconds",
            "Time the model took to run one batch.",
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.model_load_time = Gauge(
            "inference_model_load_seconds",
            "Time taken to load and warm up the model at start-up.",
            registry=own,
        )
        self.model_ready = Gauge(
            "inference_model_ready",
            "1 when the model is loaded, warmed up and the server is not shutting down.",
            registry=own,
        )
        self.refused = Counter(
            "inference_requests_refused",
            "Inference requests answered 503 at once because the batch queue was full.",
            registry=own,
        )
        self.queued_rows = Gauge(
            "inference_queued_rows",
            "Rows waiting in the batch queue (bounded by MAX_QUEUED_ROWS).",
            registry=own,
        )

    def _model_labels(self) -> dict[str, str]:
        return {"model": self.model, "version": self.version}
