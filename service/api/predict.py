"""``POST /predict``: ``{"instances": [row, ...]}`` in, labelled predictions out.

Answered by :func:`serve`, which ``service.inference_protocol`` calls straight from the HTTP
protocol; the FastAPI route here answers the same way over ASGI and describes the route in
``/docs``.
"""

from __future__ import annotations

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
    render_json,
    require_media_type,
    run_batched,
    runtime_of,
    to_response,
)
from service.contract import PATHS
from service.errors import InferenceError
from service.predict_codec import decode_predict_request, encode_predictions
from service.runtime import ServiceRuntime
from service.v2_codec import JSON_CONTENT_TYPE, parse_json_body

_MEDIA_TYPES = (JSON_CONTENT_TYPE,)


async def serve(runtime: ServiceRuntime, call: InferenceCall) -> Answer:
    """Answer one ``/predict`` request."""
    authorize(runtime, call.headers)
    model_name = runtime.settings.model_name
    model = runtime.served_model(model_name)
    signature = model.signature
    require_media_type(call.headers, _MEDIA_TYPES)

    def decode(body: bytes) -> tuple[None, Inputs]:
        return None, decode_predict_request(parse_json_body(body), signature)

    _, outputs = await run_batched(runtime, call, decode)
    try:
        body = render_json(
            {
                "model_name": model_name,
                "model_version": signature.version,
                "predictions": encode_predictions(outputs, signature),
            }
        )
    except ValueError:
        raise InferenceError(
            "the model produced NaN or infinite values, which JSON cannot carry"
        ) from None
    return Answer(body, JSON_CONTENT_TYPE)


router = APIRouter(tags=["inference"])


@router.post(
    PATHS.PREDICT,
    response_model=schemas.PredictResponse,
    responses=error_responses(400, 401, 408, 413, 415, 500, 503),
    openapi_extra=request_body(schemas.PredictRequest),
)
@secured
async def predict(request: Request) -> Response:
    """Simple JSON: ``{"instances": [row, ...]}`` in, labelled predictions out."""
    return to_response(await serve(runtime_of(request), asgi_call(request)))
