"""The inference fast path: which requests it serves itself and which it leaves to FastAPI."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from service.errors import NotFoundError
from service.fast_path import InferenceFastPath


class Downstream:
    """Stands in for FastAPI: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(f"{scope['method']} {scope['path']}")
            await PlainTextResponse("downstream")(scope, receive, send)


async def infer(request: Request, name: str, version: str | None) -> Response:
    if name == "missing":
        raise NotFoundError(f"unknown model {name!r}")
    route = request.scope["route"].path
    return JSONResponse({"name": name, "version": version, "route": route})


async def predict(request: Request) -> Response:
    return JSONResponse({"rows": len(await request.body()), "route": request.scope["route"].path})


def client() -> tuple[TestClient, Downstream]:
    downstream = Downstream()
    return TestClient(InferenceFastPath(downstream, infer, predict)), downstream


def test_inference_routes_are_served_directly_with_their_route_template() -> None:
    http, downstream = client()
    assert http.post("/predict", content=b"abc").json() == {"rows": 3, "route": "/predict"}
    assert http.post("/v2/models/digits/infer").json() == {
        "name": "digits",
        "version": None,
        "route": "/v2/models/{name}/infer",
    }
    versioned = http.post("/v2/models/digits/versions/7/infer").json()
    assert versioned["version"] == "7"
    assert versioned["route"] == "/v2/models/{name}/versions/{version}/infer"
    assert downstream.paths == []


def test_client_errors_keep_the_error_body_shape() -> None:
    http, _ = client()
    answer = http.post("/v2/models/missing/infer")
    assert answer.status_code == 404
    assert answer.json() == {"error": "unknown model 'missing'"}


def test_everything_else_goes_on_to_fastapi() -> None:
    http, downstream = client()
    for method, path in [
        ("GET", "/predict"),
        ("GET", "/v2/models/digits/infer"),
        ("POST", "/v2/models//infer"),
        ("POST", "/v2/models/digits/versions//infer"),
        ("POST", "/v2/models/digits/infer/more"),
        ("POST", "/v2/models/digits"),
        ("POST", "/v3/models/digits/infer"),
    ]:
        assert http.request(method, path).text == "downstream", path
    assert len(downstream.paths) == 7
