"""Every request gets an id, a metrics sample and one JSON access-log line.

:class:`AccessMiddleware` does it for requests served over ASGI, written as plain ASGI (not
``BaseHTTPMiddleware``) because it runs on every request and must cost microseconds;
``service.inference_protocol`` does it for the inference requests it serves itself, through the
same :class:`AccessRecorder`. The route label is the matched route template
(``/v2/models/{name}/infer``), never the raw path, so neither the metrics nor the logs grow a
series per URL a client makes up.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.contract import LOG_FIELDS, PATHS, REQUEST_ID_HEADER
from service.json_logging import FIELDS, request_id_var
from service.metrics import ServiceMetrics

_PROBE_ROUTES = frozenset({PATHS.LIVE, PATHS.READY, PATHS.STARTUP, PATHS.MODEL_READY})

logger = logging.getLogger("service.access_log")

#: Route label of requests that matched no route.
UNMATCHED_ROUTE = "unmatched"
# A client-chosen id is echoed and logged only if it is short and plain; otherwise a new one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode()
# Request ids need to be unique, not secret: one os.urandom call per request (uuid4) measured
# ~0.5 ms here, so ids come from a PRNG seeded once from the OS.
_ids = random.Random()  # noqa: S311 - correlation ids, not secrets


def new_request_id() -> str:
    """A fresh 128-bit request id as 32 hex digits."""
    return f"{_ids.getrandbits(128):032x}"


def incoming_request_id(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The client's ``X-Request-ID``, if it is short and plain enough to echo and log."""
    for name, value in raw_headers:
        if name == _REQUEST_ID_HEADER_BYTES:
            text = value.decode("latin-1")
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


class AccessRecorder:
    """The metrics and the JSON access-log line of each answered request.

    Shared by :class:`AccessMiddleware` (requests served over ASGI) and
    ``service.inference_protocol`` (inference requests served by the HTTP protocol itself), so
    both write the same series and the same line.
    """

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        # prometheus_client's labels() takes a lock and builds a key on every call; the few
        # (route, method, status) children a server ever sees are looked up here instead.
        self._counted: dict[tuple[str, str, int], Callable[[], None]] = {}
        self._timed: dict[tuple[str, str], Callable[[float], None]] = {}

    def begin(self) -> float:
        """Count a request in flight; returns its start time for :meth:`end`."""
        self.metrics.in_flight.inc()
        return time.perf_counter()

    def end(self, route: str, method: str, status: int, started: float) -> None:
        """Count and time the answered request and write its access-log line."""
        latency = time.perf_counter() - started
        self.metrics.in_flight.dec()
        self._count(route, method, status)
        self._time(route, method, latency)
        # A 503 from a probe is the readiness signal doing its job (model loading, draining),
        # not a server error: logging it at ERROR would page someone at every pod start.
        is_probe = route in _PROBE_ROUTES
        logger.log(
            logging.ERROR if status >= 500 and not is_probe else logging.INFO,
            "request",
            extra={
                FIELDS: {
                    LOG_FIELDS.ROUTE: route,
                    "method": method,
                    LOG_FIELDS.STATUS: status,
                    LOG_FIELDS.LATENCY_MS: round(latency * 1000, 3),
                }
            },
        )

    def _count(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        inc = self._counted.get(key)
        if inc is None:
            inc = self._counted[key] = self.metrics.requests.labels(route, method, str(status)).inc
        inc()

    def _time(self, route: str, method: str, seconds: float) -> None:
        key = (route, method)
        observe = self._timed.get(key)
        if observe is None:
            observe = self._timed[key] = self.metrics.latency.labels(route, method).observe
        observe(seconds)


def _never() -> bool:
    return False


class AccessMiddleware:
    """Request id (accepted from ``X-Request-ID`` or generated), metrics and the access log.

    While ``draining()`` is true (from SIGTERM on) every response also carries
    ``Connection: close``, so keep-alive clients reconnect elsewhere instead of sending their next
    request on a connection the server is about to close.
    """

    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, draining: Callable[[], bool] = _never
    ) -> None:
        self.app = app
        self.recorder = AccessRecorder(metrics)
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request, measuring and logging it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope.get("headers", ())) or new_request_id()
        token = request_id_var.set(request_id)
        # If the app raises before answering, the outer error middleware answers 500.
        status = 500
        started = self.recorder.begin()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.draining():
                    headers = MutableHeaders(scope=message)
                    headers.append(REQUEST_ID_HEADER, request_id)
                    headers["connection"] = "close"
                else:
                    # Plain list concatenation: MutableHeaders costs more than the append.
                    message["headers"] = [
                        *message.get("headers", ()),
                        (_REQUEST_ID_HEADER_BYTES, request_id.encode("latin-1")),
                    ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route_obj = scope.get("route")
            route = getattr(route_obj, "path", None) or UNMATCHED_ROUTE
            self.recorder.end(route, scope["method"], status, started)
            request_id_var.reset(token)
