"""The request bodies decode, through the service's own codecs, to the row they were built from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bodies
from service.predict_codec import decode_predict_request
from service.signature import ModelSignature, TensorSpec
from service.v2_codec import BINARY_CONTENT_TYPE, decode_infer_request

SIGNATURE = ModelSignature(
    name="digits",
    version="1",
    platform="pytorch_torchscript",
    artifact="model.ts",
    sha256="0" * 64,
    inputs=(TensorSpec("pixels", "FP32", (-1, 64)),),
    outputs=(TensorSpec("probabilities", "FP32", (-1, 10)),),
)
ROW = np.arange(64, dtype=np.uint8) % 17


def test_predict_body_decodes_to_the_row() -> None:
    payload, header_length = bodies.encode_body(bodies.ROUTE_PREDICT, ROW, SIGNATURE)
    assert header_length is None
    arrays = decode_predict_request(json.loads(payload), SIGNATURE)
    np.testing.assert_array_equal(arrays["pixels"], ROW.reshape(1, 64).astype(np.float32))


@pytest.mark.parametrize("route", [bodies.ROUTE_V2_JSON, bodies.ROUTE_V2_BINARY])
def test_v2_bodies_decode_to_the_row(route: str, tmp_path: Path) -> None:
    body = bodies.write_body(route, ROW, SIGNATURE, tmp_path)
    header = None if body.inference_header_length is None else str(body.inference_header_length)
    request = decode_infer_request(body.path.read_bytes(), header, SIGNATURE)
    np.testing.assert_array_equal(request.inputs["pixels"], ROW.reshape(1, 64).astype(np.float32))
    if route == bodies.ROUTE_V2_BINARY:
        assert body.content_type == BINARY_CONTENT_TYPE
        # Binary outputs are asked for, as tritonclient does by default.
        assert all(output.binary for output in request.outputs) or not request.outputs


def test_bad_rows_and_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="64 values"):
        bodies.encode_body(bodies.ROUTE_PREDICT, ROW[:10], SIGNATURE)
    with pytest.raises(ValueError, match="unknown route"):
        bodies.url_path("grpc", "digits")
