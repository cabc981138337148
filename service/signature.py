"""The model signature: what a model directory declares about its artifact, inputs and outputs.

A model directory holds ``signature.json`` next to the artifact it describes. The signature names
the tensors in the Open Inference Protocol v2 vocabulary (datatype strings such as ``FP32``, shapes
with ``-1`` for a dimension of any size, dimension 0 being the batch), so the server can answer
model-metadata requests and validate inputs without touching torch.

This module is imported by the server's request path and by tools, so it stays cheap: numpy and
torch are only imported inside the helpers that map datatypes onto them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    import torch

#: File name of the signature inside a model directory.
SIGNATURE_FILE: Final = "signature.json"
#: Version of the signature file layout; bumped only on incompatible changes.
SIGNATURE_FORMAT_VERSION: Final = 1

#: Open Inference Protocol v2 datatypes that map onto a torch dtype.
DATATYPES: Final = ("BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64")
#: Bytes per element of each datatype, as the v2 binary tensor extension lays them out.
DATATYPE_ITEMSIZE: Final[Mapping[str, int]] = {
    "BOOL": 1,
    "UINT8": 1,
    "INT8": 1,
    "INT16": 2,
    "INT32": 4,
    "INT64": 8,
    "FP16": 2,
    "FP32": 4,
    "FP64": 8,
}
_NUMPY_DTYPE_NAMES: Final[Mapping[str, str]] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_DATATYPE_BY_NUMPY_NAME: Final = {name: dt for dt, name in _NUMPY_DTYPE_NAMES.items()}

#: Platforms a model directory may declare, and the artifact file name each one uses by default.
PLATFORM_TORCHSCRIPT: Final = "pytorch_torchscript"
PLATFORM_EXPORT: Final = "pytorch_export"
PLATFORMS: Final = (PLATFORM_TORCHSCRIPT, PLATFORM_EXPORT)
DEFAULT_ARTIFACT: Final[Mapping[str, str]] = {
    PLATFORM_TORCHSCRIPT: "model.ts",
    PLATFORM_EXPORT: "model.pt2",
}

# Model names and versions end up in URL paths (/v2/models/{name}) and in file names.
_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SHA256_PATTERN: Final = re.compile(r"[0-9a-f]{64}")
_TOP_LEVEL_KEYS: Final = frozenset(
    {
        "signature_version",
        "name",
        "version",
        "platform",
        "artifact",
        "sha256",
        "inputs",
        "outputs",
        "labels",
        "metrics",
    }
)
_TENSOR_KEYS: Final = frozenset({"name", "datatype", "shape"})


class SignatureError(ValueError):
    """A signature field holds a value that is not allowed; the message names all three."""

    def __init__(self, field_name: str, value: object, allowed: str) -> None:
        self.field = field_name
        self.value = value
        self.allowed = allowed
        super().__init__(f"signature field {field_name!r}: got {value!r}; allowed: {allowed}")


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a v2 datatype (``FP32`` -> ``float32``)."""
    import numpy as np

    _check_datatype("datatype", datatype)
    return np.dtype(_NUMPY_DTYPE_NAMES[datatype])


def torch_dtype(datatype: str) -> torch.dtype:
    """The torch dtype of a v2 datatype (``FP32`` -> ``torch.float32``)."""
    import torch

    _check_datatype("datatype", datatype)
    dtype = getattr(torch, _NUMPY_DTYPE_NAMES[datatype])
    assert isinstance(dtype, torch.dtype)
    return dtype


def datatype_of_numpy(dtype: np.dtype[Any]) -> str:
    """The v2 datatype of a numpy dtype; ``SignatureError`` for one v2 cannot carry."""
    name = str(dtype)
    if name not in _DATATYPE_BY_NUMPY_NAME:
        raise SignatureError(
            "datatype", name, f"a numpy dtype among {sorted(_DATATYPE_BY_NUMPY_NAME)}"
        )
    return _DATATYPE_BY_NUMPY_NAME[name]


def datatype_of_torch(dtype: torch.dtype) -> str:
    """The v2 datatype of a torch dtype; ``SignatureError`` for one v2 cannot carry."""
    name = str(dtype).removeprefix("torch.")
    if name not in _DATATYPE_BY_NUMPY_NAME:
        raise SignatureError(
            "datatype", str(dtype), f"a torch dtype among {sorted(_DATATYPE_BY_NUMPY_NAME)}"
        )
    return _DATATYPE_BY_NUMPY_NAME[name]


