"""Interleaved A/B cells: several servers at one concurrency, in rotation, repeated.

    python -m benchmarks.interleaved --concurrency 64 --repeats 4
    python -m benchmarks.interleaved --baseline /tmp/base   # adds an older service/ (git archive)
    python -m benchmarks.interleaved --minimal              # adds the two minimal FastAPI peers

On 2 shared cores a whole ``make bench`` run takes minutes, and other work comes and goes in
between its cells; a ratio between two servers is only worth something when both were measured
side by side. This starts every server once (our server with batching on and off, the HTTP floor
and, with ``--minimal``, the minimal FastAPI peers; with ``--baseline``, our server from an older
checkout), then drives ``/predict`` on the digits model (or ``--model heavy``) with wrk on each
in turn, ``--repeats`` rounds. It prints per-cell figures (req/s, CPU ms per request, p50, p99,
other cores) and the medians, and writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from benchmarks import bodies
from benchmarks.cpu import CpuMeter
from benchmarks.loadgen import run_wrk
from benchmarks.run import DIGITS, HEAVY, prepare_models
from benchmarks.servers import (
    MINIMAL_BATCHER,
    MINIMAL_UNBATCHED,
    RunningServer,
    ServerConfig,
    running_server,
)
from service import contract


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.interleaved", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--baseline", type=Path, help="a directory holding an older service/")
    parser.add_argument("--model", choices=(DIGITS, HEAVY), default=DIGITS)
    parser.add_argument(
        "--minimal",
        action="store_true",
        help="also the minimal peers (FastAPI + asyncio.Queue batcher, unbatched FastAPI)",
    )
    args = parser.parse_args(argv)
    batch = contract.DEFAULT_MAX_BATCH_SIZE
    with tempfile.TemporaryDirectory(prefix="interleaved-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        (model,) = prepare_models(work, [args.model])
        body = model.bodies[bodies.ROUTE_PREDICT]

        def start(kind: str, max_batch: int, env: dict[str, str] | None = None) -> RunningServer:
            config = ServerConfig(
                kind,
                model.model_dir,
                model.name,
                max_batch,
                contract.DEFAULT_BATCH_TIMEOUT_MS,
                contract.DEFAULT_TORCH_THREADS,
            )
            return stack.enter_context(running_server(config, work, env))

        servers = {
            "ours": start("ours", batch),
            "ours, batching off": start("ours", 1),
            "HTTP floor": start("floor", 1),
        }
        if args.minimal:
            servers["minimal batcher"] = start(MINIMAL_BATCHER, batch)
            servers["minimal unbatched"] = start(MINIMAL_UNBATCHED, 1)
        if args.baseline is not None:
            servers["ours, baseline"] = start("ours", batch, {"PYTHONPATH": str(args.baseline)})
        figures: dict[str, list[tuple[float, float, float, float, float]]] = {
            n: [] for n in servers
        }
        for server in servers.values():
            run_wrk(server.base_url + "/predict", body, args.concurrency, 2)
        for _ in range(args.repeats):
            for name, server in servers.items():
                meter = CpuMeter(server.pgid)
                load = run_wrk(server.base_url + "/predict", body, args.concurrency, args.seconds)
                shares = meter.shares()
                rate = load.throughput
                cpu_ms = shares.server / rate * 1000 if rate else float("nan")
                figures[name].append((rate, cpu_ms, load.p50_ms, load.p99_ms, shares.other))
                print(
                    f"{name:20} {rate:7,.0f} req/s  CPU {cpu_ms:.3f} ms/req  "
                    f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.1f} ms  "
                    f"other cores {shares.other:.2f}",
                    flush=True,
                )
    print(f"\n{args.model}: medians of {args.repeats} rounds at concurrency {args.concurrency}:")
    for name, cells in figures.items():
        rate, cpu_ms, p50, p99, other = (
            statistics.median(column) for column in zip(*cells, strict=True)
        )
        print(
            f"{name:20} {rate:7,.0f} req/s  CPU {cpu_ms:.3f} ms/req  p50 {p50:6.2f} ms  "
            f"p99 {p99:6.1f} ms  other cores {other:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
