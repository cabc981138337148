"""uvicorn's HTTP protocol, with the inference routes answered by the protocol itself.

Profiled under load (py-spy, digits model, 64 keep-alive connections), the event loop spent more
time carrying a request through ASGI than in our handler: the scope and message dicts, the
``receive``/``send`` coroutines and their checks (two regular expressions per response header),
the middleware layers and Starlette's ``Request`` and ``Response`` objects, and two socket writes
per response (headers, then body). The inference routes need none of it: their handlers take the
request's headers and body and return a finished body (``service.api.requests``).

:class:`InferenceProtocol` is uvicorn's httptools protocol with one change. When a request's
headers are in and it is ``POST /predict`` or ``POST /v2/models/{name}[/versions/{version}]/infer``,
the protocol runs :meth:`InferenceEndpoints.serve` instead of the ASGI app: it waits for the body
on uvicorn's own request state (so flow control, ``Expect: 100-continue``, pipelining, keep-alive
timeouts and uvicorn's graceful shutdown all stay uvicorn's), calls the same handler the FastAPI
route calls, and writes the status line, headers and body in one ``write``. Every other request
(probes, metadata, metrics, docs, errors of routing) goes to the ASGI app unchanged.

What a request gets is the same on both paths, and ``tests/service/api`` runs every route test
on both: the ``{"error": ...}`` bodies and their headers, the ``X-Request-ID`` echo, the metrics
series with the route template, the JSON access-log line, ``Connection: close`` while draining,
413 before and while the body streams, 408 when it stalls, a JSON 500 for anything unexpected.
A client that goes away before its answer is logged with status 499 (nginx's "client closed
request"); nothing is written to its closed connection.

The override point is uvicorn's ``HttpToolsProtocol._start_asgi_task`` (uvicorn is pinned in
``requirements/constraints.txt``; ``tests/service/test_inference_protocol.py`` fails if an
upgrade changes what it relies on).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, cast

from uvicorn._types import ASGI3Application
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from service.access_log import AccessRecorder, incoming_request_id, new_request_id
from service.api import inference, predict
from service.api.requests import (
    Answer,
    InferenceCall,
    body_timed_out,
    body_too_large,
    render_json,
)
from service.contract import PATHS, REQUEST_ID_HEADER
from service.errors import ApiError
from service.json_logging import request_id_var
from service.runtime import ServiceRuntime
from service.v2_codec import JSON_CONTENT_TYPE

logger = logging.getLogger("service.errors")

#: Route templates, as the FastAPI routes declare them (metrics and log labels).
PREDICT_ROUTE = PATHS.PREDICT
INFER_ROUTE = PATHS.MODEL_INFER
VERSIONED_INFER_ROUTE = PATHS.MODEL_METADATA + "/versions/{version}/infer"

#: Access-log status of a request whose client closed the connection before its answer.
CLIENT_CLOSED_REQUEST = 499

_REQUEST_ID_PREFIX = b"\r\n" + REQUEST_ID_HEADER.lower().encode("latin-1") + b": "


def match_inference_route(path: str) -> tuple[str, str | None, str | None] | None:
    """``(route template, model name, version)`` of an inference path, else ``None``.

    The model name is ``None`` for ``/predict``. Paths with an empty name or version are left to
    FastAPI, which answers them 404 as it always has.
    """
    if path == PREDICT_ROUTE:
        return PREDICT_ROUTE, None, None
    parts = path.split("/")
    # "", "v2", "models", name, "infer" | "", "v2", "models", name, "versions", v, "infer"
    if len(parts) == 5 and parts[1] == "v2" and parts[2] == "models" and parts[4] == "infer":
        if parts[3]:
            return INFER_ROUTE, parts[3], None
    elif (
        len(parts) == 7
        and parts[1] == "v2"
        and parts[2] == "models"
        and parts[4] == "versions"
        and parts[6] == "infer"
        and parts[3]
        and parts[5]
    ):
        return VERSIONED_INFER_ROUTE, parts[3], parts[5]
    return None


class _ClientGoneError(Exception):
    """The connection closed before the request's body or its answer could go through."""


