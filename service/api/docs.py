"""The OpenAPI document (``/docs``): error bodies, the hand-decoded request bodies, security.

The inference routes read their bodies themselves (numpy, not pydantic), so FastAPI cannot see
their schemas; these helpers declare them. Which routes need the API key is known only when the
app is built, so :func:`install_openapi` adds the security requirement to the routes marked
:func:`secured`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from service import schemas
from service.contract import API_KEY_HEADER
from service.v2_codec import BINARY_CONTENT_TYPE, BINARY_HEADER, JSON_CONTENT_TYPE

#: OpenAPI security schemes of the inference routes when an API key is configured.
SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
    "BearerToken": {"type": "http", "scheme": "bearer"},
}

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])
_SECURED: set[Callable[..., Any]] = set()


def secured(endpoint: _Endpoint) -> _Endpoint:
    """Mark a route's endpoint as needing the API key (in the document, when one is set)."""
    _SECURED.add(endpoint)
    return endpoint


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that can answer ``{"error": ...}`` with these statuses."""
    return {status: {"model": schemas.ErrorResponse} for status in statuses}


def request_body(model: type[BaseModel], *, binary: bool = False) -> dict[str, Any]:
    """``openapi_extra=`` describing a body the route decodes itself as ``model`` (JSON).

    ``binary``: the body may also be the v2 binary tensor data extension.
    """
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


def install_openapi(
    app: FastAPI,
    request_models: Sequence[type[BaseModel]],
    *,
    api_key: bool,
) -> None:
    """Add the hand-decoded bodies' schemas (and, with ``api_key``, the security) to /docs."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            sections: dict[str, Any] = document.setdefault("components", {})
            if api_key:
                sections["securitySchemes"] = SECURITY_SCHEMES
                _require_key(app, document)
            components: dict[str, Any] = sections.setdefault("schemas", {})
            for model in request_models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in schema.pop("$defs", {}).items():
                    components.setdefault(name, definition)
                components[model.__name__] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _require_key(app: FastAPI, document: dict[str, Any]) -> None:
    requirement: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
    for route in app.routes:
        if isinstance(route, APIRoute) and route.endpoint in _SECURED:
            operations = document["paths"][route.path_format]
            for method in route.methods or ():
                operations[method.lower()]["security"] = requirement
