"""Client-facing errors and the handlers that turn every failure into ``{"error": "..."}``.

Routes raise :class:`ApiError` subclasses with a message that says what was wrong; FastAPI's own
validation, 404 and 405 answers are re-shaped the same way, so a client only ever parses one error
format. Anything unexpected becomes a 500 whose body names the exception type but not its details.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("service.errors")


class ApiError(Exception):
    """An error the client gets back as ``{"error": message}`` with ``status``."""

    status: ClassVar[int] = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class BadRequestError(ApiError):
    """The request is malformed or does not fit the model's signature."""

    status = 400


class UnauthorizedError(ApiError):
    """The route needs the API key and the request did not carry the right one."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFoundError(ApiError):
    """The model or route named in the request does not exist."""

    status = 404


class RequestTimeoutError(ApiError):
    """The request body stopped arriving before it was complete."""

    status = 408


class PayloadTooLargeError(ApiError):
    """The request body is bigger than ``MAX_REQUEST_BYTES``."""

    status = 413


class UnsupportedMediaTypeError(ApiError):
    """The request body's content type or encoding is not one the route reads."""

    status = 415


class InferenceError(ApiError):
    """The model raised while running the batch this request was part of."""

    status = 500


class NotReadyError(ApiError):
    """The model is still loading, failed to load, or the server is shutting down."""

    status = 503


class OverloadedError(ApiError):
    """The batch queue is full: retry after ``Retry-After`` seconds (or on another replica)."""

    status = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error body shape of the service."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no route {request.url.path!r}; see /docs for the routes this server has"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path!r}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors():
        where = ".".join(str(part) for part in item.get("loc", ()))
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return error_response(400, "invalid request: " + "; ".join(problems))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Logged with the traceback for operators; the client learns only that it was not its fault.
    logger.exception("unhandled error on %s", request.url.path)
    return error_response(500, f"internal error ({type(exc).__name__}); see the server logs")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app can answer with an ``{"error": "..."}`` body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
