"""The model-less HTTP floor answers the benchmark's /predict body."""

from __future__ import annotations

from fastapi.testclient import TestClient

from benchmarks.http_floor import HEALTH_PATH, create_floor_app


def test_floor_parses_the_body_and_answers_one_prediction_per_row() -> None:
    client = TestClient(create_floor_app())
    assert client.get(HEALTH_PATH).status_code == 200
    response = client.post("/predict", json={"instances": [[0] * 64, [1] * 64]})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2
