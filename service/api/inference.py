"""v2 inference: ``POST /v2/models/{name}[/versions/{version}]/infer``.

JSON tensors or the binary tensor data extension, in and out (``service.v2_codec``). Answered by
:func:`serve`, which ``service.inference_protocol`` calls straight from the HTTP protocol; the
FastAPI routes here answer the same way over ASGI and describe the route in ``/docs``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import schemas
from service.api.docs import error_responses, request_body, secured
from service.api.requests import (
    Answer,
    InferenceCall,
    Inputs,
    asgi_call,
    authorize,
    require_media_type,
    run_batched,
    runtime_of,
    to_response,
)
from service.contract import PATHS
from service.runtime import ServiceRuntime
from service.v2_codec import (
    BINARY_CONTENT_TYPE,
    BINARY_HEADER,
    JSON_CONTENT_TYPE,
    InferRequest,
    decode_infer_request,
    encode_infer_response,
)

_MEDIA_TYPES = (JSON_CONTENT_TYPE, BINARY_CONTENT_TYPE)


_BINARY_HEADER = BINARY_HEADER.lower()


async def serve(
    runtime: ServiceRuntime, call: InferenceCall, name: str, version: str | None
) -> Answer:
    """Answer one v2 inference request for model ``name`` (and ``version``)."""
    authorize(runtime, call.headers)
    model = runtime.served_model(name, version)
    signature = model.signature
    require_media_type(call.headers, _MEDIA_TYPES)
    binary_header = call.headers.get(_BINARY_HEADER)

    def decode(body: bytes) -> tuple[InferRequest, Inputs]:
        decoded = decode_infer_request(body, binary_header, signature)
        return decoded, decoded.inputs

    decoded, outputs = await run_batched(runtime, call, decode)
    encoded = encode_infer_response(
        signature=signature,
        model_name=runtime.settings.model_name,
        request=decoded,
        outputs=outputs,
    )
    return Answer(encoded.body, encoded.media_type, encoded.headers)


_DOCS: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {
            "model": schemas.InferResponseBody,
            "content": {BINARY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": "Outputs: JSON, or a JSON header then binary tensors if asked for.",
        },
        **error_responses(400, 401, 404, 408, 413, 415, 500, 503),
    },
    "openapi_extra": request_body(schemas.InferRequestBody, binary=True),
    "tags": ["inference"],
}

router = APIRouter()


@router.post(PATHS.MODEL_INFER, **_DOCS)
@secured
async def model_infer(request: Request, name: str) -> Response:
    """v2 inference, JSON tensors or the binary tensor data extension."""
    return to_response(await serve(runtime_of(request), asgi_call(request), name, None))


@router.post(PATHS.MODEL_METADATA + "/versions/{version}/infer", **_DOCS)
@secured
async def model_version_infer(request: Request, name: str, version: str) -> Response:
    """v2 inference on one version of the model."""
    return to_response(await serve(runtime_of(request), asgi_call(request), name, version))
