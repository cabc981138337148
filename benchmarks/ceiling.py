"""The ceiling: the model's own forward pass in a tight loop, with no server and no client.

It is what a perfect server could reach on this machine: every microsecond goes to torch. The
model is loaded through the server's own loader (``service.model_loader.load_model``) with the
server's thread count, so the only difference between this loop and a served model is the
serving itself. Run it in a fresh process (``python -m benchmarks.ceiling``) so its torch thread
settings are exactly those a server process starts with.

    python -m benchmarks.ceiling --model-dir build/model --threads 1 --batches 1,8,32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from service.model_loader import load_model
from service.signature import ModelSignature, torch_dtype


@dataclass(frozen=True)
class CeilingResult:
    """Throughput of the bare forward pass at one batch size, one figure per repeat."""

    batch: int
    #: Rows (requests' worth of input) per second, one entry per repeat.
    rows_per_s: list[float]
    #: Median wall time of one forward pass over all repeats, milliseconds.
    forward_ms: float


def _example_inputs(signature: ModelSignature, batch: int) -> dict[str, torch.Tensor]:
    """Random inputs of the signature's shapes (raw 0..16 pixels for float inputs)."""
    generator = np.random.default_rng(0)
    inputs = {}
    for spec in signature.inputs:
        shape = spec.example_shape(batch)
        values = generator.integers(0, 17, size=shape)
        inputs[spec.name] = torch.as_tensor(values).to(torch_dtype(spec.datatype))
    return inputs


def measure_ceiling(
    model_dir: Path, batches: list[int], seconds: float, repeats: int, threads: int
) -> list[CeilingResult]:
    """Forward throughput of the model in ``model_dir`` at each batch size, on the CPU."""
    if seconds <= 0 or repeats < 1 or threads < 1 or not batches or min(batches) < 1:
        raise ValueError(
            f"need seconds > 0, repeats >= 1, threads >= 1 and batch sizes >= 1; got {seconds}, "
            f"{repeats}, {threads}, {batches}"
        )
    torch.set_num_threads(threads)
    model = load_model(str(model_dir), "cpu")
    signature = ModelSignature.read(model_dir)
    results = []
    for batch in batches:
        inputs = _example_inputs(signature, batch)
        with torch.inference_mode():
            for _ in range(10):
                model.forward(inputs)
            rates: list[float] = []
            times: list[float] = []
            for _ in range(repeats):
                calls = 0
                start = time.perf_counter()
                deadline = start + seconds
                now = start
                while now < deadline:
                    model.forward(inputs)
                    after = time.perf_counter()
                    times.append(after - now)
                    now = after
                    calls += 1
                rates.append(calls * batch / (now - start))
        results.append(CeilingResult(batch, rates, statistics.median(times) * 1000))
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure and print the ceiling as JSON (one object per batch size)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    try:
        batches = [int(part) for part in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    results = measure_ceiling(args.model_dir, batches, args.seconds, args.repeats, args.threads)
    print(json.dumps([asdict(result) for result in results]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
