"""Probes: liveness, readiness (v2) and the start-up probe's own path.

Probes never need the API key, and they stay fast under full load: they only read the runtime's
phase on the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from service import schemas
from service.api.docs import error_responses
from service.api.requests import runtime_of
from service.contract import PATHS
from service.errors import NotReadyError

router = APIRouter(tags=["health"])


@router.get(PATHS.LIVE, response_model=schemas.LiveResponse)
async def live() -> dict[str, bool]:
    """Liveness: 200 whenever the process serves HTTP."""
    return {"live": True}


@router.get(PATHS.READY, response_model=schemas.ReadyResponse, responses=error_responses(503))
async def ready(request: Request) -> dict[str, bool]:
    """Readiness: 200 once the model is loaded and warm; 503 before, and from SIGTERM on."""
    runtime = runtime_of(request)
    if not runtime.ready:
        raise NotReadyError(f"not ready: {runtime.not_ready_reason()}")
    return {"ready": True}


@router.get(PATHS.STARTUP, response_model=schemas.ReadyResponse, responses=error_responses(503))
async def startup(request: Request) -> dict[str, bool]:
    """Start-up (the startupProbe): 200 once the model is loaded and warm, and from then on."""
    runtime = runtime_of(request)
    if runtime.batcher is None:
        raise NotReadyError(f"starting: {runtime.not_ready_reason()}")
    return {"ready": True}
