"""Open Inference Protocol v2 request decoding and response encoding, JSON and binary.

Implements the REST inference body of the v2 protocol and Triton's binary tensor data extension:
with the ``Inference-Header-Content-Length`` header the body is a JSON header followed by raw
little-endian tensors, one per input whose ``parameters.binary_data_size`` is set; outputs are
sent the same way when asked for with ``binary_data`` (per output) or ``binary_data_output``
(per request). Tensors are numpy arrays throughout (``np.frombuffer`` for binary data): building
Python lists of floats costs more than the forward pass of a small model.

Every problem is a :class:`service.errors.BadRequestError` whose message names the field and what is
allowed; nothing here raises anything else for any input bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from service.errors import BadRequestError, InferenceError
from service.signature import DATATYPES, ModelSignature, TensorSpec, numpy_dtype

#: Request and response header giving the length of the JSON part of a binary body.
BINARY_HEADER: Final = "Inference-Header-Content-Length"
#: Content type of a body that carries binary tensor data.
BINARY_CONTENT_TYPE: Final = "application/octet-stream"
JSON_CONTENT_TYPE: Final = "application/json"

# numpy kinds a JSON array may hold for each kind of target dtype: floats accept integers, integer
# types accept only integers, BOOL only true/false.
_ACCEPTED_KINDS: Final = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}
_KIND_WORDS: Final = {"f": "numbers", "i": "integers", "u": "integers", "b": "true/false values"}


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for and whether it wants it as binary data."""

    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    """A decoded, validated inference request: one array per model input, all of one batch size."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...]
    batch_size: int


@dataclass(frozen=True)
class EncodedResponse:
    """A response body with the content type and extra headers it needs."""

    body: bytes
    media_type: str
    headers: dict[str, str]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_shape(shape: tuple[int, ...], spec: TensorSpec, where: str) -> None:
    """Check a tensor shape against its spec: rank, fixed dims, no empty batch or dimension."""
    if len(shape) != len(spec.shape) or not spec.matches(shape):
        raise BadRequestError(
            f"{where} has shape {list(shape)}; the model expects {list(spec.shape)} "
            "(-1 = any size, the first dimension is the batch)"
        )
    if shape[0] == 0:
        raise BadRequestError(
            f"{where} is an empty batch (shape {list(shape)}); send at least one row"
        )
    if 0 in shape:
        raise BadRequestError(f"{where} has a zero-sized dimension (shape {list(shape)})")


def check_tensor(array: np.ndarray, spec: TensorSpec, where: str) -> None:
    """Check a decoded array against its spec: its shape, and finite values for floats."""
    check_shape(array.shape, spec, where)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise BadRequestError(f"{where} contains NaN or infinite values ({spec.datatype})")


def array_from_json(data: object, datatype: str, where: str) -> np.ndarray:
    """Turn a JSON array (flat or nested) into a numpy array of ``datatype``, strictly typed.

    Integer types reject fractions and out-of-range values instead of silently wrapping them, and
    no type accepts strings, objects or ragged nesting.
    """
    if not isinstance(data, list):
        raise BadRequestError(f"{where} must be an array of values, got {_json_type(data)}")
    target = numpy_dtype(datatype)
    try:
        array = np.asarray(data)
    except (ValueError, OverflowError, TypeError) as exc:
        raise BadRequestError(f"{where} is not a rectangular array of values ({exc})") from None
    accepted = _ACCEPTED_KINDS[target.kind]
    if array.size and array.dtype.kind not in accepted:
        raise BadRequestError(f"{where} must hold only {_KIND_WORDS[target.kind]} for {datatype}")
    if target.kind in "iu" and array.size:
        info = np.iinfo(target)
        if int(array.min()) < info.min or int(array.max()) > info.max:
            raise BadRequestError(f"{where} has values outside the range of {datatype}")
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(target, copy=False)


def _shape_of(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_int(dim) and dim >= 0 for dim in value):
        raise BadRequestError(
            f"{where} must be an array of non-negative integers, got {value!r:.100}"
        )
    return tuple(value)


def _binary_size(parameters: Mapping[str, Any], where: str) -> int | None:
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not _is_int(size) or size < 0:
        raise BadRequestError(f"{where}.parameters.binary_data_size must be a non-negative integer")
    return int(size)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestError(f"{where} must be a JSON object, got {_json_type(value)}")
    return value


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    text = header_length.strip()
    # isdigit() alone accepts "²" and other non-ASCII digits that int() refuses.
    if not (text.isascii() and text.isdigit()) or int(text) == 0 or int(text) > len(body):
        raise BadRequestError(
            f"header {BINARY_HEADER}={header_length!r:.40} must be an integer from 1 to the body "
            f"length ({len(body)} bytes)"
        )
    length = int(text)
    return body[:length], memoryview(body)[length:]


def _parse_json(text: bytes, what: str) -> object:
    try:
        return json.loads(text)
    except UnicodeDecodeError:
        raise BadRequestError(f"{what} is not UTF-8 text") from None
    except ValueError as exc:
        raise BadRequestError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequestError(f"{what} is nested too deeply") from None


def parse_json_body(body: bytes) -> object:
    """Parse a JSON request body; :class:`BadRequestError` saying why it is not JSON."""
    return _parse_json(body, "the request body")


class _BinaryReader:
    """Hands out consecutive slices of the binary part of a body, checking every length."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.offset = 0

    def read(self, size: int, where: str) -> memoryview:
        end = self.offset + size
        if end > len(self.data):
            raise BadRequestError(
                f"{where}.parameters.binary_data_size={size} runs past the end of the body "
                f"({len(self.data) - self.offset} binary bytes left)"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise BadRequestError(
                f"the body has {len(self.data) - self.offset} bytes after the last binary input; "
                f"check {BINARY_HEADER} and binary_data_size"
            )


def _array_from_binary(
    chunk: memoryview, spec: TensorSpec, shape: tuple[int, ...], where: str
) -> np.ndarray:
    dtype = numpy_dtype(spec.datatype)
    count = math.prod(shape)
    if len(chunk) != count * dtype.itemsize:
        raise BadRequestError(
            f"{where}.parameters.binary_data_size={len(chunk)} does not match shape "
            f"{list(shape)} of {spec.datatype} ({count * dtype.itemsize} bytes)"
        )
    if spec.datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and int(raw.max()) > 1:
            raise BadRequestError(f"{where} BOOL binary data must be bytes 0 or 1")
        return raw.view(np.bool_).reshape(shape)
    # The extension lays tensors out little-endian, whatever the host is.
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).reshape(shape)


