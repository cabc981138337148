"""The inference routes answered by uvicorn's protocol itself: what raw HTTP clients see.

The route behaviour (errors, auth, limits, logs, metrics) runs on this path through every test of
``tests/service/api`` (the ``http`` transport); these tests cover what only a socket shows:
that the app is really bypassed, stalled and abandoned bodies, ``Expect: 100-continue``,
pipelining, refusals before the body, and ``Connection: close`` while draining.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from fastapi import FastAPI
from fastapi.routing import APIRoute
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.app import create_app, service_runtime
from service.contract import PATHS
from service.inference_protocol import (
    INFER_ROUTE,
    PREDICT_ROUTE,
    VERSIONED_INFER_ROUTE,
    match_inference_route,
)
from service.model_loader import load_model
from tests.service.api.payloads import ROWS
from tests.service.conftest import settings_for, wait_ready
from tests.service.served import HOST, SERVER_THREAD, serving

BODY = json.dumps({"instances": ROWS.tolist()}).encode()
ONE_ROW = json.dumps({"instances": ROWS[:1].tolist()}).encode()


def request(path: str, body: bytes, *extra: str, length: int | None = None) -> bytes:
    """One POST with ``body`` (``length`` overrides the declared Content-Length)."""
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}",
        "Content-Type: application/json",
        f"Content-Length: {len(body) if length is None else length}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of the next response on ``sock``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the full body")
        rest += chunk
    # Anything past this body belongs to the next response: hand it back through the socket's
    # own buffer is not possible, so callers read pipelined answers with read_responses.
    assert len(rest) == length, "more bytes than one response: use read_responses"
    return int(lines[0].split()[1]), headers, rest


@contextmanager
def served(tiny_model_dir: Path, **overrides: object) -> Iterator[tuple[FastAPI, int]]:
    """The tiny model's app behind the inference protocol; yields the app and its port."""
    app = create_app(settings_for(tiny_model_dir, **overrides), body_timeout_s=0.3)
    with serving(app) as (_, port):
        wait_ready(app)
        yield app, port


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=10)


def metric_line(app: FastAPI, port: int, needle: str) -> str:
    with connect(port) as sock:
        sock.sendall(f"GET {PATHS.METRICS} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        _, _, body = read_response(sock)
    return "\n".join(line for line in body.decode().splitlines() if needle in line)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/predict", (PREDICT_ROUTE, None, None)),
        ("/v2/models/digits/infer", (INFER_ROUTE, "digits", None)),
        ("/v2/models/digits/versions/3/infer", (VERSIONED_INFER_ROUTE, "digits", "3")),
        ("/v2/models//infer", None),
        ("/v2/models/digits/versions//infer", None),
        ("/v2/models/digits/infer/more", None),
        ("/v2/models/digits", None),
        ("/v3/models/digits/infer", None),
        ("/predict/", None),
    ],
)
def test_which_paths_are_inference_routes(
    path: str, expected: tuple[str, str | None, str | None] | None
) -> None:
    assert match_inference_route(path) == expected


def test_the_inference_routes_never_reach_the_app(tiny_model_dir: Path) -> None:
    # With the FastAPI inference routes removed, only the protocol can answer them.
    app = create_app(settings_for(tiny_model_dir))
    app.router.routes = [
        route
        for route in app.router.routes
        if not (isinstance(route, APIRoute) and "POST" in (route.methods or ()))
    ]
    with serving(app) as (_, port), connect(port) as sock:
        wait_ready(app)
        sock.sendall(request(PATHS.PREDICT, BODY))
        status, headers, body = read_response(sock)
        assert status == 200, body
        assert len(json.loads(body)["predictions"]) == len(ROWS)
        assert len(headers["x-request-id"]) == 32
        sock.sendall(request("/v2/models/digits/infer", b"{}", length=2))
        assert read_response(sock)[0] == 400  # the handler's own validation, not a 404


