"""The server's runtime: the model, the batcher, the metrics and the lifecycle the routes share.

:class:`ServiceRuntime` is the one object the routers (``service.api``) and the server
(``service.server``) talk to. ``start()`` loads and warms the model on a background thread, so
liveness answers and readiness says 503 meanwhile, then starts a :class:`DynamicBatcher` that runs
every forward pass on its one worker thread. ``begin_shutdown()`` turns readiness off (SIGTERM);
``stop()`` finishes the queued batches and the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from service.api_key import ApiKeyGuard
from service.batching import DynamicBatcher, QueueFullError
from service.contract import RETRY_AFTER_SECONDS
from service.errors import NotFoundError, NotReadyError, OverloadedError
from service.json_logging import FIELDS
from service.metrics import ServiceMetrics
from service.process_clock import seconds_since_process_start
from service.settings import Settings
from service.signature import ModelSignature

logger = logging.getLogger("service.runtime")

#: Seconds a request body may take to arrive before the request is answered 408.
BODY_TIMEOUT_S = 30.0
#: A lone request runs on the event loop itself when batches its size take under this (see
#: ``service.batching``): the loop is held at most about this long, and the two thread handoffs
#: it saves cost a lone request 0.1-0.2 ms here.
INLINE_BELOW_S = 0.001


class ServableModel(Protocol):
    """What the server needs from a loaded model (``service.model_loader.LoadedModel`` is one)."""

    @property
    def signature(self) -> ModelSignature:
        """The model's declared inputs, outputs and labels."""

    @property
    def device(self) -> torch.device:
        """Where the model runs."""

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run one batch."""

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        """Run dummy batches so the first real request does not pay for compilation."""


ModelLoader = Callable[[], ServableModel]


def default_model_loader(settings: Settings) -> ModelLoader:
    """Load ``settings.model_uri`` onto ``settings.device`` with the project's model loader."""

    def load() -> ServableModel:
        from service.model_loader import load_model

        return load_model(settings.model_uri, settings.device)

    return load


