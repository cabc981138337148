"""What the routes share about a request: the runtime, the API key, the body, the batcher.

Everything here is a plain call on the hot path, not a FastAPI dependency (see ``runtime_of``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from fastapi import Request

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


def runtime_of(request: Request) -> ServiceRuntime:
    """The app's runtime, set by ``create_app``.

    A plain attribute read, not ``Depends``: a dependency makes FastAPI solve it per request,
    which costs more than this lookup (figures in the ``service.app`` docstring).
    """
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def authorize(runtime: ServiceRuntime, request: Request) -> None:
    """Raise 401 unless the request carries the API key (when one is configured).

    A plain call, not a FastAPI dependency: dependency solving costs more than a small model's
    forward pass (figures in the ``service.app`` docstring).
    """
    headers = request.headers
    runtime.api_key.check(headers.get(API_KEY_HEADER), headers.get("authorization"))


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
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


def require_media_type(request: Request, allowed: tuple[str, ...]) -> None:
    """Raise 415 when the request declares a Content-Type the route does not read."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type and media_type not in allowed:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media_type!r:.60} is not supported here; use {' or '.join(allowed)}"
        )


async def run_batched(
    runtime: ServiceRuntime,
    request: Request,
    decode: Callable[[bytes], tuple[_Decoded, Inputs]],
) -> tuple[_Decoded, Inputs]:
    """Read and decode the body, run its rows in the next batch; batcher errors become 4xx/5xx.

    The request announces itself to the batcher before its body is read, so a batch that is
    forming waits for it (``DynamicBatcher.announce``).
    """
    batcher = runtime.batcher
    assert batcher is not None  # runtime.served_model() answered 503 before that
    try:
        with batcher.announce() as arrival:
            body = await read_body(
                request, runtime.settings.max_request_bytes, runtime.body_timeout_s
            )
            decoded, inputs = decode(body)
            return decoded, await arrival.run(inputs)
    except BatcherClosedError as exc:
        raise NotReadyError(str(exc)) from None
    except QueueFullError as exc:
        raise runtime.overloaded(exc) from None
    except BatchFailedError as exc:
        raise InferenceError(f"inference failed for the batch of this request: {exc}") from None
