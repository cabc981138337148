"""The service benchmark: our server vs the bare forward pass vs LitServe, batching on and off.

    python -m benchmarks.run            # the full run (~10 min), writes benchmarks/results.md
    python -m benchmarks.run --quick    # a short run to try the harness (~4 min), same table

For the bundled digits model and a compute-heavy model it measures, in one run on this machine:
the bare batched forward pass (the ceiling); our server with dynamic batching and with batching
off (``MAX_BATCH_SIZE=1``); LitServe serving the same model with the same batch size, timeout
and worker count; a minimal FastAPI app with an ``asyncio.Queue`` batcher and an unbatched one
(``benchmarks/minimal_peers.py``); and, once, the web stack with no model (the HTTP floor). Each
server cell is driven by wrk at concurrency 1, 8 and 64 after a warm-up, repeated, and reported
as medians with the range of the repeats. Our server is then profiled with py-spy under load.
Logs, bodies and raw profiles go to ``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from benchmarks import bodies, plot, profiling, server_metrics, tables
from benchmarks.cpu import CpuMeter, CpuShares
from benchmarks.heavy_model import package_heavy_model
from benchmarks.loadgen import WRK_CORE, Body, LoadResult, run_wrk
from benchmarks.report import write_section
from benchmarks.servers import (
    MINIMAL_BATCHER,
    MINIMAL_UNBATCHED,
    RunningServer,
    ServerConfig,
    running_server,
)
from benchmarks.stats import CeilingFigures, Cell, ServerMetrics
from service import contract
from service.signature import ModelSignature

OUT_DIR: Final = Path(__file__).resolve().parent / "out"
CONCURRENCIES: Final = (1, 8, 64)
SATURATION: Final = tables.SATURATION
DIGITS: Final = "digits"
HEAVY: Final = "heavy"
#: The threads of our server that do the work: the event loop and the batcher's worker.
PROFILED_THREADS: Final = ("MainThread", "inference-worker")


@dataclass(frozen=True)
class Plan:
    """How long and how often every cell runs."""

    warmup_s: int
    seconds: int
    repeats: int
    ceiling_seconds: float
    ceiling_repeats: int
    profile_seconds: int

    @classmethod
    def full(cls) -> Plan:
        """The measured run: 3 x 5 s per cell after a 2 s warm-up."""
        return cls(2, 5, 3, 2.0, 3, 5)

    @classmethod
    def quick(cls) -> Plan:
        """A short run to check the harness end to end: 2 x 2 s per cell."""
        return cls(1, 2, 2, 1.0, 2, 3)


@dataclass(frozen=True)
class ModelUnderTest:
    """A packaged model and the bodies the benchmark sends it."""

    name: str
    model_dir: Path
    signature: ModelSignature
    bodies: dict[str, Body]
    expected_label: str | None


def log(message: str) -> None:
    """Progress on stderr, so stdout keeps only the final table."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def prepare_models(work: Path, names: Sequence[str]) -> list[ModelUnderTest]:
    """Package the models and write one body per route for each."""
    from model.digits import holdout
    from model.package import package_model

    pixels, labels = holdout()
    row, label = pixels[0], int(labels[0])
    models = []
    for name in names:
        model_dir = work / f"{name}-model"
        shutil.rmtree(model_dir, ignore_errors=True)
        log(f"packaging the {name} model into {model_dir}")
        if name == DIGITS:
            package_model(model_dir)
        elif name == HEAVY:
            package_heavy_model(model_dir)
        else:
            raise ValueError(f"unknown model {name!r}; expected {DIGITS} or {HEAVY}")
        signature = ModelSignature.read(model_dir)
        model_bodies = {
            route: bodies.write_body(route, row, signature, work) for route in bodies.ROUTES
        }
        # The heavy model's weights are random: only the digits model has a right answer.
        expected = str(label) if name == DIGITS else None
        models.append(ModelUnderTest(name, model_dir, signature, model_bodies, expected))
    return models