def test_the_protocol_override_point_is_still_there() -> None:
    # service.inference_protocol overrides this private method of the pinned uvicorn; an upgrade
    # that renames it would silently send every request to the app.
    assert callable(getattr(HttpToolsProtocol, "_start_asgi_task", None))


def test_a_body_that_stops_arriving_is_a_408(tiny_model_dir: Path) -> None:
    with served(tiny_model_dir) as (_, port), connect(port) as sock:
        started = time.monotonic()
        sock.sendall(request(PATHS.PREDICT, BODY[:10], length=len(BODY)))
        status, _, body = read_response(sock)
        assert status == 408
        assert "did not arrive within 0.3 s (10 bytes received)" in json.loads(body)["error"]
        assert time.monotonic() - started < 5


def test_a_client_that_leaves_mid_body_is_counted_as_499_and_the_server_goes_on(
    tiny_model_dir: Path,
) -> None:
    with served(tiny_model_dir) as (app, port):
        with connect(port) as sock:
            sock.sendall(request(PATHS.PREDICT, BODY[:10], length=len(BODY)))
            time.sleep(0.05)
        deadline = time.monotonic() + 5
        while 'status="499"' not in metric_line(app, port, "inference_http_requests_total"):
            assert time.monotonic() < deadline, "the abandoned request was never counted"
            time.sleep(0.05)
        with connect(port) as sock:
            sock.sendall(request(PATHS.PREDICT, BODY))
            assert read_response(sock)[0] == 200


def test_expect_100_continue_gets_its_interim_answer(tiny_model_dir: Path) -> None:
    with served(tiny_model_dir) as (_, port), connect(port) as sock:
        sock.sendall(request(PATHS.PREDICT, b"", "Expect: 100-continue", length=len(BODY)))
        sock.settimeout(10)
        interim = sock.recv(64)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY)
        assert read_response(sock)[0] == 200


def test_pipelined_requests_are_answered_in_order(tiny_model_dir: Path) -> None:
    with served(tiny_model_dir) as (_, port), connect(port) as sock:
        ids = [f"pipelined-{n}" for n in range(3)]
        sock.sendall(b"".join(request(PATHS.PREDICT, BODY, f"X-Request-ID: {i}") for i in ids))
        sock.settimeout(10)
        data = b""
        while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        positions = [data.index(f"x-request-id: {i}".encode()) for i in ids]
        assert positions == sorted(positions)


def test_a_full_queue_is_refused_from_the_headers_before_the_body(tiny_model_dir: Path) -> None:
    with served(tiny_model_dir, max_queued_rows=2) as (app, port), connect(port) as sock:
        batcher = service_runtime(app).batcher
        assert batcher is not None
        batcher._queued_rows = 3  # as if the worker were busy with a full queue
        try:
            # Only the headers: the refusal must not wait for the 10,000 body bytes declared.
            sock.sendall(request(PATHS.PREDICT, b"", length=10_000))
            status, headers, body = read_response(sock, timeout=5)
        finally:
            batcher._queued_rows = 0
        assert status == 503
        assert headers["retry-after"] == "1"
        assert "MAX_QUEUED_ROWS=2" in json.loads(body)["error"]
        assert 'status="503"' in metric_line(app, port, 'route="/predict"')


def test_while_draining_every_answer_closes_its_connection(tiny_model_dir: Path) -> None:
    with served(tiny_model_dir) as (app, port), connect(port) as sock:
        sock.sendall(request(PATHS.PREDICT, BODY))
        status, headers, _ = read_response(sock)
        assert status == 200
        assert "connection" not in headers
        service_runtime(app).begin_shutdown()  # what SIGTERM does first
        sock.sendall(request(PATHS.PREDICT, BODY))
        status, headers, _ = read_response(sock)
        assert status == 200  # still served
        assert headers["connection"] == "close"
        sock.settimeout(5)
        assert sock.recv(1) == b""  # and the server closed it


LONE = 20


