"""The FastAPI application: wiring only.

:func:`create_app` builds the :class:`~service.runtime.ServiceRuntime` (model, batcher, metrics,
lifecycle), serves the routes of one router per concern from ``service.api``, and installs the
middleware, the error handlers and the OpenAPI document. The model starts loading when the app's
lifespan starts.

Routes reach the runtime through ``request.app.state.runtime`` (``service.api.requests.runtime_of``)
and check the API key with a plain call, because a FastAPI dependency is solved per request:
``python -m benchmarks.routing_cost`` measures +1.0 us CPU per request for the attribute read
against +8.5 us for an async ``Depends`` and +106 us for a sync one (thread pool). For the same
reason the routers' routes are passed to the app rather than added with ``include_router``
(+10 us per request in this FastAPI). ``python -m service`` answers the inference routes without
the app at all (``service.inference_protocol``); their FastAPI routes serve in-process clients and
other ASGI servers, with the same handlers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import schemas
from service.access_log import AccessMiddleware
from service.api import docs, health, inference, metadata, operations, predict
from service.api_key import ApiKeyGuard
from service.contract import SHUTDOWN
from service.errors import install_error_handlers
from service.metrics import ServiceMetrics
from service.runtime import BODY_TIMEOUT_S, ModelLoader, ServiceRuntime, default_model_loader
from service.settings import Settings

#: One router per concern; their routes are the app's routes, in this order.
_ROUTERS = (health, metadata, inference, predict, operations)

_DESCRIPTION = (
    "A PyTorch model behind the Open Inference Protocol v2 (KServe / Triton REST, with the "
    "binary tensor data extension), plus a simple /predict route. Errors are always "
    '`{"error": "..."}`.'
)


def create_app(
    settings: Settings,
    *,
    api_key: str | None = None,
    loader: ModelLoader | None = None,
    on_fatal: Callable[[], None] | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> FastAPI:
    """Build the service app; the model starts loading when the app's lifespan starts."""
    runtime = ServiceRuntime(
        settings=settings,
        loader=loader or default_model_loader(settings),
        api_key=ApiKeyGuard(api_key),
        metrics=ServiceMetrics(model=settings.model_name),
        on_fatal=on_fatal,
        body_timeout_s=body_timeout_s,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        yield
        await asyncio.to_thread(runtime.stop, SHUTDOWN.drain_seconds)

    app = FastAPI(
        title=metadata.SERVER_NAME,
        version=metadata.SERVER_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
        # Prometheus and the JSON access log are this service's telemetry; FastAPI's OpenTelemetry
        # hooks would only add a per-request check that nothing is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # The routers' routes themselves, not include_router(): FastAPI resolves an included
        # router per request (+4 to +24 us CPU per request on the probes, metadata and 404s).
        routes=[route for module in _ROUTERS for route in module.router.routes],
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(AccessMiddleware, metrics=runtime.metrics, draining=lambda: runtime.draining)
    docs.install_openapi(
        app, (schemas.InferRequestBody, schemas.PredictRequest), api_key=runtime.api_key.enabled
    )
    return app


def service_runtime(app: FastAPI) -> ServiceRuntime:
    """The :class:`ServiceRuntime` of an app built by :func:`create_app`."""
    runtime = app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    return runtime