@dataclass
class ServiceRuntime:
    """The server's model, batcher, metrics, settings and lifecycle phase, shared by the routes."""

    settings: Settings
    loader: ModelLoader
    api_key: ApiKeyGuard
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    #: Called (from the loading thread) when the model cannot be loaded, to stop the process.
    on_fatal: Callable[[], None] | None = None
    #: Seconds a request body may take to arrive (408 after that).
    body_timeout_s: float = BODY_TIMEOUT_S
    model: ServableModel | None = None
    batcher: DynamicBatcher | None = None
    load_error: str | None = None
    draining: bool = False
    _load_lock: threading.Lock = field(default_factory=threading.Lock)
    _loader_thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """Loaded, warmed up, and not shutting down."""
        return self.batcher is not None and not self.draining

    def not_ready_reason(self) -> str:
        """Why the server is not ready, for 503 bodies."""
        if self.draining:
            return "the server is shutting down"
        if self.load_error is not None:
            return f"the model failed to load: {self.load_error}"
        return "the model is still loading"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the model on a background thread, so the server answers probes meanwhile."""
        if self._loader_thread is None:
            self._loader_thread = threading.Thread(
                target=self.load, name="model-loader", daemon=True
            )
            self._loader_thread.start()

    def load(self) -> None:
        """Load and warm up the model, then start the batcher (idempotent; safe from a thread)."""
        with self._load_lock:
            if self.batcher is not None or self.load_error is not None:
                return
            started = time.perf_counter()
            try:
                torch.set_num_threads(self.settings.torch_threads)
                model = self.loader()
                # Warm the smallest and the largest batch the batcher will ever form.
                model.warmup(sorted({1, self.settings.max_batch_size}))
            except Exception as exc:
                self._fail(f"{type(exc).__name__}: {exc}")
                return
            self._serve(model, time.perf_counter() - started)

    def begin_shutdown(self) -> None:
        """Turn readiness off at once (SIGTERM); in-flight requests still finish."""
        if not self.draining:
            self.draining = True
            self.metrics.model_ready.set(0)
            logger.info("shutting down: readiness is now false, finishing in-flight requests")

    def stop(self, timeout: float) -> None:
        """Finish every queued batch and stop the worker thread."""
        self.begin_shutdown()
        if self._loader_thread is not None:
            # A load still running in C++ when the interpreter exits aborts the process; wait.
            self._loader_thread.join(timeout)
        if self.batcher is not None and not self.batcher.close(timeout):
            logger.error("the inference worker did not finish within %.0f s", timeout)

    def _fail(self, error: str) -> None:
        self.load_error = error
        logger.error(
            "model failed to load from %s: %s",
            self.settings.model_uri,
            error,
            extra={FIELDS: {"model_uri": self.settings.model_uri}},
        )
        if self.on_fatal is not None:
            self.on_fatal()

    def _serve(self, model: ServableModel, load_seconds: float) -> None:
        """Start the batcher for the loaded, warm ``model`` and turn readiness on."""
        settings = self.settings
        batcher = DynamicBatcher(
            _forward_numpy(model),
            max_batch_size=settings.max_batch_size,
            batch_timeout_s=settings.batch_timeout_ms / 1000.0,
            observe_batch=self._observe_batch,
            observe_queue_time=self.metrics.queue_time.observe,
            # OpenMP thread counts are per thread: the worker must set its own.
            thread_setup=lambda: torch.set_num_threads(settings.torch_threads),
            max_queued_rows=settings.max_queued_rows,
            inline_below_s=INLINE_BELOW_S,
        )
        batcher.start()
        self.metrics.version = model.signature.version
        self.metrics.queued_rows.set_function(lambda: batcher.queued_rows)
        self.model = model
        self.batcher = batcher
        self.metrics.model_load_time.set(load_seconds)
        if not self.draining:
            self.metrics.model_ready.set(1)
        logger.info(
            "model %s ready on %s after %.2f s",
            settings.model_name,
            model.device,
            load_seconds,
            extra={
                FIELDS: {
                    "model": settings.model_name,
                    "model_version": model.signature.version,
                    "device": str(model.device),
                    "load_seconds": round(load_seconds, 3),
                    "since_process_start_s": seconds_since_process_start(),
                    "max_batch_size": settings.max_batch_size,
                    "batch_timeout_ms": settings.batch_timeout_ms,
                    "torch_threads": settings.torch_threads,
                }
            },
        )

    def _observe_batch(self, rows: int, seconds: float) -> None:
        self.metrics.batch_size.observe(rows)
        self.metrics.forward_time.observe(seconds)

    # ------------------------------------------------------------------ what routes ask

    def served_model(self, name: str, version: str | None = None) -> ServableModel:
        """The model answering ``name`` (and ``version``); 404 for another, 503 before loading.

        While draining (after SIGTERM) the model keeps answering: requests that still reach the
        server are served; only the readiness answers turn false.
        """
        expected = self.settings.model_name
        if name != expected:
            raise NotFoundError(f"unknown model {name!r:.100}; this server serves {expected!r}")
        model = self.model
        if model is None or self.batcher is None:
            raise NotReadyError(f"model {name!r} is not ready: {self.not_ready_reason()}")
        if version is not None and version != model.signature.version:
            raise NotFoundError(
                f"model {name!r} has no version {version!r:.40}; it serves version "
                f"{model.signature.version!r}"
            )
        return model

    def overloaded(self, exc: QueueFullError) -> OverloadedError:
        """Count a refusal for a full queue and say when to retry (503 + ``Retry-After``)."""
        self.metrics.refused.inc()
        return OverloadedError(str(exc), RETRY_AFTER_SECONDS)


def _forward_numpy(
    model: ServableModel,
) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            # np.frombuffer arrays are read-only views of the request body; torch wants writable.
            tensors = {
                name: torch.from_numpy(array if array.flags.writeable else array.copy())
                for name, array in inputs.items()
            }
            # The model moves inputs to its device and hands outputs back on the CPU.
            outputs = model.forward(tensors)
            return {name: tensor.detach().cpu().numpy() for name, tensor in outputs.items()}

    return run