class ThreadRecordingModel:
    """The tiny model, noting which thread ran each batch (and how many rows it had)."""

    def __init__(self, model_dir: Path) -> None:
        self.inner = load_model(str(model_dir), "cpu")
        self.signature = self.inner.signature
        self.device = self.inner.device
        self.batches: list[tuple[str, int]] = []

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rows = next(iter(inputs.values())).shape[0]
        self.batches.append((threading.current_thread().name, rows))
        return self.inner.forward(inputs)

    def warmup(self, batch_sizes: Sequence[int]) -> None:
        self.inner.warmup(batch_sizes)


def test_lone_requests_run_on_the_loop_and_a_burst_on_many_connections_on_the_worker(
    tiny_model_dir: Path,
) -> None:
    model = ThreadRecordingModel(tiny_model_dir)
    app = create_app(settings_for(tiny_model_dir), loader=lambda: model)
    with serving(app) as (server, port):
        wait_ready(app)
        model.batches.clear()  # the warm-up's
        with connect(port) as sock:
            for _ in range(LONE):
                sock.sendall(request(PATHS.PREDICT, BODY))
                assert read_response(sock)[0] == 200
        # Once the batcher has timed batches of this size, lone requests run on the server's
        # own thread (its event loop), not the worker (see service.batching).
        lone_threads = [thread for thread, _ in model.batches]
        assert lone_threads[0] == "inference-worker"
        assert lone_threads[-1] == SERVER_THREAD
        model.batches.clear()
        sockets = [connect(port) for _ in range(16)]
        time.sleep(0.1)  # let the server accept them all
        # Hold the server's event loop while 16 requests arrive on 16 connections: when it runs
        # again, none of them is alone, so every one goes through the worker.
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            held.set()
            release.wait(5)

        server.servers[0].get_loop().call_soon_threadsafe(hold)
        assert held.wait(5)
        for sock in sockets:
            sock.sendall(request(PATHS.PREDICT, BODY))
        time.sleep(0.05)
        release.set()
        for sock in sockets:
            assert read_response(sock)[0] == 200
            sock.close()
        assert {thread for thread, _ in model.batches} == {"inference-worker"}
        assert sum(rows for _, rows in model.batches) == 16 * len(ROWS)


class HeldModel(ThreadRecordingModel):
    """The recording model, whose batches wait for ``release`` once ``hold`` is set."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        self.hold = threading.Event()
        self.release = threading.Event()

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.hold.is_set():
            self.release.wait(5)
        return super().forward(inputs)


def test_a_client_that_leaves_while_queued_is_never_run(tiny_model_dir: Path) -> None:
    model = HeldModel(tiny_model_dir)
    app = create_app(settings_for(tiny_model_dir, max_batch_size=1), loader=lambda: model)
    with serving(app) as (_, port):
        wait_ready(app)
        model.batches.clear()
        model.hold.set()
        busy, leaving = connect(port), connect(port)
        busy.sendall(request(PATHS.PREDICT, ONE_ROW))  # holds the worker
        time.sleep(0.1)
        leaving.sendall(request(PATHS.PREDICT, ONE_ROW))
        time.sleep(0.1)
        batcher = service_runtime(app).batcher
        assert batcher is not None
        assert batcher.queued_rows == 1
        leaving.close()  # the client gives up while its request waits in the queue
        deadline = time.monotonic() + 5
        while 'status="499"' not in metric_line(app, port, "inference_http_requests_total"):
            assert time.monotonic() < deadline, "the abandoned request was never let go"
            time.sleep(0.02)
        model.release.set()
        assert read_response(busy)[0] == 200
        busy.close()
        model.hold.clear()
        with connect(port) as sock:
            sock.sendall(request(PATHS.PREDICT, ONE_ROW))
            assert read_response(sock)[0] == 200
        # The busy request and the last one ran; the abandoned one never did.
        assert [rows for _, rows in model.batches] == [1, 1]
        assert batcher.queued_rows == 0