def _decode_input(
    item: object, index: int, signature: ModelSignature, reader: _BinaryReader
) -> tuple[str, np.ndarray]:
    where = f"inputs[{index}]"
    tensor = _object(item, where)
    name = tensor.get("name")
    if not isinstance(name, str):
        raise BadRequestError(f"{where}.name must be a string naming a model input")
    known = [spec.name for spec in signature.inputs]
    if name not in known:
        raise BadRequestError(
            f"{where}.name {name!r:.100} is not an input of the model; inputs: {known}"
        )
    spec = signature.input(name)
    where = f"input {name!r}"
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        allowed = "" if datatype in DATATYPES else f" (v2 datatypes here: {', '.join(DATATYPES)})"
        raise BadRequestError(
            f"{where} has datatype {datatype!r:.40}; the model expects {spec.datatype}{allowed}"
        )
    shape = _shape_of(tensor.get("shape"), f"{where} shape")
    parameters = _object(tensor.get("parameters", {}), f"{where} parameters")
    size = _binary_size(parameters, where)
    if size is not None:
        if "data" in tensor:
            raise BadRequestError(
                f"{where} has both data and parameters.binary_data_size; send one"
            )
        # The shape is checked before the size is trusted to slice anything.
        check_shape(shape, spec, where)
        array = _array_from_binary(reader.read(size, where), spec, shape, where)
    else:
        if "data" not in tensor:
            raise BadRequestError(f"{where} has neither data nor parameters.binary_data_size")
        array = array_from_json(tensor["data"], spec.datatype, f"{where} data")
        if array.size != math.prod(shape):
            raise BadRequestError(
                f"{where} has {array.size} values but shape {list(shape)} needs {math.prod(shape)}"
            )
        array = array.reshape(shape)
    check_tensor(array, spec, where)
    return name, array


