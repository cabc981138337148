"""``make demo``: package the bundled model, serve it, send it real digits, shut it down cleanly.

    python -m tools.demo [--where auto|native|container] [--limit N]

1. packages the digits model into ``build/model`` with its accuracy gate
   (``python -m model.package``);
2. serves it: natively (``python -m service`` on a free 127.0.0.1 port), or with ``--where
   container`` through the image exactly as the pod runs it (``tools.container.serve``: build,
   push to a local registry, pull by digest, run with the pod's flags); the default ``auto``
   takes the container path when a Docker engine answers and says so when it falls back;
3. sends held-out digit images through ``/predict`` and the v2 infer route (the stock
   ``tritonclient``, binary tensors), printing predictions for a few digits, the accuracy over
   the held-out set and the latency per request (p50/p99, one request at a time);
4. shuts the server down with SIGTERM, checks it exits 0, and leaves nothing running.

``serve_native`` and ``run_client_demo`` are separate so any way of serving (a container, a
remote URL) plugs into the same client half.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.contract import DEFAULT_MODEL_NAME, PATHS
from tools.container.engine import DockerError, engine_reachable
from tools.local_server import LocalServer, LocalServerError

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO_ROOT / "build" / "model"
SERVER_LOG = REPO_ROOT / "build" / "demo" / "server.log"
#: Digits whose predictions are printed one by one.
SHOWN_DIGITS = 8


class DemoError(RuntimeError):
    """A demo step failed; the message says which and why."""


def progress(message: str) -> None:
    """One line of progress on stdout, flushed at once."""
    print(f"[demo] {message}", flush=True)


@dataclass(frozen=True)
class RouteResult:
    """What one route did with the held-out digits sent one request at a time."""

    route: str
    requests: int
    correct: int
    latencies_ms: tuple[float, ...]

    @property
    def accuracy(self) -> float:
        """Share of digits labelled correctly."""
        return self.correct / self.requests

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        return float(np.percentile(self.latencies_ms, q))


@dataclass(frozen=True)
class DemoResult:
    """Everything the client half measured."""

    base_url: str
    routes: tuple[RouteResult, ...]
    batch_accuracy: float
    samples: int
    examples: tuple[tuple[int, str, float], ...] = field(default=())

    def summary(self) -> str:
        """A small table of accuracy and latency per route."""
        lines = [
            f"{'route':<28} {'requests':>8} {'accuracy':>9} {'p50 ms':>8} {'p99 ms':>8}",
            *(
                f"{r.route:<28} {r.requests:>8} {r.accuracy:>9.4f} "
                f"{r.percentile(50):>8.2f} {r.percentile(99):>8.2f}"
                for r in self.routes
            ),
            f"one v2 request with all {self.samples} digits: accuracy {self.batch_accuracy:.4f}",
        ]
        return "\n".join(lines)


def package_model(out_dir: Path = MODEL_DIR) -> None:
    """Train, gate and package the bundled model (the packager prints the accuracy it reached)."""
    progress(f"packaging the bundled digits model into {out_dir.relative_to(REPO_ROOT)}")
    completed = subprocess.run(
        [sys.executable, "-m", "model.package", "--out", str(out_dir)],
        cwd=REPO_ROOT,
        check=False,
    )
    if completed.returncode != 0:
        raise DemoError(f"packaging failed (exit {completed.returncode}); see the lines above")


@contextmanager
def serve_native(model_dir: Path, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``python -m service`` on a free 127.0.0.1 port and yield its base URL.

    On exit the server gets SIGTERM and must exit 0; it is killed if it does not stop in time.
    """
    server = LocalServer(model_dir, log_path=SERVER_LOG, env=env)
    with server:  # starts it; on any error, SIGTERM (then kill) on the way out
        assert server.process is not None
        progress(f"started python -m service (pid {server.process.pid}) on {server.base_url}")
        try:
            seconds = server.wait_ready()
        except LocalServerError as exc:
            raise DemoError(str(exc)) from None
        progress(f"ready after {seconds:.1f} s (model loaded and warmed up)")
        yield server.base_url
        progress("sending SIGTERM")
        code = server.terminate()
        if code != 0:
            raise DemoError(
                f"the server exited with {code}; log: {SERVER_LOG}\n{server.log_tail()}"
            )
        progress(f"server exited with {code}; server log: {SERVER_LOG.relative_to(REPO_ROOT)}")


def serve_in_container_path(model_dir: Path) -> AbstractContextManager[str]:
    """The container path (the image bakes its own copy of the same bundled model)."""
    from tools.container.serve import serve_in_container

    del model_dir  # the image packages the model itself, with the same code and gate
    return serve_in_container()


def _connection(base_url: str) -> http.client.HTTPConnection:
    parsed = urllib.parse.urlsplit(base_url)
    return http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)


