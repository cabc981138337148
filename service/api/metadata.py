"""v2 metadata: the server's, the model's (inputs and outputs), and the model's readiness.

Model metadata needs the API key when one is configured (it describes the inference routes);
server metadata and model readiness stay open, as probes and discovery need them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service import schemas
from service.api.docs import error_responses, secured
from service.api.requests import authorize, runtime_of
from service.contract import PATHS
from service.errors import NotReadyError
from service.runtime import ServableModel, ServiceRuntime

SERVER_NAME = "torch-eks-inference"
SERVER_VERSION = "0.1.0"
#: v2 protocol extensions this server implements.
EXTENSIONS = ("binary_tensor_data",)

_VERSION = PATHS.MODEL_METADATA + "/versions/{version}"
_METADATA_ERRORS = error_responses(401, 404, 503)
_READY_ERRORS = error_responses(404, 503)

router = APIRouter()


@router.get(PATHS.SERVER_METADATA, response_model=schemas.ServerMetadata, tags=["metadata"])
async def server_metadata() -> dict[str, Any]:
    """v2 server metadata: name, version and supported extensions."""
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}


@router.get(
    PATHS.MODEL_METADATA,
    response_model=schemas.ModelMetadata,
    responses=_METADATA_ERRORS,
    tags=["metadata"],
)
@secured
async def model_metadata(request: Request, name: str) -> dict[str, Any]:
    """v2 model metadata: inputs and outputs with name, datatype and shape."""
    runtime = runtime_of(request)
    authorize(runtime, request.headers)
    return _metadata(runtime, runtime.served_model(name))


@router.get(
    _VERSION, response_model=schemas.ModelMetadata, responses=_METADATA_ERRORS, tags=["metadata"]
)
@secured
async def model_version_metadata(request: Request, name: str, version: str) -> dict[str, Any]:
    """v2 model metadata of one version (this server serves exactly one)."""
    runtime = runtime_of(request)
    authorize(runtime, request.headers)
    return _metadata(runtime, runtime.served_model(name, version))


@router.get(
    PATHS.MODEL_READY, response_model=schemas.ModelReady, responses=_READY_ERRORS, tags=["health"]
)
async def model_ready(request: Request, name: str) -> dict[str, Any]:
    """v2 model readiness: 200 when the model answers inference requests, 503 otherwise."""
    return _ready(runtime_of(request), name, None)


@router.get(
    _VERSION + "/ready",
    response_model=schemas.ModelReady,
    responses=_READY_ERRORS,
    tags=["health"],
)
async def model_version_ready(request: Request, name: str, version: str) -> dict[str, Any]:
    """v2 model readiness of one version."""
    return _ready(runtime_of(request), name, version)


def _metadata(runtime: ServiceRuntime, model: ServableModel) -> dict[str, Any]:
    signature = model.signature
    return {
        "name": runtime.settings.model_name,
        "versions": [signature.version],
        "platform": signature.platform,
        "inputs": [spec.to_dict() for spec in signature.inputs],
        "outputs": [spec.to_dict() for spec in signature.outputs],
    }


def _ready(runtime: ServiceRuntime, name: str, version: str | None) -> dict[str, Any]:
    runtime.served_model(name, version)  # 404 for another model or version
    if not runtime.ready:
        raise NotReadyError(f"model {name!r} is not ready: {runtime.not_ready_reason()}")
    return {"name": name, "ready": True}
