"""Operational routes: Prometheus metrics (open, like the probes)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.requests import runtime_of
from service.contract import PATHS

router = APIRouter(tags=["operations"])


@router.get(
    PATHS.METRICS,
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    registry = runtime_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
