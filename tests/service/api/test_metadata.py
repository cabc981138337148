"""v2 server and model metadata, and model readiness."""

from __future__ import annotations

import httpx

from service.contract import PATHS


def test_health_and_metadata(client: httpx.Client) -> None:
    assert client.get(PATHS.LIVE).json() == {"live": True}
    assert client.get(PATHS.READY).json() == {"ready": True}
    server = client.get(PATHS.SERVER_METADATA).json()
    assert "binary_tensor_data" in server["extensions"]
    metadata = client.get("/v2/models/digits").json()
    assert metadata == {
        "name": "digits",
        "versions": ["1"],
        "platform": "pytorch_torchscript",
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }
    assert client.get("/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
    assert client.get("/v2/models/digits/versions/1/ready").status_code == 200
    assert client.get("/v2/models/digits/versions/2/ready").status_code == 404
