"""Requests, models and checks the API tests share."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import torch

from service.model_loader import load_model
from service.runtime import ServableModel

INFER = "/v2/models/digits/infer"


ROWS = (np.arange(3 * 64, dtype=np.float32).reshape(3, 64) % 17).astype(np.float32)


KEY = "s3cr3t-key-value-0123456789"


def infer_json(rows: np.ndarray = ROWS) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ]
    }


def binary_request(
    rows: np.ndarray = ROWS, binary_output: bool = True
) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": list(rows.shape),
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ],
            "parameters": {"binary_data_output": binary_output},
        }
    ).encode()
    # The binary extension's tensors are little-endian whatever the client machine.
    return header + rows.astype("<f4").tobytes(), {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def reference(tiny_model_dir: Path, rows: np.ndarray = ROWS) -> np.ndarray:
    model = load_model(str(tiny_model_dir), "cpu")
    return model.forward({"pixels": torch.from_numpy(rows)})["probabilities"].numpy()


def error_of(response: object) -> str:
    from httpx import Response

    assert isinstance(response, Response)
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    return body["error"]


class BlockingLoader:
    """Loads the tiny model only once ``release`` is set, so the test sees the loading phase."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.release = threading.Event()

    def __call__(self) -> ServableModel:
        assert self.release.wait(30)
        return load_model(str(self.model_dir), "cpu")


READY_SERIES = 'inference_model_ready{model="digits",version="1"}'
