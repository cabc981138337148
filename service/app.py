"""The FastAPI application: Open Inference Protocol v2 routes, ``/predict``, metrics and docs.

``create_app`` wires the pieces: the model is loaded and warmed up on a background thread (so
liveness answers and readiness says 503 meanwhile), then a :class:`DynamicBatcher` runs every
forward pass on its one worker thread. Routes decode and encode on the event loop with numpy and
only await the batcher, so probes stay fast under full load.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from service import schemas
from service.access_log import AccessMiddleware
from service.api_key import ApiKeyGuard
from service.batching import (
    BatcherClosedError,
    BatchFailedError,
    DynamicBatcher,
    QueueFullError,
)
from service.contract import API_KEY_HEADER, PATHS, RETRY_AFTER_SECONDS, SHUTDOWN
from service.errors import (
    InferenceError,
    NotFoundError,
    NotReadyError,
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
    install_error_handlers,
)
from service.fast_path import InferenceFastPath
from service.json_logging import FIELDS
from service.metrics import ServiceMetrics
from service.predict_codec import decode_predict_request, encode_predictions
from service.process_clock import seconds_since_process_start
from service.settings import Settings
from service.signature import ModelSignature
from service.v2_codec import (
    BINARY_CONTENT_TYPE,
    BINARY_HEADER,
    JSON_CONTENT_TYPE,
    decode_infer_request,
    encode_infer_response,
    parse_json_body,
)

logger = logging.getLogger("service.app")

SERVER_NAME = "torch-eks-inference"
SERVER_VERSION = "0.1.0"
#: v2 protocol extensions this server implements.
EXTENSIONS = ("binary_tensor_data",)
#: Seconds a request body may take to arrive before the request is answered 408.
BODY_TIMEOUT_S = 30.0

#: OpenAPI security schemes of the inference routes when an API key is configured.
SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
    "BearerToken": {"type": "http", "scheme": "bearer"},
}


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
class ServiceState:
    """The server's model, batcher and lifecycle phase, shared by the routes."""

    settings: Settings
    loader: ModelLoader
    api_key: ApiKeyGuard
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    #: Called (from the loading thread) when the model cannot be loaded, to stop the process.
    on_fatal: Callable[[], None] | None = None
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

    def load(self) -> None:
        """Load and warm up the model, then start the batcher (idempotent; safe from a thread)."""
        with self._load_lock:
            if self.batcher is not None or self.load_error is not None:
                return
            settings = self.settings
            started = time.perf_counter()
            try:
                torch.set_num_threads(settings.torch_threads)
                model = self.loader()
                # Warm the smallest and the largest batch the batcher will ever form.
                model.warmup(sorted({1, settings.max_batch_size}))
            except Exception as exc:
                self.load_error = f"{type(exc).__name__}: {exc}"
                logger.error(
                    "model failed to load from %s: %s",
                    settings.model_uri,
                    self.load_error,
                    extra={FIELDS: {"model_uri": settings.model_uri}},
                )
                if self.on_fatal is not None:
                    self.on_fatal()
                return
            seconds = time.perf_counter() - started
            since_start = seconds_since_process_start()
            batcher = DynamicBatcher(
                _forward_numpy(model),
                max_batch_size=settings.max_batch_size,
                batch_timeout_s=settings.batch_timeout_ms / 1000.0,
                observe_batch=self._observe_batch,
                observe_queue_time=self.metrics.queue_time.observe,
                # OpenMP thread counts are per thread: the worker must set its own.
                thread_setup=lambda: torch.set_num_threads(settings.torch_threads),
                max_queued_rows=settings.max_queued_rows,
            )
            batcher.start()
            self.metrics.version = model.signature.version
            self.metrics.queued_rows.set_function(lambda: batcher.queued_rows)
            self.model = model
            self.batcher = batcher
            self.metrics.model_load_time.set(seconds)
            if not self.draining:
                self.metrics.model_ready.set(1)
            logger.info(
                "model %s ready on %s after %.2f s",
                settings.model_name,
                model.device,
                seconds,
                extra={
                    FIELDS: {
                        "model": settings.model_name,
                        "model_version": model.signature.version,
                        "device": str(model.device),
                        "load_seconds": round(seconds, 3),
                        "since_process_start_s": since_start,
                        "max_batch_size": settings.max_batch_size,
                        "batch_timeout_ms": settings.batch_timeout_ms,
                        "torch_threads": settings.torch_threads,
                    }
                },
            )

    def begin_shutdown(self) -> None:
        """Turn readiness off at once (SIGTERM); in-flight requests still finish."""
        if not self.draining:
            self.draining = True
            self.metrics.model_ready.set(0)
            logger.info("shutting down: readiness is now false, finishing in-flight requests")

    def start_loading(self) -> None:
        """Load the model on a background thread, so the server answers probes meanwhile."""
        if self._loader_thread is None:
            self._loader_thread = threading.Thread(
                target=self.load, name="model-loader", daemon=True
            )
            self._loader_thread.start()

    def close(self, timeout: float) -> None:
        """Finish every queued batch and stop the worker thread."""
        self.begin_shutdown()
        if self._loader_thread is not None:
            # A load still running in C++ when the interpreter exits aborts the process; wait.
            self._loader_thread.join(timeout)
        if self.batcher is not None and not self.batcher.close(timeout):
            logger.error("the inference worker did not finish within %.0f s", timeout)

    def _observe_batch(self, rows: int, seconds: float) -> None:
        self.metrics.batch_size.observe(rows)
        self.metrics.forward_time.observe(seconds)


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


