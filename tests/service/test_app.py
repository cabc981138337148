"""The app's wiring: access logs, request ids, metrics and log levels across the routers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.contract import API_KEY_HEADER, PATHS, REQUEST_ID_HEADER
from tests.service.api.payloads import INFER, KEY, ROWS, BlockingLoader, infer_json
from tests.service.conftest import TRANSPORTS, AppFactory, open_client, settings_for, wait_ready


def logged_until(
    capsys: pytest.CaptureFixture[str], done: Callable[[str], bool], timeout: float = 5.0
) -> str:
    """What was printed, once ``done`` holds for it (or the timeout passed).

    Over real HTTP a response can reach the client before the server thread has written the
    request's access-log line.
    """
    out = ""
    deadline = time.monotonic() + timeout
    while True:
        out += capsys.readouterr().out
        if done(out) or time.monotonic() > deadline:
            return out
        time.sleep(0.01)


def access_lines(text: str) -> list[dict[str, object]]:
    """The JSON access-log lines in ``text``."""
    return [json.loads(line) for line in text.splitlines() if '"msg": "request"' in line]


def test_probe_503s_while_loading_log_at_info_but_other_5xx_at_error(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], transport: str
) -> None:
    from service.json_logging import configure_logging

    loader = BlockingLoader(tiny_model_dir)
    app = create_app(settings_for(tiny_model_dir), loader=loader)
    configure_logging("INFO")
    try:
        with open_client(app, transport) as client:
            assert client.get(PATHS.READY).status_code == 503
            assert client.post(INFER, json=infer_json()).status_code == 503
            loader.release.set()
            wait_ready(app)
        logged = logged_until(capsys, lambda out: len(access_lines(out)) >= 2)
    finally:
        logging.getLogger().handlers.clear()
    access = access_lines(logged)
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
        logged = logged_until(capsys, lambda out: len(access_lines(out)) >= 4)
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert sum(1 for line in lines if line.get("msg") == "request") >= 4
    assert KEY not in logged


def test_request_ids_access_logs_and_metrics(
    client: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.json_logging import configure_logging

    configure_logging("INFO")
    try:
        given = client.post(INFER, json=infer_json(), headers={REQUEST_ID_HEADER: "trace-42"})
        generated = client.get("/v2/models/digits/ready")
        refused = client.get(PATHS.LIVE, headers={REQUEST_ID_HEADER: "bad id\twith tab"})
        logged = logged_until(capsys, lambda out: len(access_lines(out)) >= 3)
    finally:
        logging.getLogger().handlers.clear()
    assert given.headers[REQUEST_ID_HEADER] == "trace-42"
    assert len(generated.headers[REQUEST_ID_HEADER]) == 32
    assert refused.headers[REQUEST_ID_HEADER] != "bad id\twith tab"
    by_id = {line["request_id"]: line for line in access_lines(logged)}
    line = by_id["trace-42"]
    assert line["route"] == "/v2/models/{name}/infer"
    assert line["status"] == 200
    assert line["level"] == "INFO"
    assert isinstance(line["latency_ms"], float)
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


def test_log_level_is_honoured(client: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    from service.json_logging import configure_logging

    try:
        configure_logging("WARNING")
        client.get(PATHS.LIVE)
        client.get("/v2/models/mnist")
        client.post(PATHS.PREDICT, json={"instances": ROWS.tolist()})
        quiet = logged_until(capsys, lambda out: False, timeout=0.3)
        configure_logging("INFO")
        client.get(PATHS.LIVE)
        client.post(PATHS.PREDICT, json={"instances": ROWS.tolist()})
        chatty = logged_until(capsys, lambda out: len(access_lines(out)) >= 2)
    finally:
        logging.getLogger().handlers.clear()
    assert quiet == ""
    assert '"route": "/v2/health/live"' in chatty
    assert '"route": "/predict"' in chatty


def test_create_app_includes_every_router_and_nothing_else(client: httpx.Client) -> None:
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
def test_the_protocol_and_the_fastapi_routes_answer_alike(tiny_model_dir: Path, path: str) -> None:
    # python -m service answers these paths in its HTTP protocol; the FastAPI routes answer them
    # in-process and under other ASGI servers (and are what /docs describes): same answers.
    body = {"instances": ROWS.tolist()} if path == PATHS.PREDICT else infer_json()
    answers = []
    for transport in TRANSPORTS:
        app = create_app(settings_for(tiny_model_dir))
        with open_client(app, transport) as client:
            wait_ready(app)
            response = client.post(path, json=body)
            assert response.status_code == 200, (transport, response.text)
            refused = client.post(path, json=body, headers={"Content-Type": "text/csv"})
            answers.append(
                (
                    response.json(),
                    response.headers["content-type"],
                    response.headers["content-length"],
                    refused.status_code,
                    refused.json(),
                )
            )
            metrics = client.get(PATHS.METRICS).text
            # Both label the request with its route template, not the raw path.
            assert 'route="/v2/models/digits' not in metrics
            assert 'status="415"' in metrics
    assert answers[0] == answers[1]
