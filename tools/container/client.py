"""A small HTTP client for checking a running service: probes and ``/predict`` on real digits."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from service import contract
from tools.container.pod import http_status

#: Rows per ``/predict`` request when scoring the held-out digits (below the request size cap).
BATCH_ROWS = 32


def predict_labels(
    base_url: str, rows: Sequence[Sequence[float]], timeout_s: float = 30.0
) -> list[str]:
    """POST ``rows`` to ``/predict`` and return the label the service gives each row."""
    body = json.dumps({"instances": [list(row) for row in rows]}).encode()
    request = urllib.request.Request(
        base_url + contract.PATHS.PREDICT,
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        document = json.loads(response.read())
    predictions = document["predictions"]
    if len(predictions) != len(rows):
        raise ValueError(f"sent {len(rows)} rows, got {len(predictions)} predictions")
    return [str(prediction["label"]) for prediction in predictions]


@dataclass(frozen=True)
class Accuracy:
    """Share of the held-out digits the service labelled correctly."""

    correct: int
    total: int

    @property
    def ratio(self) -> float:
        """``correct / total``."""
        return self.correct / self.total


def holdout_accuracy(base_url: str) -> Accuracy:
    """Send every held-out digit through ``/predict`` and count the right labels (needs sklearn)."""
    from model.digits import holdout

    pixels, labels = holdout()
    correct = 0
    for start in range(0, len(labels), BATCH_ROWS):
        rows = pixels[start : start + BATCH_ROWS].astype(float).tolist()
        predicted = predict_labels(base_url, rows)
        expected = [str(label) for label in labels[start : start + BATCH_ROWS].tolist()]
        correct += sum(p == e for p, e in zip(predicted, expected, strict=True))
    return Accuracy(correct, len(labels))


def probes_answer(base_url: str) -> dict[str, int | None]:
    """Status of the liveness and readiness probes and the model metadata route."""
    paths = {
        "live": contract.PATHS.LIVE,
        "ready": contract.PATHS.READY,
        "model": contract.PATHS.MODEL_METADATA.format(name=contract.DEFAULT_MODEL_NAME),
    }
    return {key: http_status(base_url + path) for key, path in paths.items()}
