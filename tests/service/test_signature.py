"""The model signature: round trip, every validation error, datatype mapping, cheap import."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from service.signature import (
    DATATYPE_ITEMSIZE,
    DATATYPES,
    ModelSignature,
    SignatureError,
    TensorSpec,
    datatype_of_numpy,
    datatype_of_torch,
    numpy_dtype,
    torch_dtype,
)

SHA = "a" * 64


def valid_document() -> dict[str, Any]:
    return {
        "signature_version": 1,
        "name": "digits",
        "version": "1",
        "platform": "pytorch_export",
        "artifact": "model.pt2",
        "sha256": SHA,
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
        "labels": [str(i) for i in range(10)],
        "metrics": {"holdout_accuracy": 0.99},
    }


def test_round_trip_keeps_every_field() -> None:
    signature = ModelSignature.from_json(json.dumps(valid_document()))
    assert signature.inputs == (TensorSpec("pixels", "FP32", (-1, 64)),)
    assert signature.labels == tuple("0123456789")
    assert signature.metrics == {"holdout_accuracy": 0.99}
    assert ModelSignature.from_json(signature.to_json()) == signature
    assert json.loads(signature.to_json()) == valid_document()


def test_optional_fields_default() -> None:
    document = valid_document()
    for key in ("labels", "metrics", "signature_version"):
        del document[key]
    signature = ModelSignature.from_dict(document)
    assert signature.labels is None
    assert signature.metrics == {}


def test_write_then_read(tmp_path: Any) -> None:
    signature = ModelSignature.from_dict(valid_document())
    path = signature.write(tmp_path)
    assert path.name == "signature.json"
    assert ModelSignature.read(tmp_path) == signature


def _set(document: dict[str, Any], dotted: str, value: Any) -> None:
    target: Any = document
    *parents, last = dotted.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is _DELETE:
        del target[key]
    else:
        target[key] = value


_DELETE = object()

# (path in the document, bad value, field named in the error, words of the "allowed" part)
INVALID_FIELDS = [
    ("name", "", "name", "1-128 characters"),
    ("name", "digits/v2", "name", "1-128 characters"),
    ("name", 7, "name", "1-128 characters"),
    ("version", "", "version", "1-128 characters"),
    ("platform", "onnx", "platform", "pytorch_torchscript, pytorch_export"),
    ("artifact", "../model.pt2", "artifact", "plain file name"),
    ("artifact", "signature.json", "artifact", "plain file name"),
    ("sha256", "abc", "sha256", "64 lowercase hex digits"),
    ("sha256", "A" * 64, "sha256", "64 lowercase hex digits"),
    ("sha256", _DELETE, "sha256", "the key is required"),
    ("inputs", [], "inputs", "non-empty list"),
    ("inputs", {"name": "pixels"}, "inputs", "non-empty list"),
    ("inputs.0.datatype", "FLOAT32", "inputs[0].datatype", "one of BOOL, UINT8"),
    ("inputs.0.datatype", "BYTES", "inputs[0].datatype", "one of BOOL, UINT8"),
    ("inputs.0.shape", [64], "inputs[0].shape", "-1 first (the batch dim)"),
    ("inputs.0.shape", [-1, 0], "inputs[0].shape", "sizes >= 1"),
    ("inputs.0.shape", [-1, -2], "inputs[0].shape", "sizes >= 1"),
    ("inputs.0.shape", [-1, "64"], "inputs[0].shape", "sizes >= 1"),
    ("inputs.0.shape", [-1, True], "inputs[0].shape", "sizes >= 1"),
    ("inputs.0.shape", [], "inputs[0].shape", "at least one int"),
    ("inputs.0.shape", "-1,64", "inputs[0].shape", "a list of ints"),
    ("inputs.0.name", _DELETE, "inputs[0].name", "the key is required"),
    ("inputs.0.name", "has space", "inputs[0].name", "1-128 characters"),
    ("inputs.0.dims", [1], "inputs[0]", "only the keys name, datatype, shape"),
    ("inputs.0", "pixels", "inputs[0]", "an object with keys"),
    ("outputs", _DELETE, "outputs", "the key is required"),
    ("outputs.0.shape", [-1, 11], "labels", "(11 classes)"),
    ("labels", ["0", "1"], "labels", "(10 classes)"),
    ("labels", ["0"] * 10, "labels", "one distinct string per class"),
    ("labels", list(range(10)), "labels", "one distinct string per class"),
    ("labels", "0123456789", "labels", "null or a list of strings"),
    ("metrics", {"holdout_accuracy": float("nan")}, "metrics.holdout_accuracy", "finite number"),
    ("metrics", {"holdout_accuracy": "high"}, "metrics.holdout_accuracy", "finite number"),
    ("metrics", {"ok": True}, "metrics.ok", "finite number"),
    ("metrics", [0.99], "metrics", "name -> finite number"),
    ("signature_version", 2, "signature_version", "1"),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "allowed"),
    INVALID_FIELDS,
    ids=[f"{case[0]}={case[1]!r}"[:60] for case in INVALID_FIELDS],
)
def test_each_invalid_field_is_named(path: str, value: Any, field: str, allowed: str) -> None:
    document = copy.deepcopy(valid_document())
    _set(document, path, value)
    with pytest.raises(SignatureError) as caught:
        ModelSignature.from_json(json.dumps(document))
    error = caught.value
    assert error.field == field
    assert allowed in error.allowed
    message = str(error)
    assert repr(field) in message
    assert allowed in message
    if value is not _DELETE and not isinstance(value, (list, dict)):
        assert repr(value) in message or str(value) in message


def test_unknown_keys_are_named() -> None:
    document = valid_document()
    document["model_name"] = "digits"
    with pytest.raises(
        SignatureError, match=r"'\(document\)': got \['model_name'\]; allowed: only"
    ):
        ModelSignature.from_dict(document)


def test_duplicate_tensor_names_are_refused() -> None:
    document = valid_document()
    document["inputs"].append(dict(document["inputs"][0]))
    with pytest.raises(SignatureError, match=r"'inputs\[1\]\.name'.*'pixels'.*not used before"):
        ModelSignature.from_dict(document)


@pytest.mark.parametrize(
    "text", ["{not json", "[1, 2]", b"\xff\xfe", "null"], ids=["broken", "array", "bytes", "null"]
)
def test_a_document_that_is_not_an_object_is_refused(text: str | bytes) -> None:
    with pytest.raises(SignatureError, match=r"'\(document\)'.*a JSON object"):
        ModelSignature.from_json(text)


def test_constructing_in_code_validates_too() -> None:
    with pytest.raises(SignatureError, match=r"'tensor\.datatype'"):
        TensorSpec("x", "FP31", (-1,))
    with pytest.raises(SignatureError, match="'inputs'"):
        ModelSignature("m", "1", "pytorch_export", "model.pt2", SHA, (), ())


def test_tensor_spec_matches_only_compatible_shapes() -> None:
    spec = TensorSpec("x", "FP32", (-1, 3, -1))
    assert spec.matches((5, 3, 7))
    assert spec.matches([1, 3, 1])
    assert not spec.matches((5, 4, 7))
    assert not spec.matches((5, 3))
    assert not spec.matches((5, 3, 7, 1))
    assert spec.example_shape(4) == (4, 3, 1)


def test_input_lookup_names_the_known_inputs() -> None:
    signature = ModelSignature.from_dict(valid_document())
    assert signature.input("pixels").datatype == "FP32"
    with pytest.raises(KeyError, match=r"unknown input 'image'.*\['pixels'\]"):
        signature.input("image")


@pytest.mark.parametrize("datatype", DATATYPES)
def test_datatypes_map_both_ways(datatype: str) -> None:
    np_dtype = numpy_dtype(datatype)
    assert datatype_of_numpy(np_dtype) == datatype
    assert np_dtype.itemsize == DATATYPE_ITEMSIZE[datatype]
    t_dtype = torch_dtype(datatype)
    assert datatype_of_torch(t_dtype) == datatype
    assert torch.zeros(1, dtype=t_dtype).numpy().dtype == np_dtype


def test_unmappable_dtypes_are_refused() -> None:
    with pytest.raises(SignatureError, match="complex64"):
        datatype_of_numpy(np.dtype(np.complex64))
    with pytest.raises(SignatureError, match="bfloat16"):
        datatype_of_torch(torch.bfloat16)
    with pytest.raises(SignatureError, match=r"'datatype'.*'STRING'"):
        numpy_dtype("STRING")


def test_importing_the_runtime_modules_stays_light() -> None:
    # The request path imports the signature; the served image has no scikit-learn at all.
    probe = (
        "import sys, service.signature;"
        "heavy = {'torch', 'numpy', 'sklearn'} & set(sys.modules);"
        "assert not heavy, heavy;"
        "import service.model_loader;"
        "assert 'sklearn' not in sys.modules, 'the loader imported scikit-learn'"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
