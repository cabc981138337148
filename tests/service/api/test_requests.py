"""What every inference route does with a request: the key, the body, its size and type."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from service.app import create_app, service_runtime
from service.contract import API_KEY_HEADER, PATHS
from tests.service.api.payloads import INFER, KEY, ROWS, error_of, infer_json
from tests.service.conftest import AppFactory, settings_for


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "expected"),
    [
        ("post", INFER, {"content": b"{not json"}, 400, "not valid JSON"),
        ("post", INFER, {"content": b"\xff\xfe"}, 400, "the request body is not valid JSON"),
        ("post", PATHS.PREDICT, {"content": b"[1,"}, 400, "not valid JSON"),
        ("post", PATHS.PREDICT, {"json": {"instances": []}}, 400, "empty batch"),
        ("post", PATHS.PREDICT, {"json": {"rows": [[1]]}}, 400, '{"instances": [row, ...]}'),
        ("post", PATHS.PREDICT, {"json": {"instances": [[1.0] * 63]}}, 400, "has shape [1, 63]"),
        (
            "post",
            PATHS.PREDICT,
            {"content": b'{"instances": [[NaN' + b", 1" * 63 + b"]]}"},
            400,
            "NaN or infinite",
        ),
        ("post", PATHS.PREDICT, {"json": {"instances": [["a"] * 64]}}, 400, "only numbers"),
        ("post", "/v2/models/mnist/infer", {"json": {}}, 404, "unknown model 'mnist'"),
        ("get", "/v2/models/mnist", {}, 404, "this server serves 'digits'"),
        ("get", "/v2/models/mnist/ready", {}, 404, "unknown model"),
        ("get", "/nowhere", {}, 404, "no route '/nowhere'"),
        ("get", INFER, {}, 405, "method GET is not allowed"),
        ("delete", PATHS.PREDICT, {}, 405, "method DELETE is not allowed"),
        (
            "post",
            PATHS.PREDICT,
            {
                "content": b"instances=1",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            415,
            "use application/json",
        ),
        (
            "post",
            INFER,
            {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
            415,
            "Content-Type 'text/plain' is not supported",
        ),
        (
            "post",
            INFER,
            {"content": b"\x1f\x8b", "headers": {"Content-Encoding": "gzip"}},
            415,
            "Content-Encoding 'gzip' is not supported",
        ),
        (
            "post",
            INFER,
            {"content": b"{}", "headers": {"Inference-Header-Content-Length": "99"}},
            400,
            "Inference-Header-Content-Length='99'",
        ),
    ],
)
def test_bad_input_is_a_4xx_that_says_what_was_wrong(
    client: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    expected: str,
) -> None:
    response = client.request(method.upper(), path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert expected in error_of(response)


def test_oversized_bodies_are_refused_by_declared_and_by_streamed_size(
    make_client: AppFactory,
) -> None:
    client = make_client(max_request_bytes=2048)
    big = json.dumps({"instances": [[1.0] * 64] * 40}).encode()
    declared = client.post(PATHS.PREDICT, content=big)
    assert declared.status_code == 413
    assert "at most 2048" in error_of(declared)

    def chunks() -> object:
        # A generator body is sent chunked, with no Content-Length to trust.
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    streamed = client.post(PATHS.PREDICT, content=chunks())  # type: ignore[arg-type]
    assert streamed.status_code == 413
    assert "over 2048 bytes" in error_of(streamed)


@pytest.mark.anyio
async def test_a_body_that_stops_arriving_is_a_408_not_a_hang(tiny_model_dir: Path) -> None:
    app = create_app(settings_for(tiny_model_dir), body_timeout_s=0.2)
    state = service_runtime(app)
    state.load()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATHS.PREDICT,
        "raw_path": PATHS.PREDICT.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"500")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    chunks = [{"type": "http.request", "body": b'{"instances": [[1', "more_body": True}]
    stalled = anyio.Event()

    async def receive() -> dict[str, object]:
        if chunks:
            return chunks.pop()
        await stalled.wait()  # the client never sends the rest
        return {"type": "http.disconnect"}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await app(scope, receive, send)
    state.stop(5)
    assert sent[0]["status"] == 408
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))  # type: ignore[misc]
    assert "did not arrive within 0.2 s" in body["error"]


def test_api_key_is_required_on_inference_routes_only(make_client: AppFactory) -> None:
    client = make_client(api_key=KEY)
    for path in (
        PATHS.LIVE,
        PATHS.READY,
        PATHS.METRICS,
        "/v2/models/digits/ready",
        PATHS.SERVER_METADATA,
    ):
        assert client.get(path).status_code == 200, path
    missing = client.post(INFER, json=infer_json())
    assert missing.status_code == 401
    assert API_KEY_HEADER in error_of(missing)
    assert client.get("/v2/models/digits").status_code == 401
    assert client.post(PATHS.PREDICT, json={"instances": ROWS.tolist()}).status_code == 401
    wrong = client.post(INFER, json=infer_json(), headers={API_KEY_HEADER: KEY + "x"})
    assert wrong.status_code == 401
    assert error_of(wrong) == "the API key is not valid"
    assert client.post(INFER, json=infer_json(), headers={API_KEY_HEADER: KEY}).status_code == 200
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert (
        client.post(PATHS.PREDICT, json={"instances": ROWS.tolist()}, headers=bearer).status_code
        == 200
    )
    assert client.get("/v2/models/digits", headers=bearer).status_code == 200
    spec = client.get("/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"ApiKeyHeader", "BearerToken"}
