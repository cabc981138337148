"""An app behind the server stack of ``python -m service``, on a free local port, in a thread.

The route tests run on both transports (``tests/service/conftest.py``): over ASGI with
Starlette's ``TestClient``, and over real HTTP here, where uvicorn runs with
``service.inference_protocol`` and the inference routes never reach the app.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from service.app import service_runtime
from service.inference_protocol import protocol_for

HOST = "127.0.0.1"
#: The name of the thread the server (its event loop) runs on.
SERVER_THREAD = "test-server"


class ServedClient(httpx.Client):
    """An ``httpx.Client`` on a served app; ``app`` as on Starlette's ``TestClient``."""

    def __init__(self, app: FastAPI, base_url: str) -> None:
        super().__init__(base_url=base_url, timeout=30.0)
        self.app = app


@contextmanager
def serving(app: FastAPI) -> Iterator[tuple[uvicorn.Server, int]]:
    """Run ``app`` with uvicorn and the inference protocol; yields the server and its port."""
    config = uvicorn.Config(
        app,
        host=HOST,
        port=0,
        http=protocol_for(service_runtime(app)),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=SERVER_THREAD, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def served_client(app: FastAPI) -> Iterator[ServedClient]:
    """An HTTP client on ``app`` served by :func:`serving`."""
    with serving(app) as (_, port), ServedClient(app, f"http://{HOST}:{port}") as client:
        yield client
