"""The HTTP floor: FastAPI on uvicorn answering ``/predict`` with no model behind it.

It parses the same JSON body and answers a small JSON document, on the same web stack as our
server (FastAPI, uvicorn with uvloop and httptools, one process). Whatever it reaches is the most
any Python server on this stack could reach on this machine before running a model, so it shows
how much of a small model's serving cost is the web stack itself.

    python -m benchmarks.http_floor --port 8000
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

HEALTH_PATH = "/health"


def create_floor_app() -> FastAPI:
    """The app: ``POST /predict`` parses the body and answers the number of rows it got."""
    app = FastAPI()

    @app.get(HEALTH_PATH)
    async def health() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        document: Any = json.loads(await request.body())
        rows = len(document["instances"])
        return JSONResponse({"predictions": [{"label": "0"}] * rows})

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the floor app on 127.0.0.1 without an access log."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_floor_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