def _post_predict(
    connection: http.client.HTTPConnection, rows: npt.NDArray[np.float32]
) -> list[dict[str, object]]:
    body = json.dumps({"instances": rows.tolist()})
    connection.request("POST", PATHS.PREDICT, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise DemoError(f"/predict answered {response.status}: {payload[:300]!r}")
    predictions: list[dict[str, object]] = json.loads(payload)["predictions"]
    return predictions


def run_client_demo(base_url: str, *, limit: int | None = None) -> DemoResult:
    """Send held-out digits through ``/predict`` and the v2 infer route; measure and score them."""
    import tritonclient.http as triton

    from model.digits import holdout

    pixels_u8, labels = holdout()
    if limit is not None:
        pixels_u8, labels = pixels_u8[:limit], labels[:limit]
    pixels = pixels_u8.astype(np.float32)  # raw 0..16 values; the model normalises them itself
    expected = [str(label) for label in labels.tolist()]
    progress(f"sending {len(expected)} held-out digits to {base_url}")

    # /predict, plain JSON, one digit per request on one keep-alive connection.
    connection = _connection(base_url)
    _post_predict(connection, pixels[:1])  # opens the connection outside the measurement
    predict_labels: list[str] = []
    predict_ms: list[float] = []
    examples: list[tuple[int, str, float]] = []
    for index, row in enumerate(pixels):
        started = time.perf_counter()
        (prediction,) = _post_predict(connection, row[None, :])
        predict_ms.append((time.perf_counter() - started) * 1000)
        label = str(prediction["label"])
        predict_labels.append(label)
        if index < SHOWN_DIGITS:
            scores = prediction["probabilities"]
            assert isinstance(scores, list)
            examples.append((int(labels[index]), label, float(max(scores))))
    connection.close()
    for truth, label, probability in examples:
        mark = "ok" if str(truth) == label else "WRONG"
        progress(f"  digit {truth}: predicted {label} (p={probability:.3f}) {mark}")

    # The v2 route through the stock tritonclient, with its defaults (binary tensors both ways).
    client = triton.InferenceServerClient(url=urllib.parse.urlsplit(base_url).netloc)
    try:
        if not client.is_model_ready(DEFAULT_MODEL_NAME):
            raise DemoError(f"model {DEFAULT_MODEL_NAME!r} is not ready at {base_url}")

        def infer(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows)
            result = client.infer(DEFAULT_MODEL_NAME, [tensor])
            probabilities: npt.NDArray[np.float32] = result.as_numpy("probabilities")
            return probabilities

        infer(pixels[:1])
        v2_labels: list[str] = []
        v2_ms: list[float] = []
        for row in pixels:
            started = time.perf_counter()
            v2_labels.append(str(int(infer(row[None, :]).argmax())))
            v2_ms.append((time.perf_counter() - started) * 1000)
        # Every digit in one request: bigger than MAX_BATCH_SIZE, so the server splits it.
        everything = infer(pixels).argmax(axis=1)
        batch_correct = int((everything == labels).sum())
    finally:
        client.close()

    def score(route: str, predicted: Sequence[str], latencies: Sequence[float]) -> RouteResult:
        correct = sum(p == e for p, e in zip(predicted, expected, strict=True))
        return RouteResult(route, len(expected), correct, tuple(latencies))

    return DemoResult(
        base_url=base_url,
        routes=(
            score("POST /predict (JSON)", predict_labels, predict_ms),
            score("POST v2 infer (binary)", v2_labels, v2_ms),
        ),
        batch_accuracy=batch_correct / len(expected),
        samples=len(expected),
        examples=tuple(examples),
    )


def model_forward_ms(model_dir: Path, repeats: int = 300) -> float:
    """Median time of one batch-1 forward of the packaged model here, for comparison."""
    import torch

    from service.model_loader import load_model

    torch.set_num_threads(1)
    model = load_model(str(model_dir), "cpu")
    batch = model.zero_batch(1)
    model.warmup([1])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.forward(batch)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--where",
        choices=("auto", "native", "container"),
        default="auto",
        help="serve with python -m service on 127.0.0.1 (native), through the image run like the "
        "pod (container), or in the container when a Docker engine answers (auto, the default)",
    )
    parser.add_argument("--limit", type=int, default=None, help="send only the first N digits")
    parser.add_argument(
        "--plan-stack",
        default="dev",
        help="after serving, show what `pulumi up -s STACK` would declare (empty string: skip)",
    )
    args = parser.parse_args(argv)
    where = args.where
    if where == "auto":
        where = "container" if engine_reachable() else "native"
        if where == "native":
            progress(
                "no Docker engine answers (start one: tools/docker_engine.sh start); "
                "serving natively instead of in the container"
            )
    try:
        package_model()
        serve = serve_native if where == "native" else serve_in_container_path
        with serve(MODEL_DIR) as base_url:
            result = run_client_demo(base_url, limit=args.limit)
        forward = model_forward_ms(MODEL_DIR)
    except (DemoError, DockerError) as exc:
        progress(f"FAILED: {exc}")
        return 1
    print()
    print(result.summary())
    print(f"model forward alone (batch 1, 1 thread, no HTTP): {forward:.2f} ms")
    if args.plan_stack:
        show_plan(args.plan_stack)
    progress("done; nothing left running")
    return 0


def show_plan(stack: str) -> None:
    """Print the resources ``pulumi up -s stack`` would declare, from the program under mocks."""
    # Imported here: the Pulumi SDK is only needed for this last step of the demo.
    from tools.plan import collect, render_table

    progress(f"deployment plan: what `pulumi up -s {stack}` would declare (Pulumi mocks, no cloud)")
    entries = collect(stack)
    print(render_table(entries))
    progress(f"{len(entries)} resources; `make plan STACK=prod` shows another stack")


if __name__ == "__main__":
    sys.exit(main())
