"""What the inference routes share: the call they answer, the API key, the body, the batcher.

An inference route is written once, against :class:`InferenceCall` (the request's headers and a
way to read its body), and answers an :class:`Answer` or raises :class:`ApiError`. Two transports
carry it: ``service.inference_protocol`` serves it straight from the HTTP protocol (what
``python -m service`` runs), and the FastAPI routes serve it over ASGI (in-process clients, other
ASGI servers, and ``/docs``). Everything here is a plain call on the hot path, not a FastAPI
dependency (see ``runtime_of``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from fastapi import Request
from fastapi.responses import Response

from service.batching import BatcherClosedError, BatchFailedError, QueueFullError
from service.contract import API_KEY_HEADER
from service.errors import (
    InferenceError,
    NotReadyError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
)
from service.runtime import ServiceRuntime

Inputs = dict[str, np.ndarray]
_Decoded = TypeVar("_Decoded")

_API_KEY_HEADER = API_KEY_HEADER.lower()

#: Reads the request body: ``(limit in bytes, timeout in seconds) -> body``; raises 413 past the
#: limit and 408 when the body stops arriving.
BodyReader = Callable[[int, float], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class InferenceCall:
    """One inference request as the routes see it, whichever transport carried it.

    ``headers`` is looked up with lower-case names only (Starlette's ``Headers`` and a plain dict
    of lower-cased names both answer that).
    """

    headers: Mapping[str, str]
    read_body: BodyReader
    #: Whether no other request is in progress anywhere in the server right now, so this one may
    #: run its batch on the event loop (``DynamicBatcher``'s lone requests). The ASGI routes
    #: cannot see other connections' requests, so by default: never.
    alone: Callable[[], bool] = field(default=lambda: False)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: status 200 with this body, content type and extra headers."""

    body: bytes
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


def render_json(document: object) -> bytes:
    """``document`` as compact UTF-8 JSON (what Starlette's ``JSONResponse`` renders).

    NaN and infinity raise ``ValueError``: JSON cannot carry them.
    """
    return json.dumps(
        document, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def runtime_of(request: Request) -> ServiceRuntime:
    """The app's runtime, set by ``create_app``.

    A plain attribute read, not ``Depends``: a dependency makes FastAPI solve it per request,
    which costs more than this lookup (figures in the ``service.app`` docstring).
    """
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def asgi_call(request: Request) -> InferenceCall:
    """The :class:`InferenceCall` of a request that came in over ASGI."""

    async def read(limit: int, timeout_s: float) -> bytes:
        return await read_streamed_body(request, limit, timeout_s)

    return InferenceCall(request.headers, read)


def to_response(answer: Answer) -> Response:
    """The Starlette response of an :class:`Answer`."""
    return Response(answer.body, media_type=answer.media_type, headers=dict(answer.headers))


def authorize(runtime: ServiceRuntime, headers: Mapping[str, str]) -> None:
    """Raise 401 unless the request carries the API key (when one is configured).

    A plain call, not a FastAPI dependency: dependency solving costs more than a small model's
    forward pass (figures in the ``service.app`` docstring).
    """
    runtime.api_key.check(headers.get(_API_KEY_HEADER), headers.get("authorization"))


def check_declared_body(headers: Mapping[str, str], limit: int) -> None:
    """Refuse, before reading it, a body declared too big (413) or compressed (415)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"the body is {int(declared)} bytes; this server takes at most {limit} "
            "(MAX_REQUEST_BYTES)"
        )
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r:.40} is not supported; send the body uncompressed"
        )


def body_too_large(limit: int) -> PayloadTooLargeError:
    """The 413 of a body that turned out bigger than ``limit`` while it streamed in."""
    return PayloadTooLargeError(
        f"the body is over {limit} bytes, the most this server takes (MAX_REQUEST_BYTES)"
    )


def body_timed_out(timeout_s: float, received: int) -> RequestTimeoutError:
    """The 408 of a body that stopped arriving."""
    return RequestTimeoutError(
        f"the request body did not arrive within {timeout_s:g} s ({received} bytes received)"
    )


async def read_streamed_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body of an ASGI request, refusing (413) anything over ``limit`` bytes as it streams.

    A body that stops arriving is a 408 after ``timeout_s``, so a stalled client cannot hold a
    request (and a place in a forming batch) open forever.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise body_too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise body_timed_out(timeout_s, size) from None
    return b"".join(chunks)


def require_media_type(headers: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    """Raise 415 when the request declares a Content-Type the route does not read."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type and media_type not in allowed:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media_type!r:.60} is not supported here; use {' or '.join(allowed)}"
        )


async def run_batched(
    runtime: ServiceRuntime,
    call: InferenceCall,
    decode: Callable[[bytes], tuple[_Decoded, Inputs]],
) -> tuple[_Decoded, Inputs]:
    """Read and decode the body, run its rows in the next batch; batcher errors become 4xx/5xx.

    The request announces itself to the batcher before its body is read, so a batch that is
    forming waits for it (``DynamicBatcher.announce``), and a full queue refuses it before its
    body is read or decoded.
    """
    batcher = runtime.batcher
    assert batcher is not None  # runtime.served_model() answered 503 before that
    settings = runtime.settings
    check_declared_body(call.headers, settings.max_request_bytes)
    try:
        with batcher.announce() as arrival:
            body = await call.read_body(settings.max_request_bytes, runtime.body_timeout_s)
            decoded, inputs = decode(body)
            return decoded, await arrival.run(inputs, may_run_inline=call.alone())
    except BatcherClosedError as exc:
        raise NotReadyError(str(exc)) from None
    except QueueFullError as exc:
        raise runtime.overloaded(exc) from None
    except BatchFailedError as exc:
        raise InferenceError(f"inference failed for the batch of this request: {exc}") from None
