"""The post-deploy smoke test: readiness, held-out accuracy against the packaging gate, and p99
latency under a short bounded load against the stack's SLO.

It talks HTTP to a base URL only (a ``kubectl port-forward`` in CI, the service process or
container in tests), so the same checks run everywhere:

1. ``GET /v2/health/ready`` until 200 (the model is loaded and warmed), within a deadline;
2. every held-out digit (the split packaging gates on) through ``POST /predict`` in batches;
   accuracy must reach the packaging gate (``model.package.DEFAULT_MIN_ACCURACY``);
3. a bounded load: ``requests`` single-digit predictions from ``concurrency`` workers; no request
   may fail and the p99 latency must not exceed ``p99_slo_ms`` (config ``smokeP99Ms``).

The held-out digits come from ``model.digits`` (the ``model`` dependency group: a deploy
job installs ``--group infra --group model``, no torch). The API key, when the service needs
one, is sent as ``X-API-Key`` and never printed.
"""

from __future__ import annotations

import ast
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from service.contract import PATHS

#: Where the packaging gate is defined, once (``DEFAULT_MIN_ACCURACY``).
PACKAGE_SOURCE: Final = Path(__file__).resolve().parents[2] / "model" / "package.py"
_GATE_NAME: Final = "DEFAULT_MIN_ACCURACY"


def packaging_gate(source: Path = PACKAGE_SOURCE) -> float:
    """The held-out accuracy packaging requires; the smoke test holds deployments to it too.

    Read from the packager's source rather than imported, because importing it loads torch,
    which a deploy job has no other use for.
    """
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        target: ast.expr | None = None
        if isinstance(node, ast.AnnAssign):
            target = node.target
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id == _GATE_NAME and value is not None:
            gate = ast.literal_eval(value)
            if isinstance(gate, float) and 0 < gate <= 1:
                return gate
    raise ValueError(f"{source} defines no {_GATE_NAME} between 0 and 1")


@dataclass(frozen=True)
class SmokeSettings:
    """What the smoke test demands of a deployed service."""

    p99_slo_ms: float
    min_accuracy: float
    ready_timeout_s: float = 300.0
    requests: int = 200
    concurrency: int = 4
    batch_size: int = 32
    request_timeout_s: float = 10.0
    api_key: str | None = field(default=None, repr=False)


