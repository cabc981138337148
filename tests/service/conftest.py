"""Fixtures of the service tests: small TorchScript models, settings and an in-process app.

The models are built here (a few KB, in a second) so the HTTP tests do not wait for the bundled
model's training; ``test_bundled_model.py`` style checks use ``packaged_model_dir`` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.app import create_app, service_runtime
from service.settings import Settings
from tests.model_dirs import slow_model_dir, tiny_model_dir, write_model_dir
from tests.service.served import served_client

__all__ = ["slow_model_dir", "tiny_model_dir", "write_model_dir"]


def settings_for(model_dir: Path, **overrides: object) -> Settings:
    """Settings for an in-process app serving ``model_dir`` on the CPU."""
    fields: dict[str, object] = {"model_uri": str(model_dir), "device": "cpu", **overrides}
    return Settings.model_validate(fields)


def wait_ready(app: FastAPI, timeout: float = 30.0) -> None:
    """Block until the app's model is loaded and warm (or fail the test)."""
    state = service_runtime(app)
    deadline = time.monotonic() + timeout
    while not state.ready:
        if state.load_error is not None:
            pytest.fail(f"model failed to load: {state.load_error}")
        if time.monotonic() > deadline:
            pytest.fail("model did not become ready in time")
        time.sleep(0.01)


#: How a test reaches the app: Starlette's TestClient over ASGI, or real HTTP to the server
#: stack of ``python -m service``, whose protocol answers the inference routes itself.
TRANSPORTS = ("asgi", "http")


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per transport."""
    name: str = request.param
    return name


def open_client(app: FastAPI, transport: str) -> AbstractContextManager[httpx.Client]:
    """A client on ``app`` (its lifespan running) over ``transport``."""
    if transport == "http":
        return served_client(app)
    return TestClient(app, raise_server_exceptions=False)


AppFactory = Callable[..., httpx.Client]


@pytest.fixture
def make_client(tiny_model_dir: Path, transport: str) -> Iterator[AppFactory]:
    """Build apps (lifespan running, model ready) on ``transport``; closed after the test."""
    opened: list[AbstractContextManager[httpx.Client]] = []

    def build(
        *, api_key: str | None = None, wait: bool = True, **overrides: object
    ) -> httpx.Client:
        settings = settings_for(tiny_model_dir, **overrides)
        app = create_app(settings, api_key=api_key)
        manager = open_client(app, transport)
        client = manager.__enter__()
        opened.append(manager)
        if wait:
            wait_ready(app)
        return client

    yield build
    for manager in reversed(opened):
        manager.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppFactory) -> httpx.Client:
    """An app with the tiny model loaded and no API key, on each transport."""
    return make_client()
