"""The app in-process: routes, error bodies, readiness, API key, request ids, logs and metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from service.app import create_app, service_runtime
from service.contract import API_KEY_HEADER, PATHS, REQUEST_ID_HEADER, RETRY_AFTER_SECONDS
from service.model_loader import load_model
from service.runtime import ServableModel
from tests.service.conftest import AppFactory, settings_for, wait_ready

INFER = "/v2/models/digits/infer"
ROWS = (np.arange(3 * 64, dtype=np.float32).reshape(3, 64) % 17).astype(np.float32)
KEY = "s3cr3t-key-value-0123456789"


def infer_json(rows: np.ndarray = ROWS) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ]
    }


def binary_request(
    rows: np.ndarray = ROWS, binary_output: bool = True
) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": list(rows.shape),
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ],
            "parameters": {"binary_data_output": binary_output},
        }
    ).encode()
    return header + rows.tobytes(), {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def reference(tiny_model_dir: Path, rows: np.ndarray = ROWS) -> np.ndarray:
    model = load_model(str(tiny_model_dir), "cpu")
    return model.forward({"pixels": torch.from_numpy(rows)})["probabilities"].numpy()


def test_health_and_metadata(client: TestClient) -> None:
    assert client.get(PATHS.LIVE).json() == {"live": True}
    assert client.get(PATHS.READY).json() == {"ready": True}
    server = client.get(PATHS.SERVER_METADATA).json()
    assert "binary_tensor_data" in server["extensions"]
    metadata = client.get("/v2/models/digits").json()
    assert metadata == {
        "name": "digits",
        "versions": ["1"],
        "platform": "pytorch_torchscript",
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }
    assert client.get("/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
    assert client.get("/v2/models/digits/versions/1/ready").status_code == 200
    assert client.get("/v2/models/digits/versions/2/ready").status_code == 404


def test_json_infer_matches_the_model(client: TestClient, tiny_model_dir: Path) -> None:
    response = client.post(INFER, json={**infer_json(), "id": "abc"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "abc"
    assert body["model_name"] == "digits"
    (output,) = body["outputs"]
    assert output["name"] == "probabilities"
    assert output["shape"] == [3, 10]
    np.testing.assert_allclose(
        np.reshape(output["data"], (3, 10)), reference(tiny_model_dir), rtol=1e-6
    )


def test_binary_infer_in_and_out(client: TestClient, tiny_model_dir: Path) -> None:
    body, headers = binary_request()
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.content[:length])
    (output,) = header["outputs"]
    assert output["parameters"] == {"binary_data_size": 3 * 10 * 4}
    values = np.frombuffer(response.content[length:], dtype="<f4").reshape(3, 10)
    np.testing.assert_allclose(values, reference(tiny_model_dir), rtol=1e-6)


def test_versioned_infer_route(client: TestClient) -> None:
    assert client.post("/v2/models/digits/versions/1/infer", json=infer_json()).status_code == 200
    missing = client.post("/v2/models/digits/versions/7/infer", json=infer_json())
    assert missing.status_code == 404
    assert "no version '7'" in missing.json()["error"]


def test_predict_labels_rows(client: TestClient, tiny_model_dir: Path) -> None:
    response = client.post(PATHS.PREDICT, json={"instances": ROWS.tolist()})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = reference(tiny_model_dir)
    assert [p["label"] for p in predictions] == [str(i) for i in expected.argmax(axis=1)]
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected, rtol=1e-6)
    keyed = client.post(PATHS.PREDICT, json={"instances": [{"pixels": ROWS[0].tolist()}]})
    assert keyed.json()["predictions"][0]["label"] == predictions[0]["label"]


def test_a_request_bigger_than_the_max_batch_still_works(make_client: AppFactory) -> None:
    client = make_client(max_batch_size=2)
    rows = np.tile(ROWS, (3, 1))  # 9 rows, 5 batches
    response = client.post(PATHS.PREDICT, json={"instances": rows.tolist()})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 9


def error_of(response: object) -> str:
    from httpx import Response

    assert isinstance(response, Response)
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    return body["error"]


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
    client: TestClient,
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


class BlockingLoader:
    """Loads the tiny model only once ``release`` is set, so the test sees the loading phase."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.release = threading.Event()

    def __call__(self) -> ServableModel:
        assert self.release.wait(30)
        return load_model(str(self.model_dir), "cpu")


READY_SERIES = 'inference_model_ready{model="digits",version="1"}'