def _check_datatype(field_name: str, datatype: object) -> None:
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise SignatureError(field_name, datatype, f"one of {', '.join(DATATYPES)}")


def _check_name(field_name: str, value: object) -> None:
    if not isinstance(value, str) or not _NAME_PATTERN.fullmatch(value):
        raise SignatureError(
            field_name,
            value,
            "1-128 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit",
        )


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output tensor: its v2 datatype and shape.

    ``-1`` in ``shape`` means any size. Dimension 0 is the batch dimension and is always ``-1``:
    the server stacks requests along it.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        where = "tensor"
        _check_name(f"{where}.name", self.name)
        _check_datatype(f"{where}.datatype", self.datatype)
        shape_rule = "a list of at least one int, -1 first (the batch dim), then -1 or sizes >= 1"
        if not isinstance(self.shape, tuple) or not self.shape:
            raise SignatureError(f"{where}.shape", self.shape, shape_rule)
        for dim in self.shape:
            if isinstance(dim, bool) or not isinstance(dim, int) or dim == 0 or dim < -1:
                raise SignatureError(f"{where}.shape", list(self.shape), shape_rule)
        if self.shape[0] != -1:
            raise SignatureError(f"{where}.shape", list(self.shape), shape_rule)

    def matches(self, shape: Sequence[int]) -> bool:
        """Whether a concrete tensor shape fits this spec (same rank, fixed dims equal)."""
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )

    def example_shape(self, batch_size: int) -> tuple[int, ...]:
        """A concrete shape for a batch of ``batch_size``, with 1 for every other free dim."""
        return (batch_size, *(1 if dim == -1 else dim for dim in self.shape[1:]))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, also the v2 model-metadata form of a tensor."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: object, where: str) -> TensorSpec:
        """Build and validate a spec from its JSON form; errors name the field as ``where.key``."""
        if not isinstance(data, dict):
            raise SignatureError(where, data, "an object with keys name, datatype, shape")
        unknown = sorted(set(data) - _TENSOR_KEYS)
        if unknown:
            raise SignatureError(where, unknown, "only the keys name, datatype, shape")
        missing = sorted(_TENSOR_KEYS - set(data))
        if missing:
            raise SignatureError(f"{where}.{missing[0]}", None, "a value (the key is required)")
        shape = data["shape"]
        if not isinstance(shape, list):
            raise SignatureError(f"{where}.shape", shape, "a list of ints")
        try:
            return cls(name=data["name"], datatype=data["datatype"], shape=tuple(shape))
        except SignatureError as exc:
            # Re-aim the error at the field's place in the document ("inputs[0].shape").
            field_name = where + exc.field.removeprefix("tensor")
            raise SignatureError(field_name, exc.value, exc.allowed) from None


def _check_tensors(field_name: str, tensors: object) -> None:
    if not isinstance(tensors, tuple) or not tensors:
        raise SignatureError(field_name, tensors, "a non-empty list of tensors")
    seen: set[str] = set()
    for index, spec in enumerate(tensors):
        if not isinstance(spec, TensorSpec):
            raise SignatureError(f"{field_name}[{index}]", spec, "a TensorSpec")
        if spec.name in seen:
            raise SignatureError(f"{field_name}[{index}].name", spec.name, "a name not used before")
        seen.add(spec.name)


