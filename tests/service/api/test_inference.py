"""v2 inference: JSON and binary tensors, versions, failing batches, a full queue."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import torch

from service.app import create_app, service_runtime
from service.contract import PATHS, RETRY_AFTER_SECONDS
from service.model_loader import load_model
from tests.service.api.payloads import INFER, ROWS, binary_request, error_of, infer_json, reference
from tests.service.conftest import open_client, settings_for, wait_ready


def test_json_infer_matches_the_model(client: httpx.Client, tiny_model_dir: Path) -> None:
    response = client.post(INFER, json={**infer_json(), "id": "abc"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "abc"
    assert body["model_name"] == "digits"
    (output,) = body["outputs"]
    assert output["name"] == "probabilities"
    assert output["shape"] == [3, 10]
    np.testing.assert_allclose(
        np.reshape(output["data"], (3, 10)), reference(tiny_model_dir), rtol=1e-6
    )


def test_binary_infer_in_and_out(client: httpx.Client, tiny_model_dir: Path) -> None:
    body, headers = binary_request()
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.content[:length])
    (output,) = header["outputs"]
    assert output["parameters"] == {"binary_data_size": 3 * 10 * 4}
    values = np.frombuffer(response.content[length:], dtype="<f4").reshape(3, 10)
    np.testing.assert_allclose(values, reference(tiny_model_dir), rtol=1e-6)


def test_versioned_infer_route(client: httpx.Client) -> None:
    assert client.post("/v2/models/digits/versions/1/infer", json=infer_json()).status_code == 200
    missing = client.post("/v2/models/digits/versions/7/infer", json=infer_json())
    assert missing.status_code == 404
    assert "no version '7'" in missing.json()["error"]


class FailingModel:
    """The tiny model, except that any batch holding the value 99 raises."""

    def __init__(self, model_dir: Path) -> None:
        self.inner = load_model(str(model_dir), "cpu")
        self.signature = self.inner.signature
        self.device = self.inner.device

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if bool((inputs["pixels"] == 99).any()):
            raise RuntimeError("cannot digest 99")
        return self.inner.forward(inputs)

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        self.inner.warmup(batch_sizes)


def test_a_failing_batch_is_a_clear_500_for_its_requests_only(
    tiny_model_dir: Path, transport: str
) -> None:
    app = create_app(settings_for(tiny_model_dir), loader=lambda: FailingModel(tiny_model_dir))
    with open_client(app, transport) as client:
        wait_ready(app)
        poisoned = client.post(PATHS.PREDICT, json={"instances": [[99.0] * 64]})
        assert poisoned.status_code == 500
        message = error_of(poisoned)
        assert "inference failed for the batch of this request" in message
        assert "cannot digest 99" in message
        assert client.post(PATHS.PREDICT, json={"instances": ROWS.tolist()}).status_code == 200


def test_a_full_queue_is_a_503_with_retry_after_at_once(
    tiny_model_dir: Path, transport: str
) -> None:
    app = create_app(settings_for(tiny_model_dir, max_queued_rows=2))
    with open_client(app, transport) as client:
        wait_ready(app)
        batcher = service_runtime(app).batcher
        assert batcher is not None
        # Three rows counted as waiting (as if the worker were busy) fill a bound of 2.
        batcher._queued_rows = 3
        started = time.perf_counter()
        refused = client.post(INFER, json=infer_json())
        elapsed = time.perf_counter() - started
        batcher._queued_rows = 0
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert "MAX_QUEUED_ROWS=2" in error_of(refused)
        assert elapsed < 1.0
        metrics = client.get(PATHS.METRICS).text
        assert 'inference_requests_refused_total{model="digits",version="1"} 1.0' in metrics
        assert client.post(INFER, json=infer_json()).status_code == 200