def test_not_ready_until_loaded_and_warm_then_not_ready_from_shutdown(tiny_model_dir: Path) -> None:
    loader = BlockingLoader(tiny_model_dir)
    app = create_app(settings_for(tiny_model_dir), loader=loader)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(PATHS.LIVE).status_code == 200
        loading = client.get(PATHS.READY)
        assert loading.status_code == 503
        assert "still loading" in error_of(loading)
        # The startupProbe's path waits for what start-up waits for: the loaded, warm model.
        assert client.get(PATHS.STARTUP).status_code == 503
        assert client.get("/v2/models/digits/ready").status_code == 503
        assert client.post(INFER, json=infer_json()).status_code == 503
        loader.release.set()
        wait_ready(app)
        assert client.get(PATHS.READY).status_code == 200
        assert client.get(PATHS.STARTUP).status_code == 200
        assert READY_SERIES + " 1.0" in client.get(PATHS.METRICS).text
        assert "connection" not in client.get(PATHS.LIVE).headers
        service_runtime(app).begin_shutdown()  # what SIGTERM does first
        draining = client.get(PATHS.READY)
        assert draining.status_code == 503
        assert "shutting down" in error_of(draining)
        assert client.get("/v2/models/digits/ready").status_code == 503
        assert READY_SERIES + " 0.0" in client.get(PATHS.METRICS).text
        assert client.get(PATHS.LIVE).status_code == 200
        # Start-up is over for good: a draining pod must not look like one still starting.
        assert client.get(PATHS.STARTUP).status_code == 200
        # Requests that still reach a draining server are served, not turned away, and told
        # to reconnect (elsewhere) rather than reuse this connection.
        served = client.post(INFER, json=infer_json())
        assert served.status_code == 200
        assert served.headers["connection"] == "close"


