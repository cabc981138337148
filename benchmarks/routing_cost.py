"""What FastAPI's routing features cost per request: why ``service/api`` routes use neither.

Measured in-process (direct ASGI calls, no network, no model), CPU time per request of one
``GET`` answered ``{"ready": true}`` through a response model, in five variants of the same route:

- ``plain``: the route takes no parameter (the floor);
- ``app.state``: it takes ``Request`` and reads ``request.app.state.runtime`` (what we do);
- ``Depends (async)`` / ``Depends (sync)``: it gets the runtime from a dependency (a sync one runs
  in the thread pool);
- ``include_router``: the ``app.state`` route, on an ``APIRouter`` added with ``include_router``
  (FastAPI resolves included routers per request; ``create_app`` passes the routes instead).

The variants alternate in rounds and the table shows each one's fastest round, so load from other
processes on a shared machine shows up as noise, not as a difference between variants.

    python -m benchmarks.routing_cost [--requests 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Final

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Scope

from service import schemas

ROUNDS: Final = 20
PATH: Final = "/ready"


class _Runtime:
    ready = True


def _runtime(request: Request) -> _Runtime:
    runtime: _Runtime = request.app.state.runtime
    return runtime


async def _runtime_async(request: Request) -> _Runtime:
    return _runtime(request)


def _app(declare: Callable[[APIRouter], None], *, included: bool = False) -> FastAPI:
    router = APIRouter()
    declare(router)
    app = FastAPI(routes=None if included else list(router.routes))
    if included:
        app.include_router(router)
    app.state.runtime = _Runtime()
    return app


def _plain(router: APIRouter) -> None:
    @router.get(PATH, response_model=schemas.ReadyResponse)
    async def ready() -> dict[str, bool]:
        return {"ready": True}


def _state(router: APIRouter) -> None:
    @router.get(PATH, response_model=schemas.ReadyResponse)
    async def ready(request: Request) -> dict[str, bool]:
        return {"ready": _runtime(request).ready}


def _depends_async(router: APIRouter) -> None:
    @router.get(PATH, response_model=schemas.ReadyResponse)
    async def ready(runtime: Annotated[_Runtime, Depends(_runtime_async)]) -> dict[str, bool]:
        return {"ready": runtime.ready}


def _depends_sync(router: APIRouter) -> None:
    @router.get(PATH, response_model=schemas.ReadyResponse)
    async def ready(runtime: Annotated[_Runtime, Depends(_runtime)]) -> dict[str, bool]:
        return {"ready": runtime.ready}


def variants() -> dict[str, FastAPI]:
    """The apps to compare, by name."""
    return {
        "plain": _app(_plain),
        "app.state": _app(_state),
        "Depends (async)": _app(_depends_async),
        "Depends (sync)": _app(_depends_sync),
        "include_router": _app(_state, included=True),
    }


def _scope() -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"the benchmark route answered {message['status']}")


async def _cpu_us_per_request(app: ASGIApp, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await app(_scope(), _receive, _send)
    return (time.process_time() - started) / requests * 1e6


async def measure(requests: int) -> dict[str, float]:
    """The fastest round's CPU microseconds per request of each variant."""
    apps = variants()
    for app in apps.values():
        await _cpu_us_per_request(app, 200)  # warm-up: first-call caches
    best = dict.fromkeys(apps, float("inf"))
    for _ in range(ROUNDS):
        for name, app in apps.items():
            best[name] = min(best[name], await _cpu_us_per_request(app, requests // ROUNDS))
    return best


def table(best: dict[str, float]) -> str:
    """A Markdown table: each variant's cost and its extra cost over ``plain``."""
    floor = best["plain"]
    lines = ["| variant | CPU us/request | over plain |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {us:.1f} | {us - floor:+.1f} |" for name, us in best.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40_000, help="per variant, all rounds")
    args = parser.parse_args(argv)
    print(table(asyncio.run(measure(args.requests))))


if __name__ == "__main__":
    main()