def _decode_outputs(
    value: object, signature: ModelSignature, binary_default: bool
) -> tuple[RequestedOutput, ...]:
    if value is None:
        return tuple(RequestedOutput(spec.name, binary_default) for spec in signature.outputs)
    if not isinstance(value, list) or not value:
        raise BadRequestError("outputs must be a non-empty array of {name, parameters} objects")
    known = [spec.name for spec in signature.outputs]
    requested: list[RequestedOutput] = []
    for index, item in enumerate(value):
        where = f"outputs[{index}]"
        output = _object(item, where)
        name = output.get("name")
        if not isinstance(name, str) or name not in known:
            raise BadRequestError(
                f"{where}.name {name!r:.100} is not an output of the model: {known}"
            )
        if any(existing.name == name for existing in requested):
            raise BadRequestError(f"{where}.name {name!r} is requested twice")
        parameters = _object(output.get("parameters", {}), f"{where}.parameters")
        if "classification" in parameters:
            raise BadRequestError(
                f"{where}.parameters.classification is not supported by this server"
            )
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise BadRequestError(f"{where}.parameters.binary_data must be true or false")
        requested.append(RequestedOutput(name, binary))
    return tuple(requested)


def decode_infer_request(
    body: bytes, header_length: str | None, signature: ModelSignature
) -> InferRequest:
    """Decode and validate a v2 inference request body against the model's signature."""
    json_part, binary_part = _split_body(body, header_length)
    what = "the request body" if header_length is None else f"the JSON header ({BINARY_HEADER})"
    document = _object(_parse_json(json_part, what), "the request")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError("id must be a string")
    parameters = _object(document.get("parameters", {}), "parameters")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise BadRequestError("parameters.binary_data_output must be true or false")
    items = document.get("inputs")
    if not isinstance(items, list) or not items:
        raise BadRequestError(
            "inputs must be a non-empty array of tensors {name, datatype, shape, data}"
        )
    reader = _BinaryReader(binary_part)
    inputs: dict[str, np.ndarray] = {}
    for index, item in enumerate(items):
        name, array = _decode_input(item, index, signature, reader)
        if name in inputs:
            raise BadRequestError(f"input {name!r} is given twice")
        inputs[name] = array
    reader.finish()
    missing = [spec.name for spec in signature.inputs if spec.name not in inputs]
    if missing:
        raise BadRequestError(f"missing model inputs: {missing}")
    batch_sizes = {name: array.shape[0] for name, array in inputs.items()}
    if len(set(batch_sizes.values())) > 1:
        raise BadRequestError(f"inputs disagree on the batch size (first dimension): {batch_sizes}")
    outputs = _decode_outputs(document.get("outputs"), signature, binary_default)
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=outputs,
        batch_size=next(iter(batch_sizes.values())),
    )


def encode_infer_response(
    *,
    signature: ModelSignature,
    model_name: str,
    request: InferRequest,
    outputs: Mapping[str, np.ndarray],
) -> EncodedResponse:
    """Encode model outputs as a v2 response: JSON, or JSON header + binary tensors if asked."""
    header: dict[str, Any] = {"model_name": model_name, "model_version": signature.version}
    if request.id is not None:
        header["id"] = request.id
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for wanted in request.outputs:
        spec = next(spec for spec in signature.outputs if spec.name == wanted.name)
        array = np.asarray(outputs[wanted.name], dtype=numpy_dtype(spec.datatype))
        tensor: dict[str, Any] = {
            "name": spec.name,
            "datatype": spec.datatype,
            "shape": list(array.shape),
        }
        if wanted.binary:
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise InferenceError(
                    f"output {spec.name!r} holds NaN or infinite values, which JSON cannot carry; "
                    "ask for it with binary_data=true"
                )
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    header["outputs"] = tensors
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    if not blobs:
        return EncodedResponse(header_bytes, JSON_CONTENT_TYPE, {})
    return EncodedResponse(
        b"".join([header_bytes, *blobs]),
        BINARY_CONTENT_TYPE,
        {BINARY_HEADER: str(len(header_bytes))},
    )