def test_probe_503s_while_loading_log_at_info_but_other_5xx_at_error(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.json_logging import configure_logging

    loader = BlockingLoader(tiny_model_dir)
    app = create_app(settings_for(tiny_model_dir), loader=loader)
    configure_logging("INFO")
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get(PATHS.READY).status_code == 503
            assert client.post(INFER, json=infer_json()).status_code == 503
            loader.release.set()
            wait_ready(app)
        logged = capsys.readouterr().out
    finally:
        logging.getLogger().handlers.clear()
    access = [json.loads(line) for line in logged.splitlines() if '"msg": "request"' in line]
    levels = {(line["route"], line["status"]): line["level"] for line in access}
    assert levels[(PATHS.READY, 503)] == "INFO"
    assert levels[("/v2/models/{name}/infer", 503)] == "ERROR"


def test_a_model_that_fails_to_load_keeps_the_server_unready_and_says_why(tmp_path: Path) -> None:
    fatal = threading.Event()
    app = create_app(settings_for(tmp_path / "missing"), on_fatal=fatal.set)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert fatal.wait(30)
        response = client.get(PATHS.READY)
        assert response.status_code == 503
        message = error_of(response)
        assert "failed to load" in message
        assert "missing" in message


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


def test_the_key_never_reaches_the_logs(
    make_client: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.json_logging import configure_logging

    configure_logging("DEBUG")
    try:
        client = make_client(api_key=KEY)
        client.post(INFER, json=infer_json(), headers={API_KEY_HEADER: KEY})
        client.post(INFER, json=infer_json(), headers={API_KEY_HEADER: KEY + "-wrong"})
        client.get("/v2/models/digits", headers={"Authorization": f"Bearer {KEY}"})
        client.post(PATHS.PREDICT, content=b"{bad", headers={API_KEY_HEADER: KEY})
        logged = capsys.readouterr().out
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert sum(1 for line in lines if line.get("msg") == "request") >= 4
    assert KEY not in logged


def test_request_ids_access_logs_and_metrics(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.json_logging import configure_logging

    configure_logging("INFO")
    try:
        given = client.post(INFER, json=infer_json(), headers={REQUEST_ID_HEADER: "trace-42"})
        generated = client.get("/v2/models/digits/ready")
        refused = client.get(PATHS.LIVE, headers={REQUEST_ID_HEADER: "bad id\twith tab"})
        logged = capsys.readouterr().out
    finally:
        logging.getLogger().handlers.clear()
    assert given.headers[REQUEST_ID_HEADER] == "trace-42"
    assert len(generated.headers[REQUEST_ID_HEADER]) == 32
    assert refused.headers[REQUEST_ID_HEADER] != "bad id\twith tab"
    access = [json.loads(line) for line in logged.splitlines() if '"msg": "request"' in line]
    by_id = {line["request_id"]: line for line in access}
    line = by_id["trace-42"]
    assert line["route"] == "/v2/models/{name}/infer"
    assert line["status"] == 200
    assert line["level"] == "INFO"
    assert line["latency_ms"] > 0
    assert {"ts", "level", "msg", "request_id", "route", "status", "latency_ms"} <= set(line)
    assert by_id[generated.headers[REQUEST_ID_HEADER]]["route"] == "/v2/models/{name}/ready"

    metrics = client.get(PATHS.METRICS).text
    infer_ok = (
        'method="POST",model="digits",route="/v2/models/{name}/infer",status="200",version="1"}'
    )
    assert "inference_http_requests_total{" + infer_ok + " 1.0" in metrics
    # The process collector: memory and CPU of the server process, for the overload benchmark
    # and for dashboards.
    assert "process_resident_memory_bytes " in metrics
    assert "process_cpu_seconds_total " in metrics
    assert "inference_batch_size_count" in metrics
    assert "inference_queue_duration_seconds_count" in metrics
    assert "inference_http_requests_in_flight" in metrics
    assert "inference_model_load_seconds" in metrics
    client.get("/made/up/path")
    assert 'route="unmatched",status="404"' in client.get(PATHS.METRICS).text


def test_log_level_is_honoured(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    from service.json_logging import configure_logging

    try:
        configure_logging("WARNING")
        client.get(PATHS.LIVE)
        client.get("/v2/models/mnist")
        quiet = capsys.readouterr().out
        configure_logging("INFO")
        client.get(PATHS.LIVE)
        chatty = capsys.readouterr().out
    finally:
        logging.getLogger().handlers.clear()
    assert quiet == ""
    assert '"route": "/v2/health/live"' in chatty


def test_openapi_describes_the_real_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    content = infer["requestBody"]["content"]
    assert content["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferRequestBody"
    }
    assert "application/octet-stream" in content
    assert "InferInputTensor" in spec["components"]["schemas"]
    predict = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert predict["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    assert "400" in spec["paths"]["/predict"]["post"]["responses"]
    assert client.get(PATHS.DOCS).status_code == 200
    # The documented examples are real requests ("Try it out" in /docs works).
    schemas = spec["components"]["schemas"]
    for path, model in ((PATHS.PREDICT, "PredictRequest"), (INFER, "InferRequestBody")):
        (example,) = schemas[model]["examples"]
        assert client.post(path, json=example).status_code == 200, path


class FailingModel:
    """The tiny model, except that any batch holding the value 99 raises."""

    def __init__(self, model_dir: Path) -> None:
        self.inner = load_model(str(model_dir), "cpu")
        self.signature = self.inner.signature
        self.device = self.inner.device

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if bool((inputs["pixels"] == 99).any()):
            raise RuntimeError("cannot digest 99")
        return self.inner.forward(inputs)

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        self.inner.warmup(batch_sizes)


def test_a_failing_batch_is_a_clear_500_for_its_requests_only(tiny_model_dir: Path) -> None:
    app = create_app(settings_for(tiny_model_dir), loader=lambda: FailingModel(tiny_model_dir))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(app)
        poisoned = client.post(PATHS.PREDICT, json={"instances": [[99.0] * 64]})
        assert poisoned.status_code == 500
        message = error_of(poisoned)
        assert "inference failed for the batch of this request" in message
        assert "cannot digest 99" in message
        assert client.post(PATHS.PREDICT, json={"instances": ROWS.tolist()}).status_code == 200


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


def test_a_full_queue_is_a_503_with_retry_after_at_once(tiny_model_dir: Path) -> None:
    app = create_app(settings_for(tiny_model_dir, max_queued_rows=2))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(app)
        batcher = service_runtime(app).batcher
        assert batcher is not None
        # Three rows counted as waiting (as if the worker were busy) fill a bound of 2.
        batcher._queued_rows = 3
        started = time.perf_counter()
        refused = client.post(INFER, json=infer_json())
        elapsed = time.perf_counter() - started
        batcher._queued_rows = 0
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert "MAX_QUEUED_ROWS=2" in error_of(refused)
        assert elapsed < 1.0
        metrics = client.get(PATHS.METRICS).text
        assert 'inference_requests_refused_total{model="digits",version="1"} 1.0' in metrics
        assert client.post(INFER, json=infer_json()).status_code == 200
