"""Fixtures of the service tests: small TorchScript models, settings and an in-process app.

The models are built here (a few KB, in a second) so the HTTP tests do not wait for the bundled
model's training; ``test_bundled_model.py`` style checks use ``packaged_model_dir`` instead.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.app import create_app, service_state
from service.settings import Settings
from service.signature import PLATFORM_TORCHSCRIPT, ModelSignature, TensorSpec

FEATURES = 64
CLASSES = 10
LABELS = tuple(str(digit) for digit in range(CLASSES))


class _Classifier(torch.nn.Module):
    """pixels [n, 64] -> class probabilities [n, 10], through ``depth`` hidden layers."""

    def __init__(self, hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = [torch.nn.Linear(FEATURES, hidden), torch.nn.ReLU()]
        for _ in range(depth):
            layers += [torch.nn.Linear(hidden, hidden), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(hidden, CLASSES))
        self.body = torch.nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.body(pixels / 16.0), dim=1)


def write_model_dir(target: Path, *, name: str, hidden: int, depth: int) -> Path:
    """Script a seeded classifier into ``target`` with its signature.json."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream but remains a platform the loader serves.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.script(_Classifier(hidden, depth).eval())
    target.mkdir(parents=True, exist_ok=True)
    artifact = target / "model.ts"
    module.save(str(artifact))
    ModelSignature(
        name=name,
        version="1",
        platform=PLATFORM_TORCHSCRIPT,
        artifact=artifact.name,
        sha256=hashlib.sha256(artifact.read_bytes()).hexdigest(),
        inputs=(TensorSpec("pixels", "FP32", (-1, FEATURES)),),
        outputs=(TensorSpec("probabilities", "FP32", (-1, CLASSES)),),
        labels=LABELS,
        metrics={},
    ).write(target)
    return target


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop uvicorn serves the app on."""
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fast digits-shaped model (one small hidden layer)."""
    return write_model_dir(tmp_path_factory.mktemp("tiny-model"), name="digits", hidden=32, depth=0)


@pytest.fixture(scope="session")
def slow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits-shaped model whose batch of 32 takes tens of milliseconds on one CPU thread."""
    return write_model_dir(
        tmp_path_factory.mktemp("slow-model"), name="digits", hidden=1024, depth=6
    )


def settings_for(model_dir: Path, **overrides: object) -> Settings:
    """Settings for an in-process app serving ``model_dir`` on the CPU."""
    base = Settings(model_uri=str(model_dir), device="cpu")
    return replace(base, **overrides)  # type: ignore[arg-type]


def wait_ready(app: FastAPI, timeout: float = 30.0) -> None:
    """Block until the app's model is loaded and warm (or fail the test)."""
    state = service_state(app)
    deadline = time.monotonic() + timeout
    while not state.ready:
        if state.load_error is not None:
            pytest.fail(f"model failed to load: {state.load_error}")
        if time.monotonic() > deadline:
            pytest.fail("model did not become ready in time")
        time.sleep(0.01)


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(tiny_model_dir: Path) -> Iterator[AppFactory]:
    """Build in-process apps (lifespan running, model ready); each is closed after the test."""
    clients: list[TestClient] = []

    def build(*, api_key: str | None = None, wait: bool = True, **overrides: object) -> TestClient:
        settings = settings_for(tiny_model_dir, **overrides)
        app = create_app(settings, api_key=api_key)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        if wait:
            wait_ready(app)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    """An in-process app with the tiny model loaded and no API key."""
    return make_client()