# --- request helpers --------------------------------------------------------------------------


async def read_body(request: Request, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes while it streams in.

    A body that stops arriving is a 408 after ``timeout_s``, so a stalled client cannot hold a
    request (and a place in a forming batch) open forever.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"the body is {int(declared)} bytes; this server takes at most {limit} "
            "(MAX_REQUEST_BYTES)"
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r:.40} is not supported; send the body uncompressed"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"the body is over {limit} bytes, the most this server takes "
                        "(MAX_REQUEST_BYTES)"
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {timeout_s:g} s ({size} bytes received)"
        ) from None
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _require_media_type(request: Request, allowed: tuple[str, ...]) -> None:
    media_type = _media_type(request)
    if media_type and media_type not in allowed:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media_type!r:.60} is not supported here; use {' or '.join(allowed)}"
        )


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": schemas.ErrorResponse} for status in statuses}


def _request_body(model: type[BaseModel], *, binary: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {
        JSON_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    }
    extra: dict[str, Any] = {}
    if binary:
        content[BINARY_CONTENT_TYPE] = {
            "schema": {"type": "string", "format": "binary"},
        }
        extra["parameters"] = [
            {
                "name": BINARY_HEADER,
                "in": "header",
                "required": False,
                "description": "Length of the JSON header when binary tensor data follows it.",
                "schema": {"type": "integer", "minimum": 1},
            }
        ]
    return {"requestBody": {"required": True, "content": content}, **extra}


# --- the app ----------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    *,
    api_key: str | None = None,
    loader: ModelLoader | None = None,
    on_fatal: Callable[[], None] | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> FastAPI:
    """Build the service app; the model starts loading when the app's lifespan starts."""
    state = ServiceState(
        settings=settings,
        loader=loader or default_model_loader(settings),
        api_key=ApiKeyGuard(api_key),
        metrics=ServiceMetrics(model=settings.model_name),
        on_fatal=on_fatal,
    )

    def overloaded(exc: QueueFullError) -> OverloadedError:
        state.metrics.refused.inc()
        return OverloadedError(str(exc), RETRY_AFTER_SECONDS)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start_loading()
        yield
        await asyncio.to_thread(state.close, SHUTDOWN.drain_seconds)

    app = FastAPI(
        title=SERVER_NAME,
        version=SERVER_VERSION,
        description=(
            "A PyTorch model behind the Open Inference Protocol v2 (KServe / Triton REST, with the "
            "binary tensor data extension), plus a simple /predict route. Errors are always "
            '`{"error": "..."}`.'
        ),
        lifespan=lifespan,
        # Prometheus and the JSON access log are this service's telemetry; FastAPI's OpenTelemetry
        # hooks would only add a per-request check that nothing is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.service = state
    install_error_handlers(app)
    # Added first, so it runs inside the access middleware (the last one added is the outermost).
    app.add_middleware(
        InferenceFastPath, infer=lambda *args: infer(*args), predict=lambda r: predict_handler(r)
    )
    app.add_middleware(AccessMiddleware, metrics=state.metrics, draining=lambda: state.draining)

    # The key is checked by a plain call, not a FastAPI dependency: dependency solving costs
    # more than a small model's forward pass.
    def authorize(request: Request) -> None:
        headers = request.headers
        state.api_key.check(headers.get(API_KEY_HEADER), headers.get("authorization"))

    secured: dict[str, Any] = (
        {"security": [{name: []} for name in SECURITY_SCHEMES]} if state.api_key.enabled else {}
    )

    def served_model(name: str, version: str | None = None) -> ServableModel:
        # While draining (after SIGTERM) the model keeps answering: requests that still reach
        # the server are served; only the readiness answers turn false.
        if name != settings.model_name:
            raise NotFoundError(
                f"unknown model {name!r:.100}; this server serves {settings.model_name!r}"
            )
        model = state.model
        if model is None or state.batcher is None:
            raise NotReadyError(f"model {name!r} is not ready: {state.not_ready_reason()}")
        if version is not None and version != model.signature.version:
            raise NotFoundError(
                f"model {name!r} has no version {version!r:.40}; it serves version "
                f"{model.signature.version!r}"
            )
        return model

    def ready_model(name: str, version: str | None = None) -> dict[str, Any]:
        served_model(name, version)
        if not state.ready:
            raise NotReadyError(f"model {name!r} is not ready: {state.not_ready_reason()}")
        return {"name": name, "ready": True}

    # ------------------------------------------------------------------ health and metadata

    @app.get(PATHS.LIVE, response_model=schemas.LiveResponse, tags=["health"])
    async def live() -> dict[str, bool]:
        """Liveness: 200 whenever the process serves HTTP."""
        return {"live": True}

    @app.get(
        PATHS.READY,
        response_model=schemas.ReadyResponse,
        responses=_error_responses(503),
        tags=["health"],
    )
    async def ready() -> dict[str, bool]:
        """Readiness: 200 once the model is loaded and warm; 503 before, and from SIGTERM on."""
        if not state.ready:
            raise NotReadyError(f"not ready: {state.not_ready_reason()}")
        return {"ready": True}

    @app.get(
        PATHS.STARTUP,
        response_model=schemas.ReadyResponse,
        responses=_error_responses(503),
        tags=["health"],
    )
    async def startup() -> dict[str, bool]:
        """Start-up (the startupProbe): 200 once the model is loaded and warm, and from then on."""
        if state.batcher is None:
            raise NotReadyError(f"starting: {state.not_ready_reason()}")
        return {"ready": True}

    @app.get(PATHS.SERVER_METADATA, response_model=schemas.ServerMetadata, tags=["metadata"])
    async def server_metadata() -> dict[str, Any]:
        """v2 server metadata: name, version and supported extensions."""
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}

    def model_metadata_body(model: ServableModel) -> dict[str, Any]:
        signature = model.signature
        return {
            "name": settings.model_name,
            "versions": [signature.version],
            "platform": signature.platform,
            "inputs": [spec.to_dict() for spec in signature.inputs],
            "outputs": [spec.to_dict() for spec in signature.outputs],
        }

    metadata_errors = _error_responses(401, 404, 503)

    @app.get(
        PATHS.MODEL_METADATA,
        response_model=schemas.ModelMetadata,
        responses=metadata_errors,
        openapi_extra=secured,
        tags=["metadata"],
    )
    async def model_metadata(request: Request, name: str) -> dict[str, Any]:
        """v2 model metadata: inputs and outputs with name, datatype and shape."""
        authorize(request)
        return model_metadata_body(served_model(name))

    @app.get(
        PATHS.MODEL_METADATA + "/versions/{version}",
        response_model=schemas.ModelMetadata,
        responses=metadata_errors,
        openapi_extra=secured,
        tags=["metadata"],
    )
    async def model_version_metadata(request: Request, name: str, version: str) -> dict[str, Any]:
        """v2 model metadata of one version (this server serves exactly one)."""
        authorize(request)
        return model_metadata_body(served_model(name, version))

    @app.get(
        PATHS.MODEL_READY,
        response_model=schemas.ModelReady,
        responses=_error_responses(404, 503),
        tags=["health"],
    )
    async def model_ready(name: str) -> dict[str, Any]:
        """v2 model readiness: 200 when the model answers inference requests, 503 otherwise."""
        return ready_model(name)

    @app.get(
        PATHS.MODEL_METADATA + "/versions/{version}/ready",
        response_model=schemas.ModelReady,
        responses=_error_responses(404, 503),
        tags=["health"],
    )
    async def model_version_ready(name: str, version: str) -> dict[str, Any]:
        """v2 model readiness of one version."""
        return ready_model(name, version)

    # ------------------------------------------------------------------ inference

    async def infer(request: Request, name: str, version: str | None) -> Response:
        authorize(request)
        model = served_model(name, version)
        batcher = state.batcher
        assert batcher is not None
        _require_media_type(request, (JSON_CONTENT_TYPE, BINARY_CONTENT_TYPE))
        try:
            with batcher.announce() as arrival:
                body = await read_body(request, settings.max_request_bytes, body_timeout_s)
                decoded = decode_infer_request(
                    body, request.headers.get(BINARY_HEADER), model.signature
                )
                outputs = await arrival.run(decoded.inputs)
        except BatcherClosedError as exc:
            raise NotReadyError(str(exc)) from None
        except QueueFullError as exc:
            raise overloaded(exc) from None
        except BatchFailedError as exc:
            raise InferenceError(f"inference failed for the batch of this request: {exc}") from None
        encoded = encode_infer_response(
            signature=model.signature,
            model_name=settings.model_name,
            request=decoded,
            outputs=outputs,
        )
        return Response(encoded.body, media_type=encoded.media_type, headers=encoded.headers)

    infer_docs: dict[str, Any] = {
        "response_class": Response,
        "responses": {
            200: {
                "model": schemas.InferResponseBody,
                "content": {
                    BINARY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}
                },
                "description": "Outputs: JSON, or a JSON header then binary tensors if asked for.",
            },
            **_error_responses(400, 401, 404, 408, 413, 415, 500, 503),
        },
        "openapi_extra": {**_request_body(schemas.InferRequestBody, binary=True), **secured},
        "tags": ["inference"],
    }

    @app.post(PATHS.MODEL_INFER, **infer_docs)
    async def model_infer(request: Request, name: str) -> Response:
        """v2 inference, JSON tensors or the binary tensor data extension."""
        return await infer(request, name, None)

    @app.post(PATHS.MODEL_METADATA + "/versions/{version}/infer", **infer_docs)
    async def model_version_infer(request: Request, name: str, version: str) -> Response:
        """v2 inference on one version of the model."""
        return await infer(request, name, version)

    async def predict_handler(request: Request) -> Response:
        authorize(request)
        model = served_model(settings.model_name)
        batcher = state.batcher
        assert batcher is not None
        _require_media_type(request, (JSON_CONTENT_TYPE,))
        try:
            with batcher.announce() as arrival:
                body = await read_body(request, settings.max_request_bytes, body_timeout_s)
                inputs = decode_predict_request(parse_json_body(body), model.signature)
                outputs = await arrival.run(inputs)
        except BatcherClosedError as exc:
            raise NotReadyError(str(exc)) from None
        except QueueFullError as exc:
            raise overloaded(exc) from None
        except BatchFailedError as exc:
            raise InferenceError(f"inference failed for the batch of this request: {exc}") from None
        try:  # JSONResponse renders with allow_nan=False: NaN or infinity raise ValueError
            return JSONResponse(
                {
                    "model_name": settings.model_name,
                    "model_version": model.signature.version,
                    "predictions": encode_predictions(outputs, model.signature),
                }
            )
        except ValueError:
            raise InferenceError(
                "the model produced NaN or infinite values, which JSON cannot carry"
            ) from None

    @app.post(
        PATHS.PREDICT,
        response_model=schemas.PredictResponse,
        responses=_error_responses(400, 401, 408, 413, 415, 500, 503),
        openapi_extra={**_request_body(schemas.PredictRequest), **secured},
        tags=["inference"],
    )
    async def predict(request: Request) -> Response:
        """Simple JSON: ``{"instances": [row, ...]}`` in, labelled predictions out."""
        return await predict_handler(request)

    # ------------------------------------------------------------------ operations

    @app.get(
        PATHS.METRICS,
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
        tags=["operations"],
    )
    async def metrics() -> Response:
        """Prometheus metrics in the text exposition format."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _install_openapi(
        app,
        (schemas.InferRequestBody, schemas.PredictRequest),
        SECURITY_SCHEMES if state.api_key.enabled else {},
    )
    return app


def _install_openapi(
    app: FastAPI,
    request_models: Sequence[type[BaseModel]],
    security_schemes: dict[str, Any],
) -> None:
    """Add the hand-decoded request bodies' schemas to the generated OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            sections: dict[str, Any] = document.setdefault("components", {})
            if security_schemes:
                sections["securitySchemes"] = security_schemes
            components: dict[str, Any] = sections.setdefault("schemas", {})
            for model in request_models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in schema.pop("$defs", {}).items():
                    components.setdefault(name, definition)
                components[model.__name__] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def service_state(app: FastAPI) -> ServiceState:
    """The :class:`ServiceState` of an app built by :func:`create_app`."""
    state = app.state.service
    assert isinstance(state, ServiceState)
    return state
