"""The v2 codec against bodies built by the stock tritonclient, plus property tests on garbage."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.errors import BadRequestError, InferenceError
from service.signature import PLATFORM_TORCHSCRIPT, ModelSignature, TensorSpec
from service.v2_codec import (
    BINARY_HEADER,
    InferRequest,
    RequestedOutput,
    decode_infer_request,
    encode_infer_response,
)

SIGNATURE = ModelSignature(
    name="multi",
    version="3",
    platform=PLATFORM_TORCHSCRIPT,
    artifact="model.ts",
    sha256="0" * 64,
    inputs=(
        TensorSpec("x", "FP32", (-1, 3)),
        TensorSpec("flags", "BOOL", (-1, 3)),
        TensorSpec("k", "INT8", (-1,)),
    ),
    outputs=(TensorSpec("y", "FP32", (-1, 2)), TensorSpec("idx", "INT64", (-1,))),
)
X = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
FLAGS = np.array([[True, False, True], [False, False, True]])
K = np.array([-128, 127], dtype=np.int8)


def triton_inputs(binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name, array, datatype in (("x", X, "FP32"), ("flags", FLAGS, "BOOL"), ("k", K, "INT8")):
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def json_request(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 3], "data": X.ravel().tolist()},
            {"name": "flags", "datatype": "BOOL", "shape": [2, 3], "data": FLAGS.tolist()},
            {"name": "k", "datatype": "INT8", "shape": [2], "data": K.tolist()},
        ]
    }
    document.update(overrides)
    return document


def decode(document: object, header: str | None = None) -> InferRequest:
    return decode_infer_request(json.dumps(document).encode(), header, SIGNATURE)


def assert_inputs(request: InferRequest) -> None:
    np.testing.assert_array_equal(request.inputs["x"], X)
    np.testing.assert_array_equal(request.inputs["flags"], FLAGS)
    np.testing.assert_array_equal(request.inputs["k"], K)
    assert request.inputs["x"].dtype == np.float32
    assert request.inputs["flags"].dtype == np.bool_
    assert request.batch_size == 2


@pytest.mark.parametrize("binary", [True, False])
def test_decodes_what_tritonclient_sends(binary: bool) -> None:
    body, json_size = triton.InferenceServerClient.generate_request_body(
        triton_inputs(binary), request_id="req-1"
    )
    assert (json_size is not None) == binary
    request = decode_infer_request(body, None if json_size is None else str(json_size), SIGNATURE)
    assert_inputs(request)
    assert request.id == "req-1"
    # tritonclient asks for binary outputs when it names none.
    assert request.outputs == (RequestedOutput("y", True), RequestedOutput("idx", True))


def test_decodes_nested_json_data_and_requested_outputs() -> None:
    request = decode(json_request(outputs=[{"name": "idx", "parameters": {"binary_data": False}}]))
    assert_inputs(request)
    assert request.outputs == (RequestedOutput("idx", False),)


OUTPUTS = {
    "y": np.array([[0.5, -1.5], [2.0, 3.25]], dtype=np.float32),
    "idx": np.array([7, 9], dtype=np.int64),
}


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_reads_what_the_codec_encodes(binary: bool) -> None:
    request = InferRequest(
        id="req-2",
        inputs={},
        outputs=(RequestedOutput("y", binary), RequestedOutput("idx", False)),
        batch_size=2,
    )
    encoded = encode_infer_response(
        signature=SIGNATURE, model_name="multi", request=request, outputs=OUTPUTS
    )
    header = encoded.headers.get(BINARY_HEADER)
    assert (header is not None) == binary
    result = triton.InferenceServerClient.parse_response_body(
        encoded.body, header_length=None if header is None else int(header)
    )
    np.testing.assert_array_equal(result.as_numpy("y"), OUTPUTS["y"])
    np.testing.assert_array_equal(result.as_numpy("idx"), OUTPUTS["idx"])
    response = result.get_response()
    assert response["model_name"] == "multi"
    assert response["model_version"] == "3"
    assert response["id"] == "req-2"


def test_json_cannot_carry_nan_outputs() -> None:
    request = InferRequest(id=None, inputs={}, outputs=(RequestedOutput("y", False),), batch_size=1)
    with pytest.raises(InferenceError, match="NaN"):
        encode_infer_response(
            signature=SIGNATURE,
            model_name="multi",
            request=request,
            outputs={"y": np.array([[np.nan, 1.0]], dtype=np.float32)},
        )


def with_input(index: int, **changes: Any) -> dict[str, Any]:
    document = json_request()
    document["inputs"][index].update(changes)
    return document


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([1, 2], "must be a JSON object"),
        ({"inputs": []}, "inputs must be a non-empty array"),
        (with_input(0, name="pixels"), "'pixels' is not an input of the model"),
        (with_input(0, datatype="FP64"), "has datatype 'FP64'; the model expects FP32"),
        (with_input(0, datatype="BYTES"), "v2 datatypes here"),
        (
            with_input(0, shape=[2, 4], data=[0.0] * 8),
            "has shape [2, 4]; the model expects [-1, 3]",
        ),
        (with_input(0, shape=[3, 3]), "has 6 values but shape [3, 3] needs 9"),
        (with_input(0, shape=[0, 3], data=[]), "is an empty batch"),
        (with_input(0, shape="2x3"), "must be an array of non-negative integers"),
        (with_input(0, data=[1, 2, float("nan"), 4, 5, 6]), "contains NaN or infinite values"),
        (with_input(0, data=[1, 2, 1e39, 4, 5, 6]), "contains NaN or infinite values"),
        (with_input(0, data=["1", 2, 3, 4, 5, 6]), "must hold only numbers"),
        (with_input(0, data=[[1, 2], [3, 4, 5, 6]]), "not a rectangular array"),
        (with_input(0, data=None), "must be an array of values"),
        (with_input(2, data=[1, 200]), "outside the range of INT8"),
        (with_input(2, data=[1.5, 2]), "must hold only integers"),
        (with_input(1, data=[[1, 0, 1], [0, 0, 1]]), "must hold only true/false values"),
        (with_input(2, shape=[3], data=[1, 2, 3]), "disagree on the batch size"),
        ({"inputs": json_request()["inputs"][:2]}, "missing model inputs: ['k']"),
        ({"inputs": [*json_request()["inputs"], json_request()["inputs"][0]]}, "given twice"),
        (json_request(outputs=[{"name": "z"}]), "'z' is not an output of the model"),
        (json_request(outputs=[{"name": "y"}, {"name": "y"}]), "requested twice"),
        (
            json_request(outputs=[{"name": "y", "parameters": {"classification": 2}}]),
            "classification",
        ),
        (json_request(parameters={"binary_data_output": "yes"}), "binary_data_output must be true"),
        (json_request(id=5), "id must be a string"),
        (
            with_input(0, parameters={"binary_data_size": 24}),
            "has both data and parameters.binary_data_size",
        ),
    ],
)
def test_bad_requests_say_what_is_wrong(document: object, expected: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        decode(document)
    assert expected in caught.value.message


def binary_body(size: int = 24, tail: bytes = b"") -> tuple[bytes, str]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": size},
                },
                {
                    "name": "flags",
                    "datatype": "BOOL",
                    "shape": [2, 3],
                    "data": FLAGS.ravel().tolist(),
                },
                {"name": "k", "datatype": "INT8", "shape": [2], "data": K.tolist()},
            ]
        }
    ).encode()
    return header + X.tobytes() + tail, str(len(header))


def test_binary_input_is_read_without_copying_through_python_lists() -> None:
    body, header = binary_body()
    request = decode_infer_request(body, header, SIGNATURE)
    assert_inputs(request)
    assert not request.inputs["x"].flags.writeable  # a view of the body, via np.frombuffer


@pytest.mark.parametrize(
    ("size", "tail", "header", "expected"),
    [
        (24, b"extra", None, "bytes after the last binary input"),
        (20, b"", None, "does not match shape [2, 3] of FP32 (24 bytes)"),
        (48, b"", None, "runs past the end of the body"),
        (24, b"", "abc", "must be an integer from 1 to the body length"),
        (24, b"", "0", "must be an integer from 1 to the body length"),
        (24, b"", "99999", "must be an integer from 1 to the body length"),
        (24, b"", "10", "is not valid JSON"),
    ],
)
def test_bad_binary_lengths_are_rejected(
    size: int, tail: bytes, header: str | None, expected: str
) -> None:
    body, real_header = binary_body(size, tail)
    with pytest.raises(BadRequestError) as caught:
        decode_infer_request(body, header or real_header, SIGNATURE)
    assert expected in caught.value.message


def test_binary_bool_bytes_must_be_zero_or_one() -> None:
    header = json.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
                {
                    "name": "flags",
                    "datatype": "BOOL",
                    "shape": [1, 3],
                    "parameters": {"binary_data_size": 3},
                },
                {"name": "k", "datatype": "INT8", "shape": [1], "data": [1]},
            ]
        }
    ).encode()
    with pytest.raises(BadRequestError, match="bytes 0 or 1"):
        decode_infer_request(header + b"\x00\x02\x01", str(len(header)), SIGNATURE)


# --- property tests: no input bytes make the codec raise anything but a 400 ------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)
tensor_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["x", "flags", "k", "y", ""]) | st.text(max_size=5),
        "datatype": st.sampled_from(["FP32", "BOOL", "INT8", "BYTES", "FP16"]) | json_values,
        "shape": st.lists(st.integers(-2, 4), max_size=3) | json_values,
        "data": st.lists(st.integers(-300, 300) | st.floats() | st.booleans(), max_size=12)
        | json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-5, 40) | json_values}
        )
        | json_values,
    },
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "inputs": st.lists(tensor_like, max_size=4) | json_values,
        "outputs": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["y", "idx", "q"])}), max_size=3
        )
        | json_values,
        "parameters": st.fixed_dictionaries({"binary_data_output": st.booleans() | json_values})
        | json_values,
    },
)


def decodes_or_rejects(body: bytes, header: str | None) -> None:
    try:
        request = decode_infer_request(body, header, SIGNATURE)
    except BadRequestError as exc:
        message = exc.message
    else:
        for spec in SIGNATURE.inputs:
            assert spec.matches(request.inputs[spec.name].shape)
        return
    assert message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=200), header=st.none() | st.text(max_size=6))
# Found by this test in CI: "²" passes str.isdigit() but int() refuses it.
@example(body=b"", header="\u00b2")
@example(body=b"{}", header="\u0661")
def test_garbage_bytes_are_a_bad_request(body: bytes, header: str | None) -> None:
    decodes_or_rejects(body, header)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents, tail=st.binary(max_size=40), use_header=st.booleans())
def test_structured_garbage_is_a_bad_request(
    document: dict[str, Any], tail: bytes, use_header: bool
) -> None:
    text = json.dumps(document).encode()
    if use_header:
        decodes_or_rejects(text + tail, str(len(text)))
    else:
        decodes_or_rejects(text, None)