class InferenceEndpoints:
    """Serves inference requests on uvicorn's request state, without ASGI."""

    def __init__(self, runtime: ServiceRuntime, recorder: AccessRecorder) -> None:
        self.runtime = runtime
        self.recorder = recorder
        #: The server's request tasks (uvicorn's ``server_state.tasks``, shared by every
        #: connection): set by the first protocol instance.
        self.tasks: set[asyncio.Task[None]] = set()

    def alone(self) -> bool:
        """Whether the request being served is the only one the server has (see batching)."""
        return len(self.tasks) <= 1

    def refuse_if_full(self, cycle: RequestResponseCycle, route: str) -> bool:
        """Answer 503 at once, without a task, when the batch queue is full; else ``False``.

        Under overload most requests are refusals, and each one the event loop spends time on
        delays the accepted ones: so a refusal is decided from the headers alone, before
        anything else is parsed or checked (as a load shedder in front of the service would),
        and written from here. It still gets its request id, metrics and access-log line.
        """
        batcher = self.runtime.batcher
        if batcher is None or batcher.closed:
            return False
        full = batcher.full_error()
        if full is None:
            return False
        started = self.recorder.begin()
        raw_headers = cast(list[tuple[bytes, bytes]], cycle.scope["headers"])
        request_id = incoming_request_id(raw_headers) or new_request_id()
        token = request_id_var.set(request_id)
        status = CLIENT_CLOSED_REQUEST
        try:
            refusal = self.runtime.overloaded(full)
            body = render_json({"error": refusal.message})
            self._write(cycle, refusal.status, JSON_CONTENT_TYPE, body, refusal.headers, request_id)
            status = refusal.status
        except _ClientGoneError:
            pass  # nothing to answer: the connection is gone
        finally:
            self.recorder.end(route, "POST", status, started)
            request_id_var.reset(token)
        return True

    async def serve(
        self,
        cycle: RequestResponseCycle,
        route: str,
        name: str | None,
        version: str | None,
    ) -> None:
        """Answer the request of ``cycle`` (its headers are in; its body may still arrive)."""
        # uvicorn's httptools protocol collects them in a list (on_header).
        raw_headers = cast(list[tuple[bytes, bytes]], cycle.scope["headers"])
        request_id = incoming_request_id(raw_headers) or new_request_id()
        request_id_var.set(request_id)  # this task's own context: it ends with the task
        started = self.recorder.begin()
        status = 500
        try:
            answered = await self._answer(cycle, raw_headers, name, version)
            status, media_type, body, headers = answered
            self._write(cycle, status, media_type, body, headers, request_id)
        except _ClientGoneError:
            status = CLIENT_CLOSED_REQUEST
        except asyncio.CancelledError:
            if not cycle.disconnected:
                raise  # uvicorn's shutdown gave up on it: a 500 in the log
            status = CLIENT_CLOSED_REQUEST  # connection_lost cancelled it: the end of it
        finally:
            self.recorder.end(route, "POST", status, started)

    async def _answer(
        self,
        cycle: RequestResponseCycle,
        raw_headers: list[tuple[bytes, bytes]],
        name: str | None,
        version: str | None,
    ) -> tuple[int, str, bytes, Any]:
        # Starlette's Headers.get answers the first of repeated headers: so does this dict.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(raw_headers)}
        call = InferenceCall(
            headers, lambda limit, timeout_s: _read_body(cycle, limit, timeout_s), self.alone
        )
        try:
            answer: Answer = await (
                predict.serve(self.runtime, call)
                if name is None
                else inference.serve(self.runtime, call, name, version)
            )
        except ApiError as exc:
            return exc.status, JSON_CONTENT_TYPE, render_json({"error": exc.message}), exc.headers
        except _ClientGoneError:
            raise
        except Exception as exc:
            # As the ASGI path's handler: a traceback for operators, no details for the client.
            logger.exception("unhandled error on %s", cycle.scope["path"])
            message = f"internal error ({type(exc).__name__}); see the server logs"
            return 500, JSON_CONTENT_TYPE, render_json({"error": message}), None
        return 200, answer.media_type, answer.body, answer.headers

    def _write(
        self,
        cycle: RequestResponseCycle,
        status: int,
        media_type: str,
        body: bytes,
        headers: Any,
        request_id: str,
    ) -> None:
        """Write the whole response at once and hand the connection back to the protocol."""
        if cycle.disconnected:
            raise _ClientGoneError
        # From SIGTERM on, every answer closes its connection (see service.__main__).
        keep_alive = cycle.keep_alive and not self.runtime.draining
        parts = [STATUS_LINE[status]]
        for header_name, value in cycle.default_headers:
            parts += (header_name, b": ", value, b"\r\n")
        parts += (
            b"content-type: ",
            media_type.encode("latin-1"),
            b"\r\ncontent-length: ",
            str(len(body)).encode("latin-1"),
            _REQUEST_ID_PREFIX,
            request_id.encode("latin-1"),
            b"\r\n",
        )
        if headers:
            # Only the handlers' own headers (Retry-After, WWW-Authenticate, the binary
            # extension's length): names and values are ours, never the client's.
            for header_name, value in headers.items():
                parts += (header_name.lower().encode("latin-1"), b": ", value.encode("latin-1"))
                parts.append(b"\r\n")
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        cycle.response_started = True
        cycle.transport.write(b"".join(parts))
        cycle.response_complete = True
        cycle.message_event.set()
        if not keep_alive:
            cycle.keep_alive = False
            cycle.transport.close()
        cycle.on_response()


