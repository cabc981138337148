"""Prometheus metrics of the inference server, kept in a registry of their own per app instance.

A registry per app (rather than the global default) lets tests build many apps in one process
and read exact values back; ``/metrics`` serves this registry in the Prometheus text format.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

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


class ServiceMetrics:
    """The server's metrics: requests, latency, in-flight, batching and model load time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "inference_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "inference_http_request_duration_seconds",
            "Time from receiving a request to sending the end of its response.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "inference_http_requests_in_flight",
            "HTTP requests received and not yet answered.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "inference_batch_size",
            "Rows in each batch the model ran.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "inference_queue_duration_seconds",
            "Time a request waited in the batch queue before its batch started.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.forward_time = Histogram(
            "inference_batch_duration_seconds",
            "Time the model took to run one batch.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_load_time = Gauge(
            "inference_model_load_seconds",
            "Time taken to load and warm up the model at start-up.",
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "inference_model_ready",
            "1 when the model is loaded, warmed up and the server is not shutting down.",
            registry=self.registry,
        )
