"""Small TorchScript models in model directories, built in a second for the service tests.

Shared by tests/service (in-process app) and tests/e2e/process (real server processes) through
their conftest.py files; ``packaged_model_dir`` (tests/conftest.py) is the bundled model.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest
import torch

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
