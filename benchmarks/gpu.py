"""GPU benchmark: a ResNet-50-sized CNN served on CUDA, against a bare CUDA forward loop.

    python -m benchmarks.gpu           # on a CUDA machine (~2 min); writes the "gpu" section
    python -m benchmarks.gpu --smoke   # anywhere: a tiny input on the CPU, to try the harness

The model is built in code (ResNet-50's bottleneck layout, [3, 4, 6, 3] blocks, widths 256 to
2048, about 25.6 M parameters, random seeded weights), scripted to TorchScript and packaged as a
model directory. The script then measures, in one run:

- the ceiling: a bare forward loop of batch ``MAX_BATCH_SIZE`` on the GPU (inputs already on the
  device, ``torch.cuda.synchronize`` after each pass), in images/s;
- our server (``python -m service``, ``DEVICE=cuda``, same batch size) under the v2 binary
  tensor route, driven by ``benchmarks/http_client.py`` in several client processes (one request
  is one 3x224x224 FP32 image, 602 KB), at two concurrencies: throughput, p50, p99, and the
  ratio to the ceiling;
- GPU utilisation sampled by ``nvidia-smi`` every 0.5 s during each cell.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from benchmarks.http_client import drive, request_bytes
from benchmarks.report import write_section
from benchmarks.servers import HOST, ServerConfig, running_server
from service import contract
from service.signature import PLATFORM_TORCHSCRIPT, ModelSignature, TensorSpec

MODEL_NAME: Final = "resnet50"
CLASSES: Final = 1000
SEED: Final = 20261201
BATCH: Final = 32


class Bottleneck(nn.Module):
    """ResNet's 1x1 -> 3x3 -> 1x1 bottleneck block with batch norm and a projected skip."""

    def __init__(self, inputs: int, width: int, stride: int) -> None:
        super().__init__()
        out = width * 4
        self.body = nn.Sequential(
            nn.Conv2d(inputs, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or inputs != out:
            self.skip = nn.Sequential(
                nn.Conv2d(inputs, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet50(nn.Module):
    """ResNet-50's layout: stem, [3, 4, 6, 3] bottlenecks, global pool, linear, softmax."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        inputs = 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for index in range(blocks):
                layers.append(Bottleneck(inputs, width, stride if index == 0 else 1))
                inputs = width * 4
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(inputs, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.features(image).mean(dim=(2, 3))
        return torch.softmax(self.head(x), dim=-1)


def package(out: Path, side: int) -> Path:
    """Script the model with seeded weights into ``out`` with its signature."""
    torch.manual_seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(ResNet50().eval())
    out.mkdir(parents=True, exist_ok=True)
    artifact = out / "model.ts"
    scripted.save(str(artifact))  # type: ignore[no-untyped-call]
    ModelSignature(
        name=MODEL_NAME,
        version="1",
        platform=PLATFORM_TORCHSCRIPT,
        artifact=artifact.name,
        sha256=hashlib.sha256(artifact.read_bytes()).hexdigest(),
        inputs=(TensorSpec("image", "FP32", (-1, 3, side, side)),),
        outputs=(TensorSpec("probabilities", "FP32", (-1, CLASSES)),),
    ).write(out)
    return out


def write_image_body(path: Path, side: int) -> None:
    """One v2 binary request (one image, binary output asked for); its header length beside it."""
    image = np.random.default_rng(SEED).random((1, 3, side, side), dtype=np.float32)
    data = image.astype("<f4").tobytes()
    tensor = {
        "name": "image",
        "datatype": "FP32",
        "shape": list(image.shape),
        "parameters": {"binary_data_size": len(data)},
    }
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    path.write_bytes(header + data)
    Path(f"{path}.hlen").write_text(str(len(header)))


def ceiling(model_dir: Path, device: str, side: int, seconds: float) -> float:
    """Images/s of a bare forward loop of batch ``BATCH`` with the inputs already on the device."""
    module = torch.jit.load(str(model_dir / "model.ts"), map_location=device)  # type: ignore[no-untyped-call]
    x = torch.rand(BATCH, 3, side, side, device=device)
    with torch.inference_mode():
        for _ in range(5):
            module(x)
        if device == "cuda":
            torch.cuda.synchronize()
        passes, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            module(x)
            if device == "cuda":
                torch.cuda.synchronize()
            passes += 1
    return passes * BATCH / (time.perf_counter() - started)


class GpuSampler:
    """``nvidia-smi`` utilisation samples every 0.5 s while active (none without the tool)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tool = shutil.which("nvidia-smi")
        while tool is not None and not self._stop.wait(0.5):
            done = subprocess.run(
                [tool, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0 and done.stdout.strip():
                self.samples.append(float(done.stdout.split()[0]))

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def client_main(host: str, port: int, body_path: str, conns: int, seconds: float) -> None:
    """One client process: print its tally as JSON."""
    header_length = int(Path(body_path + ".hlen").read_text())
    request = request_bytes(
        host,
        port,
        f"/v2/models/{MODEL_NAME}/infer",
        Path(body_path).read_bytes(),
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_length),
        },
    )
    tally = asyncio.run(drive(host, port, request, conns, seconds))
    print(json.dumps({"latencies": tally.latencies, "lost": tally.lost}))


@dataclass(frozen=True)
class Cell:
    """Our server at one concurrency."""

    concurrency: int
    images_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    gpu_util: float | None


def serve_cell(port: int, body: Path, concurrency: int, procs: int, seconds: float) -> Cell:
    """Drive the server from ``procs`` client processes and merge their tallies."""
    per = max(1, concurrency // procs)
    command = [sys.executable, "-m", "benchmarks.gpu", "--client", HOST, str(port), str(body)]
    with GpuSampler() as gpu:
        children = [
            subprocess.Popen([*command, str(per), str(seconds)], stdout=subprocess.PIPE, text=True)
            for _ in range(procs)
        ]
        outputs = [child.communicate(timeout=seconds + 120)[0] for child in children]
    ok: list[float] = []
    errors = 0
    for output in outputs:
        tally: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        for status, values in tally["latencies"].items():
            if status == "200":
                ok += values
            else:
                errors += len(values)
        errors += int(tally["lost"])
    util = statistics.mean(gpu.samples) if gpu.samples else None
    return Cell(
        per * procs,
        len(ok) / seconds,
        float(np.percentile(ok, 50)) * 1000 if ok else float("nan"),
        float(np.percentile(ok, 99)) * 1000 if ok else float("nan"),
        errors,
        util,
    )


def render(device: str, bare: float, cells: list[Cell], side: int) -> str:
    """The results section."""
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (smoke run)"
    lines = [
        "## GPU: ResNet-50-sized CNN on CUDA",
        "",
        f"Measured by `python -m benchmarks.gpu` on {time.strftime('%Y-%m-%d %H:%M UTC')}, "
        f"{name}, torch {torch.__version__}, input 3x{side}x{side} FP32, batch {BATCH}.",
        "",
        f"Bare forward loop, batch {BATCH}: **{bare:,.0f} images/s**.",
        "",
        "| concurrency | images/s | x bare forward | p50 ms | p99 ms | errors | GPU util % |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        util = "n/a" if c.gpu_util is None else f"{c.gpu_util:.0f}"
        lines.append(
            f"| {c.concurrency} | {c.images_per_s:,.0f} | {c.images_per_s / bare:.2f} | "
            f"{c.p50_ms:.1f} | {c.p99_ms:.1f} | {c.errors} | {util} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="CPU, 32x32 input, 2 s cells")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", default="64,128")
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--client", nargs=5, metavar="ARG", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 2 when no CUDA GPU is there (and ``--smoke`` was not given)."""
    args = parse_args(argv)
    if args.client:
        host, port, body, conns, seconds = args.client
        client_main(host, int(port), body, int(conns), float(seconds))
        return 0
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible to torch; run with --smoke to try the harness on the CPU")
        return 2
    side = 32 if args.smoke else 224
    seconds = 2.0 if args.smoke else args.seconds
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        work = Path(tmp)
        model_dir = package(work / "model", side)
        bare = ceiling(model_dir, device, side, seconds)
        body = work / "image.body"
        write_image_body(body, side)
        config = ServerConfig("ours", model_dir, MODEL_NAME, BATCH, 5.0, 1)
        env = {contract.ENV.DEVICE: device, contract.ENV.MAX_QUEUED_ROWS: "100000"}
        cells = []
        with running_server(config, work, extra_env=env) as server:
            port = int(server.base_url.rsplit(":", 1)[1])
            serve_cell(port, body, BATCH, 1, min(seconds, 5.0))  # warm-up
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                cells.append(serve_cell(port, body, concurrency, args.client_procs, seconds))
    section = render(device, bare, cells, side)
    print(section)
    if not args.no_write and not args.smoke:
        write_section("gpu", section)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
