"""A direct path for the inference routes, past FastAPI's router and endpoint machinery.

Profiled under load (py-spy, digits model, 64 connections), the event loop spent about as much
time in FastAPI's per-request layers between the access middleware and our handler (exception
middleware, exit-stack middleware, route matching over every route, dependency solving, response
wrapping) as in the handler itself. The inference handlers need none of it: they take the raw
``Request``, raise :class:`ApiError` for every client error, and return a finished ``Response``.

:class:`InferenceFastPath` sits just inside the access middleware. ``POST /predict`` and
``POST /v2/models/{name}[/versions/{version}]/infer`` go straight to their handlers; everything
else (health, metadata, metrics, docs, 404s, other methods) goes on to FastAPI unchanged. The
FastAPI routes for the inference paths stay declared, so ``/docs`` still describes them.
Behaviour is the same on both paths: the route template in ``scope["route"]`` (for the metrics and
access log labels), ``{"error": ...}`` bodies for :class:`ApiError`, and anything unexpected
raised on to the server-error handler, which answers the usual JSON 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.contract import PATHS
from service.errors import ApiError, error_response

InferHandler = Callable[[Request, str, str | None], Awaitable[Response]]
PredictHandler = Callable[[Request], Awaitable[Response]]

_VERSIONED_INFER = PATHS.MODEL_METADATA + "/versions/{version}/infer"


@dataclass(frozen=True)
class RouteLabel:
    """What the access middleware reads from ``scope["route"]``: the route template."""

    path: str


_PREDICT_ROUTE = RouteLabel(PATHS.PREDICT)
_INFER_ROUTE = RouteLabel(PATHS.MODEL_INFER)
_VERSIONED_ROUTE = RouteLabel(_VERSIONED_INFER)


class InferenceFastPath:
    """ASGI middleware: serves the inference routes itself, passes everything else on."""

    def __init__(self, app: ASGIApp, infer: InferHandler, predict: PredictHandler) -> None:
        self.app = app
        self.infer = infer
        self.predict = predict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        request = Request(scope, receive)
        if path == PATHS.PREDICT:
            scope["route"] = _PREDICT_ROUTE
            call: Awaitable[Response] = self.predict(request)
        else:
            parts = path.split("/")
            # "", "v2", "models", name, "infer" | "", "v2", "models", name, "versions", v, "infer"
            if len(parts) == 5 and parts[1:3] == ["v2", "models"] and parts[4] == "infer":
                name, version, scope["route"] = parts[3], None, _INFER_ROUTE
            elif (
                len(parts) == 7
                and parts[1:3] == ["v2", "models"]
                and parts[4] == "versions"
                and parts[6] == "infer"
            ):
                name, version, scope["route"] = parts[3], parts[5], _VERSIONED_ROUTE
            else:
                await self.app(scope, receive, send)
                return
            if not name or version == "":
                await self.app(scope, receive, send)  # FastAPI's own 404
                return
            call = self.infer(request, name, version)
        try:
            response = await call
        except ApiError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        # What Response.__call__ sends for a plain (not streamed) response, without its extra
        # awaits and checks: the handlers only ever return plain responses with no background.
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})