@dataclass(frozen=True)
class ModelSignature:
    """Everything a model directory declares: identity, artifact, tensors, labels and metrics.

    Every field is validated on construction, so an instance is always usable; a bad value raises
    ``SignatureError`` naming the field, the value and what is allowed.
    """

    name: str
    version: str
    platform: str
    artifact: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...] | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_name("name", self.name)
        _check_name("version", self.version)
        if self.platform not in PLATFORMS:
            raise SignatureError("platform", self.platform, f"one of {', '.join(PLATFORMS)}")
        if (
            not isinstance(self.artifact, str)
            or not _NAME_PATTERN.fullmatch(self.artifact)
            or self.artifact == SIGNATURE_FILE
        ):
            raise SignatureError(
                "artifact",
                self.artifact,
                "a plain file name inside the model directory (no '/', not signature.json)",
            )
        if not isinstance(self.sha256, str) or not _SHA256_PATTERN.fullmatch(self.sha256):
            raise SignatureError("sha256", self.sha256, "64 lowercase hex digits")
        _check_tensors("inputs", self.inputs)
        _check_tensors("outputs", self.outputs)
        self._check_labels()
        self._check_metrics()

    def _check_labels(self) -> None:
        if self.labels is None:
            return
        classes = self.outputs[0].shape[-1]
        rule = f"null, or one distinct string per class of output {self.outputs[0].name!r}"
        if not isinstance(self.labels, tuple) or not all(isinstance(x, str) for x in self.labels):
            raise SignatureError("labels", self.labels, rule)
        if len(self.labels) != classes or len(set(self.labels)) != len(self.labels):
            raise SignatureError("labels", list(self.labels), f"{rule} ({classes} classes)")

    def _check_metrics(self) -> None:
        if not isinstance(self.metrics, dict):
            raise SignatureError("metrics", self.metrics, "an object of name -> finite number")
        for key, value in self.metrics.items():
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if not isinstance(key, str) or not key or not is_number or not math.isfinite(value):
                raise SignatureError(
                    f"metrics.{key}", value, "a finite number under a non-empty name"
                )

    def input(self, name: str) -> TensorSpec:
        """The input spec called ``name``; ``KeyError`` naming the known inputs otherwise."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(
            f"unknown input {name!r}; the model's inputs are {[s.name for s in self.inputs]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to ``signature.json``."""
        return {
            "signature_version": SIGNATURE_FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "platform": self.platform,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
            "labels": None if self.labels is None else list(self.labels),
            "metrics": dict(self.metrics),
        }

    def to_json(self) -> str:
        """The text of ``signature.json`` (stable key order, so identical models diff cleanly)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: object) -> ModelSignature:
        """Build and validate a signature from its JSON form."""
        if not isinstance(data, dict):
            raise SignatureError("(document)", data, "a JSON object")
        unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
        if unknown:
            raise SignatureError("(document)", unknown, f"only the keys {sorted(_TOP_LEVEL_KEYS)}")
        version = data.get("signature_version", SIGNATURE_FORMAT_VERSION)
        if version != SIGNATURE_FORMAT_VERSION:
            raise SignatureError("signature_version", version, str(SIGNATURE_FORMAT_VERSION))
        required = ("name", "version", "platform", "artifact", "sha256", "inputs", "outputs")
        for key in required:
            if key not in data:
                raise SignatureError(key, None, "a value (the key is required)")
        tensors: dict[str, tuple[TensorSpec, ...]] = {}
        for key in ("inputs", "outputs"):
            items = data[key]
            if not isinstance(items, list) or not items:
                raise SignatureError(key, items, "a non-empty list of tensors")
            tensors[key] = tuple(
                TensorSpec.from_dict(item, f"{key}[{i}]") for i, item in enumerate(items)
            )
        labels = data.get("labels")
        if labels is not None and not isinstance(labels, list):
            raise SignatureError("labels", labels, "null or a list of strings")
        metrics = data.get("metrics", {})
        return cls(
            name=data["name"],
            version=data["version"],
            platform=data["platform"],
            artifact=data["artifact"],
            sha256=data["sha256"],
            inputs=tensors["inputs"],
            outputs=tensors["outputs"],
            labels=None if labels is None else tuple(labels),
            metrics=dict(metrics) if isinstance(metrics, dict) else metrics,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSignature:
        """Parse and validate the text of ``signature.json``."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SignatureError("(document)", f"unparsable JSON ({exc})", "a JSON object") from exc
        return cls.from_dict(data)

    @classmethod
    def read(cls, model_dir: str | Path) -> ModelSignature:
        """Read ``signature.json`` of a model directory (``OSError`` if it cannot be read)."""
        return cls.from_json((Path(model_dir) / SIGNATURE_FILE).read_bytes())

    def write(self, model_dir: str | Path) -> Path:
        """Write ``signature.json`` into a model directory and return its path."""
        path = Path(model_dir) / SIGNATURE_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path