async def _read_body(cycle: RequestResponseCycle, limit: int, timeout_s: float) -> bytes:
    """The body of ``cycle``'s request: 413 past ``limit`` bytes, 408 after ``timeout_s``."""
    if cycle.more_body:  # usually not: a small body comes in the headers' packet
        if cycle.waiting_for_100_continue and not cycle.transport.is_closing():
            cycle.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        try:
            async with asyncio.timeout(timeout_s):
                while cycle.more_body and not cycle.disconnected:
                    if len(cycle.body) > limit:
                        raise body_too_large(limit)
                    cycle.message_event.clear()
                    cycle.flow.resume_reading()  # uvicorn pauses it past 64 KiB buffered
                    await cycle.message_event.wait()
        except TimeoutError:
            raise body_timed_out(timeout_s, len(cycle.body)) from None
    if cycle.disconnected:
        raise _ClientGoneError
    if len(cycle.body) > limit:
        raise body_too_large(limit)
    body = bytes(cycle.body)
    cycle.body = bytearray()
    return body


class InferenceProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; inference requests are served by :attr:`endpoints`."""

    #: Set on the subclass :func:`protocol_for` makes (uvicorn builds protocols by class).
    endpoints: ClassVar[InferenceEndpoints]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # One set for the whole server: every connection's request tasks.
        self.endpoints.tasks = server_state.tasks
        # The inference request this connection is serving (pipelined ones start one by one).
        self._serving: asyncio.Task[None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, then cancel the inference request whose client went away.

        Its answer can no longer be delivered: cancelling it withdraws it from the batch queue
        (``DynamicBatcher`` skips it unrun), so a client that gives up (a timeout, a retry
        elsewhere) does not leave a forward pass and a queue place behind.
        """
        super().connection_lost(exc)
        serving = self._serving
        if serving is not None and not serving.done():
            serving.cancel()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        scope = cycle.scope
        # ``app`` is not ours when uvicorn answers for it (its concurrency limit's 503).
        if scope["method"] == "POST" and app is self.app:
            matched = match_inference_route(scope["path"])
            if matched is not None:
                if self.endpoints.refuse_if_full(cycle, matched[0]):
                    return
                task = self.loop.create_task(self.endpoints.serve(cycle, *matched))
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
                self._serving = task
                return
        super()._start_asgi_task(cycle, app)


def protocol_for(runtime: ServiceRuntime) -> type[InferenceProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)`` for an app's ``runtime``."""
    endpoints = InferenceEndpoints(runtime, AccessRecorder(runtime.metrics))
    return type("InferenceProtocol", (InferenceProtocol,), {"endpoints": endpoints})
