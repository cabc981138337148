"""The app's wiring: access logs, request ids, metrics and log levels across the routers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.app import create_app
from service.contract import API_KEY_HEADER, PATHS, REQUEST_ID_HEADER
from service.fast_path import InferenceFastPath
from tests.service.api.payloads import INFER, KEY, ROWS, BlockingLoader, infer_json
from tests.service.conftest import AppFactory, settings_for, wait_ready


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


def test_create_app_includes_every_router_and_nothing_else(client: TestClient) -> None:
    from fastapi.routing import APIRoute

    from service.api import health, inference, metadata, operations, predict

    app = client.app
    assert isinstance(app, FastAPI)
    served = {
        (route.path, m)
        for route in app.routes
        if isinstance(route, APIRoute)
        for m in route.methods
    }
    declared = {
        (route.path, m)
        for module in (health, metadata, inference, predict, operations)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for m in route.methods
    }
    assert served == declared
    # The runtime contract's routes (DESIGN.md) are all there.
    for path, method in (
        (PATHS.LIVE, "GET"),
        (PATHS.READY, "GET"),
        (PATHS.STARTUP, "GET"),
        (PATHS.SERVER_METADATA, "GET"),
        (PATHS.MODEL_METADATA, "GET"),
        (PATHS.MODEL_READY, "GET"),
        (PATHS.MODEL_INFER, "POST"),
        (PATHS.PREDICT, "POST"),
        (PATHS.METRICS, "GET"),
    ):
        assert (path, method) in served, (path, method)


@pytest.mark.parametrize("path", [PATHS.PREDICT, INFER, "/v2/models/digits/versions/1/infer"])
def test_the_declared_inference_routes_answer_like_the_fast_path(
    tiny_model_dir: Path, path: str
) -> None:
    # The fast path serves these paths in production; the FastAPI routes behind it must give the
    # same answers (they are what /docs describes, and what answers if the fast path is removed).
    body = {"instances": ROWS.tolist()} if path == PATHS.PREDICT else infer_json()
    answers = []
    for fast in (True, False):
        app = create_app(settings_for(tiny_model_dir))
        if not fast:
            # Starlette builds the middleware stack on the first call, from this list.
            app.user_middleware = [m for m in app.user_middleware if m.cls is not InferenceFastPath]
        with TestClient(app, raise_server_exceptions=False) as client:
            wait_ready(app)
            response = client.post(path, json=body)
            assert response.status_code == 200, (fast, response.text)
            answers.append(response.json())
            metrics = client.get(PATHS.METRICS).text
            # Both paths label the request with its route template, not the raw path.
            assert 'route="/v2/models/digits' not in metrics
    assert answers[0] == answers[1]