def measure_ceilings(
    model: ModelUnderTest,
    plan: Plan,
    threads: int,
    batches: Sequence[int],
    *,
    busy_neighbour: bool = False,
) -> dict[int, CeilingFigures]:
    """The bare forward pass at each batch size, in a fresh process.

    With ``busy_neighbour`` a Python busy loop runs alongside, as a server's event loop does
    under load: on these shared cores that alone slows torch down, and the table says how much.
    """
    command = [
        sys.executable,
        "-m",
        "benchmarks.ceiling",
        "--model-dir",
        str(model.model_dir),
        "--threads",
        str(threads),
        "--batches",
        ",".join(map(str, batches)),
        "--seconds",
        str(plan.ceiling_seconds),
        "--repeats",
        str(plan.ceiling_repeats),
    ]
    neighbour = (
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy_neighbour else None
    )
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    if done.returncode != 0:
        raise RuntimeError(f"ceiling of {model.name} failed: {done.stderr[-2000:]}")
    return {
        item["batch"]: CeilingFigures(item["batch"], item["rows_per_s"], item["forward_ms"])
        for item in json.loads(done.stdout)
    }


def _post(url: str, body: Body) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Content-Type": body.content_type}
    if body.inference_header_length is not None:
        headers["Inference-Header-Content-Length"] = str(body.inference_header_length)
    request = urllib.request.Request(url, data=body.path.read_bytes(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return (
            response.status,
            response.read(),
            {name.lower(): value for name, value in response.headers.items()},
        )


def check_answer(server: RunningServer, model: ModelUnderTest, route: str) -> None:
    """Send one request and make sure the answer is a 200 with the right prediction."""
    url = server.base_url + bodies.url_path(route, model.name)
    status, payload, headers = _post(url, model.bodies[route])
    if status != 200:
        raise RuntimeError(f"{url} answered {status}: {payload[:500]!r}")
    if route == bodies.ROUTE_PREDICT:
        prediction = json.loads(payload)["predictions"][0]
        if model.expected_label is not None and prediction.get("label") != model.expected_label:
            raise RuntimeError(f"{url} predicted {prediction} for a {model.expected_label}")
    elif route == bodies.ROUTE_V2_JSON:
        outputs = json.loads(payload)["outputs"]
        if len(outputs[0]["data"]) != model.signature.outputs[0].shape[-1]:
            raise RuntimeError(f"{url} answered an unexpected tensor: {outputs}")
    else:
        header_length = int(headers.get("inference-header-content-length", "-1"))
        if header_length <= 0 or len(payload) <= header_length:
            raise RuntimeError(f"{url} did not answer with binary tensor data: {payload[:300]!r}")


def measure_cell(
    server: RunningServer,
    model: ModelUnderTest,
    label: str,
    route: str,
    concurrency: int,
    plan: Plan,
) -> Cell:
    """Warm up, then drive one route at one concurrency for the plan's repeats."""
    url = server.base_url + bodies.url_path(route, model.name)
    body = model.bodies[route]
    run_wrk(url, body, concurrency, plan.warmup_s)
    runs: list[LoadResult] = []
    shares: list[CpuShares] = []
    busy: list[ServerMetrics] = []
    ours = server.config.kind == "ours"
    for _ in range(plan.repeats):
        before = server_metrics.scrape(server.base_url) if ours else None
        started = time.perf_counter()
        meter = CpuMeter(server.pgid)
        runs.append(run_wrk(url, body, concurrency, plan.seconds))
        shares.append(meter.shares())
        if before is not None:
            after = server_metrics.scrape(server.base_url)
            busy.append(server_metrics.between(before, after, time.perf_counter() - started))
    metrics = None
    if busy:
        metrics = ServerMetrics(
            mean_batch=float(np.median([b.mean_batch for b in busy])),
            model_busy=float(np.median([b.model_busy for b in busy])),
            batch_ms=float(np.median([b.batch_ms for b in busy])),
        )
    cell = Cell(
        model.name, label, route, concurrency, server.config.max_batch_size, runs, shares, metrics
    )
    log(
        f"  {cell.label}: {cell.throughput:,.0f} req/s (spread {cell.spread:.0%}), "
        f"p50 {cell.p50_ms:.2f} ms, p99 {cell.p99_ms:.2f} ms, errors {cell.errors}"
    )
    return cell


@dataclass(frozen=True)
class ProfileNote:
    """A profile of our server at one concurrency, with the load it ran under."""

    model: str
    concurrency: int
    profile: profiling.Profile
    gil: profiling.Profile
    load: LoadResult


def profile_under_load(
    server: RunningServer, model: ModelUnderTest, concurrency: int, plan: Plan, work: Path
) -> ProfileNote:
    """Record the server with py-spy (all threads, then the GIL holder) under ``/predict`` load."""
    url = server.base_url + bodies.url_path(bodies.ROUTE_PREDICT, model.name)
    results: list[LoadResult] = []
    seconds = 2 * plan.profile_seconds + 3
    load = threading.Thread(
        target=lambda: results.append(
            run_wrk(url, model.bodies[bodies.ROUTE_PREDICT], concurrency, seconds)
        )
    )
    load.start()
    time.sleep(1)
    stem = work / f"profile-{model.name}-c{concurrency}"
    try:
        wall = profiling.record(server.process.pid, plan.profile_seconds, stem.with_suffix(".txt"))
        gil = profiling.record(
            server.process.pid, plan.profile_seconds, Path(f"{stem}-gil.txt"), gil=True
        )
    finally:
        load.join()
    if not results:
        raise profiling.ProfileError(f"the load for the profile at c={concurrency} failed")
    return ProfileNote(model.name, concurrency, wall, gil, results[0])


def run_server_cells(
    config: ServerConfig,
    label: str,
    model: ModelUnderTest,
    plan: Plan,
    work: Path,
    routes: dict[str, Sequence[int]],
    profile_at: Sequence[int] = (),
) -> tuple[list[Cell], list[ProfileNote]]:
    """Start one server, measure its cells, profile it if asked, stop it."""
    cells: list[Cell] = []
    notes: list[ProfileNote] = []
    log(f"{label} serving {model.name} (max batch {config.max_batch_size})")
    with running_server(config, work) as server:
        if config.kind != "floor":  # the floor has no model to give a right answer
            for route in routes:
                check_answer(server, model, route)
        for route, concurrencies in routes.items():
            for concurrency in concurrencies:
                cells.append(measure_cell(server, model, label, route, concurrency, plan))
        for concurrency in profile_at:
            try:
                notes.append(profile_under_load(server, model, concurrency, plan, work))
            except profiling.ProfileError as exc:
                log(f"  profile at c={concurrency} failed: {exc}")
    return cells, notes


def versions() -> dict[str, str]:
    """Versions of what the figures depend on."""
    from importlib.metadata import version

    found = {name: version(name) for name in ("torch", "fastapi", "uvicorn", "litserve")}
    # Rendering results must work where wrk is not installed (a newcomer's `make test`).
    wrk_path = shutil.which("wrk")
    if wrk_path is None:
        found["wrk"] = "not installed"
    else:
        wrk = subprocess.run([wrk_path, "-v"], capture_output=True, text=True, check=False)
        found["wrk"] = (wrk.stdout or wrk.stderr).split("[")[0].replace("wrk", "").strip()
    found["python"] = platform.python_version()
    return found


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def method_text(plan: Plan, threads: int, batch: int, timeout_ms: float) -> str:
    """How the figures were taken, for the results file."""
    found = versions()
    shown = ", ".join(f"{name} {value}" for name, value in found.items())
    return f"""\
Measured by `python -m benchmarks.run` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC:
{cpu_model()}, {_cores()} cores shared with other work, no GPU; {shown}.

- **Load**: `wrk` (C, epoll, one thread) pinned with `taskset -c {WRK_CORE}`, closed loop at
  concurrency 1, 8 and 64 (connections), each request one row (batch 1) POSTed by
  `benchmarks/wrk_post.lua`. The servers are not pinned: they may use both cores.
- **Cells**: {plan.warmup_s} s warm-up, then {plan.repeats} x {plan.seconds} s; figures are the
  medians of the repeats and *range* is the lowest-highest throughput of the repeats.
  *server cores* / *other cores*: average cores used by the server's processes and by everything
  outside the benchmark (other people's work on this shared machine) during the repeats;
  *CPU ms/req* is the server's CPU time per answered request, the figure least disturbed by
  other work.
  *mean batch*, *batch ms* (wall time of one batch in the worker, tensor conversions included)
  and *model busy* (share of wall time spent running batches) come from our server's
  `/metrics`.
- **Ceiling**: the model's own forward pass in a loop (`benchmarks/ceiling.py`: loaded by
  `service.model_loader`, no server, no client, a fresh process with {threads} torch thread(s) like
  the servers); *x ceiling* divides a cell's throughput by the ceiling's rows/s at the largest
  batch that cell's concurrency can form (`b` = min(concurrency, max batch)). The largest batch
  is measured a second time while a Python busy loop keeps the other core busy, as a server's
  event loop does under load, to show what sharing the machine's two cores costs torch.
- **Fair peer**: LitServe {found["litserve"]} (`benchmarks/litserve_peer.py`) serves the same
  model directory loaded by our loader with the same torch threads ({threads}), the same
  `max_batch_size` ({batch}) and `batch_timeout` ({timeout_ms:g} ms), one inference worker and
  one API server process (its own processes: it may use both cores without sharing a GIL), its
  ZeroMQ transport (`fast_queue=True`, its advice above 100 req/s), our `/predict` decoder and
  encoder, the same body and the same load generator in the same run. Our server runs with its
  defaults otherwise (`MAX_BATCH_SIZE={batch}`, `BATCH_TIMEOUT_MS={timeout_ms:g}`,
  `TORCH_THREADS={threads}`, JSON access log at INFO to a file); LitServe logs at its default
  level (uvicorn access log at INFO) to a file too.
- **Minimal peers**: `benchmarks/minimal_peers.py`, the same model (our loader) and `/predict`
  codec in a few lines of FastAPI: a batch-or-timeout `asyncio.Queue` batcher with the same
  `max_batch_size` and timeout and one executor thread, and an unbatched app calling the model
  on the event loop; no logs, metrics, auth or limits.
- **HTTP floor**: `benchmarks/http_floor.py`, FastAPI on uvicorn (uvloop, httptools) like our
  server, parsing the same `/predict` body and answering without a model: the most this web
  stack serves on this machine.
- **Heavy model**: `benchmarks/heavy_model.py`, a residual CNN with the digits model's input and
  output (same bodies), random weights; its batch-32 forward time is in the ceiling table.
"""


def _cores() -> int:
    return os.cpu_count() or 1


def render(
    plan: Plan,
    threads: int,
    batch: int,
    timeout_ms: float,
    ceilings: dict[str, dict[int, CeilingFigures]],
    crowded: dict[str, CeilingFigures],
    cells: Sequence[Cell],
    notes: Sequence[ProfileNote],
) -> str:
    """The markdown section of the results file."""
    checks = tables.check_targets(cells, ceilings, HEAVY, crowded)
    others = [cell.other_cores for cell in cells if cell.other_cores is not None]
    contention = (
        f"While the cells ran, processes outside the benchmark used {min(others):.2f} to "
        f"{max(others):.2f} cores (mean {sum(others) / len(others):.2f}) of the {_cores()}: "
        "figures from cells with high *other cores* understate what the servers can do."
        if others
        else ""
    )
    parts = [
        "## Service: throughput and latency",
        method_text(plan, threads, batch, timeout_ms) + "\n" + contention,
        "### Targets",
        tables.targets_table(checks),
        "### Ceiling: the bare forward pass",
        tables.ceiling_table(ceilings, threads, crowded),
        "### Servers",
        tables.cell_table(cells, ceilings),
    ]
    if notes:
        parts.append("### Where our server's time goes (py-spy, under load)")
        for note in notes:
            parts.append(
                f"**{note.model}, concurrency {note.concurrency}** "
                f"({note.load.throughput:,.0f} req/s while sampled). Wall time by innermost "
                "frame:\n\n"
                + profiling.summarize(note.profile, PROFILED_THREADS)
                + "\n\nWho held the GIL (share of wall time):\n\n"
                + profiling.summarize_gil(note.gil)
            )
    return "\n\n".join(parts) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short cells, to try the harness")
    parser.add_argument(
        "--models",
        default=f"{DIGITS},{HEAVY}",
        help=f"comma-separated models to measure ({DIGITS}, {HEAVY})",
    )
    parser.add_argument("--no-litserve", action="store_true", help="leave the peer out")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table but leave results.md alone"
    )
    args = parser.parse_args(argv)
    args.model_names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(args.model_names) - {DIGITS, HEAVY})
    if unknown or not args.model_names:
        parser.error(f"--models takes {DIGITS} and/or {HEAVY}, got {args.models!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every cell, print the section and write it into benchmarks/results.md."""
    args = parse_args(argv)
    plan = Plan.quick() if args.quick else Plan.full()
    threads = contract.DEFAULT_TORCH_THREADS
    batch = contract.DEFAULT_MAX_BATCH_SIZE
    timeout_ms = contract.DEFAULT_BATCH_TIMEOUT_MS
    work = OUT_DIR / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    started = time.monotonic()
    models = prepare_models(work, args.model_names)
    ceilings: dict[str, dict[int, CeilingFigures]] = {}
    crowded: dict[str, CeilingFigures] = {}
    cells: list[Cell] = []
    notes: list[ProfileNote] = []
    for model in models:
        log(f"ceiling of {model.name}")
        batches = sorted({1, *(min(c, batch) for c in CONCURRENCIES)})
        ceilings[model.name] = measure_ceilings(model, plan, threads, batches)
        crowded[model.name] = measure_ceilings(model, plan, threads, [batch], busy_neighbour=True)[
            batch
        ]
        for figures in ceilings[model.name].values():
            log(
                f"  batch {figures.batch}: {figures.forward_ms:.2f} ms, {figures.throughput:,.0f}/s"
            )

        def config(kind: str, max_batch: int, model: ModelUnderTest = model) -> ServerConfig:
            return ServerConfig(kind, model.model_dir, model.name, max_batch, timeout_ms, threads)

        predict_only: dict[str, Sequence[int]] = {bodies.ROUTE_PREDICT: CONCURRENCIES}
        ours_routes = dict(predict_only)
        if model.name == DIGITS:
            # The codecs matter for a small model: compare the v2 encodings.
            ours_routes[bodies.ROUTE_V2_JSON] = (SATURATION,)
            ours_routes[bodies.ROUTE_V2_BINARY] = (1, SATURATION)
        servers: list[tuple[ServerConfig, str, dict[str, Sequence[int]], Sequence[int]]] = [
            (config("ours", batch), tables.OURS, ours_routes, () if args.no_profile else (1, 64)),
            (config("ours", 1), tables.OURS_UNBATCHED, predict_only, ()),
        ]
        if not args.no_litserve:
            servers.append((config("litserve", batch), tables.LITSERVE, predict_only, ()))
        servers += [
            (config(MINIMAL_BATCHER, batch), tables.MINIMAL_BATCHER, predict_only, ()),
            (config(MINIMAL_UNBATCHED, 1), tables.MINIMAL_UNBATCHED, predict_only, ()),
        ]
        if model.name == DIGITS:
            # The web stack alone, once: it is the same whatever the model.
            floor_routes: dict[str, Sequence[int]] = {bodies.ROUTE_PREDICT: (1, SATURATION)}
            servers.append((config("floor", 1), tables.FLOOR, floor_routes, ()))
        for server_config, label, routes, profile_at in servers:
            new_cells, new_notes = run_server_cells(
                server_config, label, model, plan, work, routes, profile_at
            )
            cells += new_cells
            notes += new_notes
    markdown = render(plan, threads, batch, timeout_ms, ceilings, crowded, cells, notes)
    print(markdown)
    if not args.no_write:
        write_section("service", markdown)
        log("wrote the service section of benchmarks/results.md")
        plot.plot_results()
        log(f"drew {plot.PLOT.name} from it")
    log(f"done in {time.monotonic() - started:.0f} s; logs and profiles in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
