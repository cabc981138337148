"""/predict: labelled predictions, requests bigger than a batch."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from service.contract import PATHS
from tests.service.api.payloads import ROWS, reference
from tests.service.conftest import AppFactory


def test_predict_labels_rows(client: httpx.Client, tiny_model_dir: Path) -> None:
    response = client.post(PATHS.PREDICT, json={"instances": ROWS.tolist()})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = reference(tiny_model_dir)
    assert [p["label"] for p in predictions] == [str(i) for i in expected.argmax(axis=1)]
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected, rtol=1e-6)
    keyed = client.post(PATHS.PREDICT, json={"instances": [{"pixels": ROWS[0].tolist()}]})
    assert keyed.json()["predictions"][0]["label"] == predictions[0]["label"]


def test_a_request_bigger_than_the_max_batch_still_works(make_client: AppFactory) -> None:
    client = make_client(max_batch_size=2)
    rows = np.tile(ROWS, (3, 1))  # 9 rows, 5 batches
    response = client.post(PATHS.PREDICT, json={"instances": rows.tolist()})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 9
