"""A compute-heavy benchmark model, packaged in the same model-directory format as the bundled one.

The bundled digits model is so small that a server's HTTP and JSON work dwarfs its forward pass,
which says little about how well the server keeps a busy model fed. This model takes the same
input (``pixels`` FP32 ``[-1, 64]``, raw 0..16 values) and gives the same output
(``probabilities`` FP32 ``[-1, 10]``), so every server, route and request body of the benchmark
works unchanged, but a forward pass costs tens of milliseconds: a small residual CNN over the 8x8
image with wide 3x3 convolutions. Its weights are random (seeded): its predictions mean nothing,
only its cost matters.

    python -m benchmarks.heavy_model --out build/heavy-model

packages it and prints how long a forward pass takes at batch 1, 8 and 32 on this machine.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
import warnings
from pathlib import Path
from typing import Final

import torch
from torch import nn

from service.signature import PLATFORM_TORCHSCRIPT, ModelSignature, TensorSpec

MODEL_NAME: Final = "heavy"
MODEL_VERSION: Final = "1"
ARTIFACT: Final = "model.ts"
#: Width and depth of the CNN, chosen so a forward pass of batch 32 takes >= 20 ms here.
CHANNELS: Final = 64
BLOCKS: Final = 4
PIXELS: Final = 64
CLASSES: Final = 10
PIXEL_MAX: Final = 16.0
WEIGHT_SEED: Final = 20261125
#: The issue's definition of compute-heavy: a forward pass of batch 32 takes at least this long.
HEAVY_FORWARD_MS: Final = 20.0


class _ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (the building block of a ResNet)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class HeavyNet(nn.Module):
    """Residual CNN over the 8x8 digit image: ``[n, 64]`` pixels in, ``[n, 10]`` softmax out."""

    def __init__(self, channels: int = CHANNELS, blocks: int = BLOCKS) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.blocks = nn.Sequential(*[_ResidualBlock(channels) for _ in range(blocks)])
        self.head = nn.Linear(channels, CLASSES)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # A literal, not PIXEL_MAX: TorchScript cannot read module-level globals.
        x = (pixels / 16.0).view(-1, 1, 8, 8)
        x = self.blocks(torch.relu(self.stem(x)))
        return torch.softmax(self.head(x.mean(dim=(2, 3))), dim=-1)


def signature(sha256: str) -> ModelSignature:
    """The signature of the heavy model: the digits model's tensors, a different name."""
    return ModelSignature(
        name=MODEL_NAME,
        version=MODEL_VERSION,
        platform=PLATFORM_TORCHSCRIPT,
        artifact=ARTIFACT,
        sha256=sha256,
        inputs=(TensorSpec("pixels", "FP32", (-1, PIXELS)),),
        outputs=(TensorSpec("probabilities", "FP32", (-1, CLASSES)),),
        labels=tuple(str(digit) for digit in range(CLASSES)),
    )


def package_heavy_model(out: Path, channels: int = CHANNELS, blocks: int = BLOCKS) -> Path:
    """Script the model with seeded weights into ``out`` (model.ts + signature.json)."""
    if channels < 1 or blocks < 0:
        raise ValueError(f"channels must be >= 1 and blocks >= 0, got {channels} and {blocks}")
    torch.manual_seed(WEIGHT_SEED)
    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated, yet it is one of the two formats the server
        # loads, and the one whose forward releases the GIL for the whole graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(HeavyNet(channels, blocks).eval())
    out.mkdir(parents=True, exist_ok=True)
    artifact = out / ARTIFACT
    scripted.save(str(artifact))  # type: ignore[no-untyped-call]
    signature(hashlib.sha256(artifact.read_bytes()).hexdigest()).write(out)
    return out


def forward_ms(model: torch.jit.ScriptModule, batch: int, seconds: float = 1.0) -> float:
    """Median wall time of one forward pass of ``batch`` random rows, in milliseconds."""
    x = torch.rand(batch, PIXELS) * PIXEL_MAX
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Package the heavy model and print its forward time; exit 1 if it is not heavy enough."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads to time")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    out = package_heavy_model(args.out)
    torch.set_num_threads(args.threads)
    model = torch.jit.load(str(out / ARTIFACT))  # type: ignore[no-untyped-call]
    timings = {batch: forward_ms(model, batch) for batch in (1, 8, 32)}
    shown = ", ".join(f"batch {b}: {ms:.1f} ms" for b, ms in timings.items())
    print(f"packaged {out}; forward ({args.threads} torch thread(s)) {shown}")
    if timings[32] < HEAVY_FORWARD_MS:
        print(f"not compute-heavy: batch 32 takes {timings[32]:.1f} ms < {HEAVY_FORWARD_MS} ms")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
