"""Pydantic models of the request and response bodies, for the OpenAPI document only.

The routes decode bodies themselves (numpy, strict checks, one error format), so these models
never parse traffic; they make ``/docs`` and ``/openapi.json`` describe the real bodies, which is
what the schema-driven fuzz test generates requests from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

# A handwritten "0" from the digits data set: the bundled model's input, for /docs' "Try it out".
EXAMPLE_DIGIT: list[JsonValue] = [
    0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0,
    0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0,
    0, 6, 13, 10, 0, 0, 0,
]  # fmt: skip

Datatype = Literal["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"]


class ErrorResponse(BaseModel):
    """Every error the service answers with."""

    error: str = Field(description="What was wrong, naming the field or setting at fault.")


class LiveResponse(BaseModel):
    """Liveness: the process answers HTTP."""

    live: bool


class ReadyResponse(BaseModel):
    """Readiness: the model is loaded and warmed up and the server is not shutting down."""

    ready: bool


class ServerMetadata(BaseModel):
    """v2 server metadata."""

    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    """Name, datatype and shape of a model input or output (-1 = any size; dim 0 is the batch)."""

    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(BaseModel):
    """v2 model metadata."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ModelReady(BaseModel):
    """v2 model readiness."""

    name: str
    ready: bool


class InputParameters(BaseModel):
    """Per-input parameters of the binary tensor data extension."""

    model_config = ConfigDict(extra="allow")
    binary_data_size: int | None = Field(
        default=None, ge=0, description="Bytes of this input in the binary part of the body."
    )


class InferInputTensor(BaseModel):
    """One input tensor: row-major ``data`` (flat or nested), or binary data after the header."""

    name: str
    shape: list[int] = Field(description="Concrete shape; the first dimension is the batch.")
    datatype: Datatype
    parameters: InputParameters | None = None
    data: list[Any] | None = Field(default=None, description="Values, row-major.")


class OutputParameters(BaseModel):
    """Per-output parameters of the binary tensor data extension."""

    model_config = ConfigDict(extra="allow")
    binary_data: bool | None = Field(default=None, description="Send this output as binary.")


class InferRequestedOutput(BaseModel):
    """An output the client wants back (all outputs when ``outputs`` is omitted)."""

    name: str
    parameters: OutputParameters | None = None


class RequestParameters(BaseModel):
    """Request-level parameters."""

    model_config = ConfigDict(extra="allow")
    binary_data_output: bool | None = Field(
        default=None, description="Send every output as binary unless it says otherwise."
    )


class InferRequestBody(BaseModel):
    """A v2 inference request (the JSON part, when binary tensor data follows it)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "inputs": [
                        {
                            "name": "pixels",
                            "datatype": "FP32",
                            "shape": [1, 64],
                            "data": EXAMPLE_DIGIT,
                        }
                    ]
                }
            ]
        }
    )
    id: str | None = None
    parameters: RequestParameters | None = None
    inputs: list[InferInputTensor] = Field(min_length=1)
    outputs: list[InferRequestedOutput] | None = None


class InferOutputTensor(BaseModel):
    """One output tensor, with ``data`` or, when sent as binary, ``parameters.binary_data_size``."""

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponseBody(BaseModel):
    """A v2 inference response (the JSON part, when binary tensor data follows it)."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutputTensor]


class PredictRequest(BaseModel):
    """Rows to predict: each the model's input for one example, e.g. 64 pixel values for digits."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"instances": [EXAMPLE_DIGIT]}]})
    instances: list[list[Any] | dict[str, list[Any]]] = Field(min_length=1)


class PredictResponse(BaseModel):
    """One prediction per row: every output's values, and ``label`` when the model has labels."""

    model_name: str
    model_version: str
    predictions: list[dict[str, Any]]
