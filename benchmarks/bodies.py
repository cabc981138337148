"""The request bodies of the benchmark: one digit image in each of the service's three encodings.

Every request carries one row (batch 1): the server, not the client, forms batches. The same
``/predict`` body goes to our server and to LitServe, so both parse exactly the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from benchmarks.loadgen import Body
from service.signature import DATATYPE_ITEMSIZE, ModelSignature, numpy_dtype
from service.v2_codec import BINARY_CONTENT_TYPE, JSON_CONTENT_TYPE

#: The encodings a benchmark cell can send, by the name the tables use.
ROUTE_PREDICT: Final = "predict"
ROUTE_V2_JSON: Final = "v2-json"
ROUTE_V2_BINARY: Final = "v2-binary"
ROUTES: Final = (ROUTE_PREDICT, ROUTE_V2_JSON, ROUTE_V2_BINARY)


def url_path(route: str, model_name: str) -> str:
    """The URL path a route's body is posted to."""
    if route == ROUTE_PREDICT:
        return "/predict"
    if route in (ROUTE_V2_JSON, ROUTE_V2_BINARY):
        return f"/v2/models/{model_name}/infer"
    raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")


def _single_input(signature: ModelSignature) -> tuple[str, str, int]:
    if len(signature.inputs) != 1:
        names = [spec.name for spec in signature.inputs]
        raise ValueError(f"the benchmark sends one input tensor; the model has {names}")
    spec = signature.inputs[0]
    if any(dim == -1 for dim in spec.shape[1:]):
        raise ValueError(f"input {spec.name!r} needs fixed non-batch dims, has {list(spec.shape)}")
    return spec.name, spec.datatype, int(np.prod(spec.shape[1:]))


def encode_body(
    route: str, row: npt.NDArray[np.generic], signature: ModelSignature
) -> tuple[bytes, int | None]:
    """One request carrying ``row`` (one flat input row) in ``route``'s encoding.

    Returns the body and, for the binary encoding, the length of its JSON header (the value of
    the ``Inference-Header-Content-Length`` header); None for plain JSON bodies.
    """
    name, datatype, width = _single_input(signature)
    if row.ndim != 1 or row.size != width:
        raise ValueError(f"row must be flat with {width} values, got shape {list(row.shape)}")
    values = row.tolist()
    if route == ROUTE_PREDICT:
        return json.dumps({"instances": [values]}).encode(), None
    tensor: dict[str, object] = {"name": name, "shape": [1, width], "datatype": datatype}
    if route == ROUTE_V2_JSON:
        tensor["data"] = values
        return json.dumps({"inputs": [tensor]}).encode(), None
    if route == ROUTE_V2_BINARY:
        data = np.ascontiguousarray(row, dtype=numpy_dtype(datatype).newbyteorder("<")).tobytes()
        assert len(data) == width * DATATYPE_ITEMSIZE[datatype]
        tensor["parameters"] = {"binary_data_size": len(data)}
        # Ask for binary outputs too, as tritonclient.http does by default.
        header = {"inputs": [tensor], "parameters": {"binary_data_output": True}}
        header_bytes = json.dumps(header).encode()
        return header_bytes + data, len(header_bytes)
    raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")


def write_body(
    route: str, row: npt.NDArray[np.generic], signature: ModelSignature, directory: Path
) -> Body:
    """Write the body of ``route`` into ``directory`` and describe it for the load generator."""
    payload, header_length = encode_body(route, row, signature)
    path = directory / f"{signature.name}-{route}.body"
    path.write_bytes(payload)
    if header_length is not None:
        return Body(path, BINARY_CONTENT_TYPE, header_length)
    return Body(path, JSON_CONTENT_TYPE)
