"""The runtime on its own: which model answers, the lifecycle phases, and what it tells routes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from service.api_key import ApiKeyGuard
from service.batching import QueueFullError
from service.errors import NotFoundError, NotReadyError
from service.metrics import ServiceMetrics
from service.model_loader import load_model
from service.runtime import ServableModel, ServiceRuntime, default_model_loader
from tests.service.conftest import settings_for


def runtime_for(model_dir: Path, **kwargs: object) -> ServiceRuntime:
    settings = settings_for(model_dir)
    return ServiceRuntime(
        settings=settings,
        loader=default_model_loader(settings),
        api_key=ApiKeyGuard(None),
        metrics=ServiceMetrics(model=settings.model_name),
        **kwargs,  # type: ignore[arg-type]
    )


def test_start_loads_in_the_background_and_stop_finishes_the_worker(tiny_model_dir: Path) -> None:
    release = threading.Event()
    settings = settings_for(tiny_model_dir)

    def slow_loader() -> ServableModel:
        assert release.wait(30)
        return load_model(str(tiny_model_dir), "cpu")

    runtime = ServiceRuntime(settings=settings, loader=slow_loader, api_key=ApiKeyGuard(None))
    runtime.start()  # returns while the model is still loading
    assert not runtime.ready
    assert runtime.not_ready_reason() == "the model is still loading"
    with pytest.raises(NotReadyError, match="still loading"):
        runtime.served_model("digits")
    release.set()
    runtime.stop(30)  # waits for the load, then closes the batcher it started
    assert runtime.batcher is not None
    assert runtime.batcher.closed
    assert not runtime.ready
    assert runtime.not_ready_reason() == "the server is shutting down"


def test_served_model_answers_for_its_name_and_version_only(tiny_model_dir: Path) -> None:
    runtime = runtime_for(tiny_model_dir)
    runtime.load()
    try:
        assert runtime.served_model("digits") is runtime.model
        assert runtime.served_model("digits", "1") is runtime.model
        with pytest.raises(
            NotFoundError, match="unknown model 'mnist'; this server serves 'digits'"
        ):
            runtime.served_model("mnist")
        with pytest.raises(NotFoundError, match="no version '2'; it serves version '1'"):
            runtime.served_model("digits", "2")
        # Draining turns readiness off, but requests that still arrive are served.
        runtime.begin_shutdown()
        assert not runtime.ready
        assert runtime.served_model("digits") is runtime.model
    finally:
        runtime.stop(5)


def test_a_failed_load_is_kept_reported_and_fatal(tmp_path: Path) -> None:
    fatal = threading.Event()
    runtime = runtime_for(tmp_path / "missing", on_fatal=fatal.set)
    runtime.load()
    assert fatal.is_set()
    assert runtime.load_error is not None
    assert "failed to load" in runtime.not_ready_reason()
    runtime.load()  # no second attempt: the error stays what the probes report
    assert runtime.batcher is None
    runtime.stop(5)


def test_the_worker_runs_the_model_on_numpy_rows(tiny_model_dir: Path) -> None:
    runtime = runtime_for(tiny_model_dir)
    runtime.load()
    try:
        assert runtime.ready
        batcher = runtime.batcher
        assert batcher is not None
        rows = np.zeros((2, 64), dtype=np.float32)
        rows.flags.writeable = False  # like np.frombuffer views of a request body

        async def run() -> dict[str, np.ndarray]:
            with batcher.announce() as arrival:
                return await arrival.run({"pixels": rows})

        outputs = asyncio.run(run())
        assert outputs["probabilities"].shape == (2, 10)
        ready = runtime.metrics.registry.get_sample_value(
            "inference_model_ready", {"model": "digits", "version": "1"}
        )
        assert ready == 1.0
    finally:
        runtime.stop(5)


def test_a_refusal_is_counted_and_says_when_to_retry(tiny_model_dir: Path) -> None:
    runtime = runtime_for(tiny_model_dir)
    error = runtime.overloaded(QueueFullError("the queue holds MAX_QUEUED_ROWS=2 rows"))
    assert error.status == 503
    assert error.headers == {"Retry-After": "1"}
    assert "MAX_QUEUED_ROWS=2" in error.message
    refused = runtime.metrics.registry.get_sample_value(
        "inference_requests_refused_total", {"model": "digits", "version": ""}
    )
    assert refused == 1.0
