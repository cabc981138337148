"""Schema-driven fuzzing: requests generated from the OpenAPI document never get a 5xx.

Schemathesis reads ``/openapi.json`` from the in-process app (model loaded, no network) and sends
valid and invalid requests to every route. Each answer must be documented, must not be a server
error, and must match its documented schema (so every error is ``{"error": "..."}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app import create_app, service_runtime
from tests.service.conftest import settings_for

EXAMPLES_PER_ROUTE = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_app(tiny_model_dir: Path) -> Iterator[FastAPI]:
    # Small limits so generated bodies also reach the 413 path.
    app = create_app(settings_for(tiny_model_dir, max_batch_size=4, max_request_bytes=4096))
    state = service_runtime(app)
    state.load()  # the ASGI test transport does not run the lifespan
    assert state.ready, state.load_error
    yield app
    state.stop(5)


def without_lifespan(app: ASGIApp) -> ASGIApp:
    """The app minus its lifespan: the test transport would otherwise run start-up and shutdown
    (which drains the server) around every single request."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    return serve


def operations(app: FastAPI) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", without_lifespan(app))
    return [result.ok() for result in schema.get_all_operations()]


# Schemathesis' own pytest integration (lazy fixtures) does not run on pytest 9, so each route's
# strategy is drawn with hypothesis directly; one test per generation mode.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.timeout(300)
def test_no_generated_request_gets_a_server_error(
    fuzzed_app: FastAPI, mode: GenerationMode
) -> None:
    checked = []
    for operation in operations(fuzzed_app):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            call()
        except Unsatisfiable:
            # Negative mode finds nothing to break in a route whose only inputs are free strings
            # (like GET /v2/models/{name}); the body routes are asserted below.
            assert mode is GenerationMode.NEGATIVE
            continue
        checked.append(operation.label)
    assert "POST /v2/models/{name}/infer" in checked
    assert "POST /predict" in checked
    assert service_runtime(fuzzed_app).ready  # the fuzzing ran against a ready server throughout
