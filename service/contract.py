"""The runtime contract shared by the service, its image and the Kubernetes manifests.

This module is the single source of truth for the port, the environment variable names, the
probe paths and the shutdown timings. The service reads it at start-up, the Dockerfile build
and the Pulumi program import it, so none of them ever retype a value. It must stay free of heavy
imports (no torch, no FastAPI): the Pulumi program imports it at preview time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Port the HTTP server listens on inside the container (``PORT`` overrides it).
DEFAULT_PORT: Final = 8080
#: Address the server binds to: every interface of the pod's network namespace.
BIND_HOST: Final = "0.0.0.0"  # noqa: S104 - a pod must listen on its own interface

#: The unprivileged user and group the image and the pod run as.
RUN_AS_UID: Final = 10001
RUN_AS_GID: Final = 10001
#: The only writable path in the container (an emptyDir / tmpfs); everything else is read-only.
WRITABLE_DIR: Final = "/tmp"  # noqa: S108 - the one tmpfs mount of a read-only root filesystem

#: Shape of an AWS region name (``AWS_REGION`` here, ``aws:region`` in the stack config): two
#: letters, an optional GovCloud/ISO marker, a direction, a number: eu-west-1, us-gov-west-1,
#: us-isob-east-1, ap-southeast-5. Defined once because the service and the program check it.
AWS_REGION_PATTERN: Final = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$"

#: Name of the model the bundled image serves when ``MODEL_NAME`` is not set.
DEFAULT_MODEL_NAME: Final = "digits"
#: Where the image keeps the bundled model; ``MODEL_URI`` falls back to it.
BUNDLED_MODEL_DIR: Final = "/opt/model"


@dataclass(frozen=True)
class EnvVars:
    """Names of the environment variables the service reads."""

    PORT: str = "PORT"
    MODEL_NAME: str = "MODEL_NAME"
    MODEL_URI: str = "MODEL_URI"
    DEVICE: str = "DEVICE"
    MAX_BATCH_SIZE: str = "MAX_BATCH_SIZE"
    BATCH_TIMEOUT_MS: str = "BATCH_TIMEOUT_MS"
    MAX_REQUEST_BYTES: str = "MAX_REQUEST_BYTES"
    API_KEY_SECRET_ARN: str = "API_KEY_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
    AWS_REGION: str = "AWS_REGION"
    LOG_LEVEL: str = "LOG_LEVEL"
    TORCH_THREADS: str = "TORCH_THREADS"
    MAX_QUEUED_ROWS: str = "MAX_QUEUED_ROWS"
    DRAIN_PERIOD_SECONDS: str = "DRAIN_PERIOD_SECONDS"


ENV: Final = EnvVars()

#: Allowed values of ``DEVICE``.
DEVICES: Final = ("auto", "cpu", "cuda")

#: Defaults of the tunables, used by the service and written into the manifests.
DEFAULT_MAX_BATCH_SIZE: Final = 32
DEFAULT_BATCH_TIMEOUT_MS: Final = 5.0
DEFAULT_MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024
DEFAULT_LOG_LEVEL: Final = "INFO"
#: Intra-op threads of the one inference worker; 1 leaves a core for the HTTP event loop.
DEFAULT_TORCH_THREADS: Final = 1
#: ``MAX_QUEUED_ROWS`` unset: the batcher holds at most max(``DEFAULT_MAX_QUEUED_ROWS``,
#: ``DEFAULT_QUEUED_BATCHES`` full batches) rows, queued or in progress, and answers 503 +
#: ``Retry-After`` past that. 64 = 2 batches of 32 (one running, one forming): the benchmark
#: saturates the server at 64 concurrent one-row requests, so the bound leaves that load alone and
#: refuses what comes on top. ``benchmarks/overload.py`` chose it at 4x that concurrency with
#: clients that wait their ``Retry-After`` (the bound sets how many requests wait, and so how
#: long): accepted p99 over saturation's 1.14x and 1.51x at 64 rows in two runs, 1.77x and 1.67x
#: at 96 (more accepted per second, less margin), 2.37x and 2.32x at 128. The floor keeps a
#: small ``MAX_BATCH_SIZE`` (1 turns batching off) from refusing ordinary concurrency.
DEFAULT_QUEUED_BATCHES: Final = 2
DEFAULT_MAX_QUEUED_ROWS: Final = DEFAULT_QUEUED_BATCHES * DEFAULT_MAX_BATCH_SIZE


def default_max_queued_rows(max_batch_size: int) -> int:
    """The queue bound for ``max_batch_size`` when ``MAX_QUEUED_ROWS`` is not set."""
    return max(DEFAULT_MAX_QUEUED_ROWS, DEFAULT_QUEUED_BATCHES * max_batch_size)


#: Seconds a 503 for a full queue tells clients to wait (``Retry-After``).
RETRY_AFTER_SECONDS: Final = 1

#: Header carrying the API key on inference routes when ``API_KEY_SECRET_ARN`` is set.
API_KEY_HEADER: Final = "X-API-Key"
#: Header that carries (or receives) the request id used in logs.
REQUEST_ID_HEADER: Final = "X-Request-ID"


@dataclass(frozen=True)
class LogFields:
    """Keys of the one-JSON-object-per-line access log; CloudWatch metric filters match on them."""

    TIMESTAMP: str = "ts"
    LEVEL: str = "level"
    MESSAGE: str = "msg"
    REQUEST_ID: str = "request_id"
    ROUTE: str = "route"
    STATUS: str = "status"
    LATENCY_MS: str = "latency_ms"


LOG_FIELDS: Final = LogFields()


@dataclass(frozen=True)
class Paths:
    """HTTP routes of the service (Open Inference Protocol v2 plus conveniences)."""

    LIVE: str = "/v2/health/live"
    READY: str = "/v2/health/ready"
    #: 200 once start-up is over (model loaded and warmed), and from then on; 503 before. Not part
    #: of the v2 protocol: the startupProbe's own path, so it watches what start-up waits for.
    STARTUP: str = "/v2/health/startup"
    SERVER_METADATA: str = "/v2"
    MODEL_METADATA: str = "/v2/models/{name}"
    MODEL_READY: str = "/v2/models/{name}/ready"
    MODEL_INFER: str = "/v2/models/{name}/infer"
    PREDICT: str = "/predict"
    METRICS: str = "/metrics"
    DOCS: str = "/docs"


PATHS: Final = Paths()


@dataclass(frozen=True)
class Probes:
    """Probe timings the Deployment uses; chosen so a slow model load never kills the pod."""

    period_seconds: int = 5
    timeout_seconds: int = 2
    failure_threshold: int = 3
    #: startupProbe: up to period * threshold seconds (300) for the model to load and warm up.
    #: Probed every second: the kubelet runs no other probe until this one succeeds, so its
    #: period is added to every pod's time to ready (the bundled model starts in about 2 s).
    startup_period_seconds: int = 1
    startup_failure_threshold: int = 300


PROBES: Final = Probes()


@dataclass(frozen=True)
class Shutdown:
    """Graceful shutdown timings, in the order they happen.

    1. ``pre_stop_sleep_seconds``: the kubelet's preStop sleep; the pod still serves normally while
       the endpoints controller and load balancers stop routing new connections to it.
    2. SIGTERM. For ``drain_period_seconds`` (``DRAIN_PERIOD_SECONDS`` overrides it) readiness is
       false, every response carries ``Connection: close``, and the listener and idle keep-alive
       connections stay open: a client that still sends on a kept-alive connection is answered and
       told to reconnect (elsewhere) instead of having the connection closed under its request.
    3. The listener and idle connections close; in-flight and queued requests get up to
       ``drain_seconds`` to finish, then the process exits 0.

    All of it fits in ``termination_grace_period_seconds`` with ``exit_margin_seconds`` to spare.
    """

    pre_stop_sleep_seconds: int = 5
    drain_period_seconds: int = 5
    drain_seconds: int = 15
    exit_margin_seconds: int = 5
    termination_grace_period_seconds: int = 30

    def __post_init__(self) -> None:
        needed = (
            self.pre_stop_sleep_seconds
            + self.drain_period_seconds
            + self.drain_seconds
            + self.exit_margin_seconds
        )
        if needed > self.termination_grace_period_seconds:
            raise ValueError(
                f"shutdown needs {needed} s but the grace period is "
                f"{self.termination_grace_period_seconds} s"
            )


SHUTDOWN: Final = Shutdown()