@dataclass
class SmokeReport:
    """What the smoke test measured, and every reason it failed."""

    base_url: str
    ready_after_s: float | None = None
    accuracy: float | None = None
    samples: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    load_errors: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every check ran and none failed."""
        return not self.failures and self.p99_ms is not None

    def markdown(self, settings: SmokeSettings) -> str:
        """A table for the deploy summary."""

        def fmt(value: float | None, pattern: str) -> str:
            return "—" if value is None else pattern.format(value)

        rows = [
            (
                "ready",
                fmt(self.ready_after_s, "after {:.1f} s"),
                f"within {settings.ready_timeout_s:.0f} s",
            ),
            (
                "held-out accuracy",
                fmt(self.accuracy, "{:.4f}") + f" ({self.samples} digits)",
                f">= {settings.min_accuracy:.4f} (packaging gate)",
            ),
            (
                f"p99 latency, {settings.requests} requests x {settings.concurrency} workers",
                fmt(self.p99_ms, "{:.1f} ms") + fmt(self.p50_ms, " (p50 {:.1f} ms)"),
                f"<= {settings.p99_slo_ms:.0f} ms (smokeP99Ms)",
            ),
            ("failed requests under load", str(self.load_errors), "0"),
        ]
        lines = ["| check | measured | required |", "| --- | --- | --- |"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        verdict = "**passed**" if self.passed else "**failed**: " + "; ".join(self.failures)
        return "\n".join([*lines, "", f"Smoke test {verdict}"]) + "\n"


class _Client:
    def __init__(self, base_url: str, settings: SmokeSettings) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings

    def request(self, path: str, body: Any = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key:
            headers["X-API-Key"] = self.settings.api_key
        data = None if body is None else json.dumps(body).encode()
        url = self.base_url + path  # http(s) URL of the service, checked in run_smoke
        request = urllib.request.Request(url, data=data, headers=headers)
        timeout = self.settings.request_timeout_s
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def _wait_ready(client: _Client, report: SmokeReport) -> bool:
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < client.settings.ready_timeout_s:
        try:
            status, _ = client.request(PATHS.READY)
            if status == 200:
                report.ready_after_s = time.monotonic() - started
                return True
            last = f"HTTP {status}"
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    report.failures.append(
        f"not ready within {client.settings.ready_timeout_s:.0f} s (last answer: {last})"
    )
    return False


def _predict_labels(client: _Client, rows: Sequence[Sequence[int]]) -> list[str]:
    status, body = client.request("/predict", {"instances": [list(map(int, r)) for r in rows]})
    if status != 200:
        raise SmokeError(f"/predict answered HTTP {status}: {body[:200]!r}")
    predictions = json.loads(body)["predictions"]
    return [str(p.get("label")) for p in predictions]


class SmokeError(Exception):
    """The service answered something the smoke test cannot use."""


def _accuracy(client: _Client, report: SmokeReport, digits: tuple[Any, Any]) -> None:
    pixels, labels = digits
    size = client.settings.batch_size
    correct = 0
    try:
        for start in range(0, len(labels), size):
            got = _predict_labels(client, pixels[start : start + size].tolist())
            want = [str(int(label)) for label in labels[start : start + size]]
            correct += sum(g == w for g, w in zip(got, want, strict=True))
    except (SmokeError, OSError, ValueError, KeyError) as exc:
        report.failures.append(f"accuracy check failed: {exc}")
        return
    report.samples = len(labels)
    report.accuracy = correct / len(labels)
    if report.accuracy < client.settings.min_accuracy:
        report.failures.append(
            f"held-out accuracy {report.accuracy:.4f} is below the gate "
            f"{client.settings.min_accuracy:.4f}"
        )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _load(client: _Client, report: SmokeReport, rows: Sequence[Sequence[int]]) -> None:
    def one(index: int) -> float | None:
        row = list(map(int, rows[index % len(rows)]))
        started = time.perf_counter()
        try:
            status, _ = client.request("/predict", {"instances": [row]})
        except OSError:
            return None
        return (time.perf_counter() - started) * 1000 if status == 200 else None

    with ThreadPoolExecutor(max_workers=client.settings.concurrency) as pool:
        results = list(pool.map(one, range(client.settings.requests)))
    latencies = [r for r in results if r is not None]
    report.load_errors = len(results) - len(latencies)
    if report.load_errors:
        report.failures.append(f"{report.load_errors} of {len(results)} requests failed under load")
    if latencies:
        report.p50_ms, report.p99_ms = percentile(latencies, 50), percentile(latencies, 99)
        if report.p99_ms > client.settings.p99_slo_ms:
            report.failures.append(
                f"p99 latency {report.p99_ms:.1f} ms exceeds the SLO "
                f"{client.settings.p99_slo_ms:.0f} ms"
            )


def holdout_digits() -> tuple[Any, Any]:
    """The held-out digits packaging gates on (pixels, labels)."""
    from model import digits

    return digits.holdout()


def run_smoke(
    base_url: str, settings: SmokeSettings, digits: tuple[Any, Any] | None = None
) -> SmokeReport:
    """Run the three checks against ``base_url``; a report, never an exception."""
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base URL {base_url!r} must be http:// or https://")
    client = _Client(base_url, settings)
    report = SmokeReport(base_url=base_url)
    if not _wait_ready(client, report):
        return report
    pixels, labels = digits if digits is not None else holdout_digits()
    _accuracy(client, report, (pixels, labels))
    _load(client, report, pixels.tolist())
    return report
