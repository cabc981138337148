"""The real server: ``python -m service`` on 127.0.0.1, driven over HTTP by stock clients.

Covers what only a real process shows: readiness before warm-up, batching of concurrent requests,
SIGTERM under load (zero failed requests, exit 0), tritonclient in binary and JSON modes, the API
key read from a moto Secrets Manager, and start-up errors that name their cause.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
import torch
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from service.contract import API_KEY_HEADER, PATHS, REQUEST_ID_HEADER, SHUTDOWN
from service.model_loader import load_model
from tests.conftest import MOTO_REGION, REPO_ROOT, aws_env
from tests.service.api.payloads import binary_request
from tools.local_server import LocalServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROWS = (np.arange(5 * 64, dtype=np.float32).reshape(5, 64) * 7 % 17).astype(np.float32)
KEY = "moto-api-key-7f3a9c2e51"
INFER = "/v2/models/digits/infer"


def post(
    server: LocalServer, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """One POST on a fresh connection, as a separate client would send it."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(
            "POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def predict_body(rows: np.ndarray) -> bytes:
    return json.dumps({"instances": rows.tolist()}).encode()


def metric(server: LocalServer, name: str) -> float:
    status, body = server.get(PATHS.METRICS)
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not exposed")


@pytest.fixture(scope="module")
def tiny_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    log = tmp_path_factory.mktemp("tiny-server") / "server.log"
    with LocalServer(tiny_model_dir, log_path=log, env={"MAX_BATCH_SIZE": "8"}) as server:
        server.wait_ready(120)
        yield server
        assert server.terminate() == 0, server.log_tail()


def expected_probabilities(model_dir: Path, rows: np.ndarray) -> np.ndarray:
    model = load_model(str(model_dir), "cpu")
    return model.forward({"pixels": torch.from_numpy(rows)})["probabilities"].numpy()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_stock_tritonclient_infers(
    tiny_server: LocalServer, tiny_model_dir: Path, binary: bool
) -> None:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{tiny_server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("digits")
        metadata = client.get_model_metadata("digits")
        assert metadata["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
        pixels = triton.InferInput("pixels", list(ROWS.shape), "FP32")
        if binary:
            pixels.set_data_from_numpy(ROWS)  # the defaults: binary in, binary out
            result = client.infer("digits", [pixels])
        else:
            pixels.set_data_from_numpy(ROWS, binary_data=False)
            wanted = triton.InferRequestedOutput("probabilities", binary_data=False)
            result = client.infer("digits", [pixels], outputs=[wanted], request_id="json-1")
            assert result.get_response()["id"] == "json-1"
            assert "data" in result.get_response()["outputs"][0]
        probabilities = result.as_numpy("probabilities")
        np.testing.assert_allclose(
            probabilities, expected_probabilities(tiny_model_dir, ROWS), rtol=1e-6
        )
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.infer("nope", [pixels])
    finally:
        client.close()


def test_access_log_lines_carry_the_request_id(tiny_server: LocalServer) -> None:
    status, _, _ = post(
        tiny_server, PATHS.PREDICT, predict_body(ROWS[:1]), {REQUEST_ID_HEADER: "probe-77"}
    )
    assert status == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in tiny_server.log_lines() if line.get("request_id") == "probe-77"]
        if lines:
            break
        time.sleep(0.05)
    (line,) = lines
    assert line["route"] == PATHS.PREDICT
    assert line["status"] == 200
    assert line["msg"] == "request"


def test_readiness_batching_and_sigterm_under_load(slow_model_dir: Path, tmp_path: Path) -> None:
    # MAX_BATCH_SIZE 1024: warming up a batch that large takes a while, so readiness can be seen
    # false while liveness is already true; it also lets concurrent requests merge freely.
    server = LocalServer(
        slow_model_dir,
        log_path=tmp_path / "server.log",
        # The queue bound is lifted: 16 requests of 512 rows queue at once, and all must finish.
        env={"MAX_BATCH_SIZE": "1024", "DRAIN_PERIOD_SECONDS": "0.5", "MAX_QUEUED_ROWS": "100000"},
    )
    with server:
        while True:  # until the process listens
            try:
                if server.get(PATHS.LIVE)[0] == 200:
                    break
            except OSError:
                assert server.process is not None
                assert server.process.poll() is None, server.log_tail()
                time.sleep(0.02)
        status, body = server.get(PATHS.READY)
        assert status == 503, "ready before the warm-up of a 1024-row batch finished"
        assert b"still loading" in body
        server.wait_ready(120)

        # Concurrent single-row requests share batches.
        clients = 32
        barrier = threading.Barrier(clients)
        statuses: list[int] = []

        def one_row() -> None:
            barrier.wait()
            statuses.append(post(server, PATHS.PREDICT, predict_body(ROWS[:1]))[0])

        threads = [threading.Thread(target=one_row) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert statuses == [200] * clients
        batches = metric(server, "inference_batch_size_count")
        assert metric(server, "inference_batch_size_sum") == clients
        assert batches < clients, "every request ran alone: nothing was batched"
        assert (
            metric(server, 'inference_batch_size_bucket{le="1.0",model="digits",version="1"}')
            < batches
        )

        # SIGTERM while requests are in flight: every one of them completes.
        # Binary bodies: decoding them costs the event loop next to nothing, so all requests are
        # received long before the ~2 s of queued compute they bring is done.
        heavy = np.tile(ROWS, (103, 1))[:512]
        in_flight = 16
        results: list[tuple[int, bytes, dict[str, str]]] = []
        heavy_body, heavy_headers = binary_request(heavy)
        start = threading.Barrier(in_flight)

        def heavy_request() -> None:
            start.wait()
            results.append(post(server, INFER, heavy_body, heavy_headers))

        threads = [threading.Thread(target=heavy_request) for _ in range(in_flight)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        # The scrape itself is in flight too, hence the + 1.
        while metric(server, "inference_http_requests_in_flight") < in_flight + 1:
            assert time.monotonic() < deadline, "requests never got in flight"
            time.sleep(0.01)
        assert server.process is not None
        signalled = time.monotonic()
        server.process.send_signal(15)
        time.sleep(1.0)  # the 0.5 s drain period, then the listener closes
        with pytest.raises(urllib.error.URLError) as refused:  # stopped accepting
            server.get(PATHS.LIVE, timeout=1)
        assert isinstance(refused.value.reason, ConnectionRefusedError)
        for thread in threads:
            thread.join(60)
        assert server.process.wait(SHUTDOWN.drain_seconds + 5) == 0, server.log_tail()
        assert time.monotonic() - signalled < SHUTDOWN.drain_seconds
    assert [status for status, _, _ in results] == [200] * in_flight
    for _, body, headers in results:
        result = triton.InferenceServerClient.parse_response_body(
            body, header_length=int(headers["inference-header-content-length"])
        )
        assert result.as_numpy("probabilities").shape == (len(heavy), 10)
    messages = [line["msg"] for line in server.log_lines()]
    assert any("readiness is now false" in message for message in messages)


def test_api_key_from_moto_secrets_manager(
    moto_server: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    secrets = boto3.client("secretsmanager", region_name=MOTO_REGION, endpoint_url=moto_server)
    arn = secrets.create_secret(Name="inference-key", SecretString=json.dumps({"api_key": KEY}))[
        "ARN"
    ]
    env = {**aws_env(moto_server), "API_KEY_SECRET_ARN": arn, "AWS_REGION": MOTO_REGION}
    with LocalServer(tiny_model_dir, log_path=tmp_path / "server.log", env=env) as server:
        server.wait_ready(120)
        body = predict_body(ROWS[:2])
        status, answer, _ = post(server, PATHS.PREDICT, body)
        assert status == 401
        assert API_KEY_HEADER in json.loads(answer)["error"]
        assert post(server, PATHS.PREDICT, body, {API_KEY_HEADER: KEY})[0] == 200
        assert post(server, PATHS.PREDICT, body, {"Authorization": f"Bearer {KEY}"})[0] == 200
        assert post(server, PATHS.PREDICT, body, {API_KEY_HEADER: "guess"})[0] == 401
        assert server.get(PATHS.READY)[0] == 200  # probes stay open
        client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        try:
            pixels = triton.InferInput("pixels", [2, 64], "FP32")
            pixels.set_data_from_numpy(ROWS[:2])
            result = client.infer("digits", [pixels], headers={API_KEY_HEADER: KEY})
            assert result.as_numpy("probabilities").shape == (2, 10)
        finally:
            client.close()
        assert server.terminate() == 0
    assert KEY not in (tmp_path / "server.log").read_text()
    assert any(arn in line["msg"] for line in server.log_lines())


def run_service(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "--host", "127.0.0.1"],
        env={**env, "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_start_up_errors_name_their_cause(moto_server: str, tiny_model_dir: Path) -> None:
    bad = run_service({"MAX_BATCH_SIZE": "0", "DEVICE": "gpu"})
    assert bad.returncode == 2
    (line,) = [json.loads(text) for text in bad.stdout.splitlines() if text.startswith("{")]
    assert line["level"] == "ERROR"
    assert "MAX_BATCH_SIZE='0'" in line["msg"]
    assert "DEVICE='gpu' is not allowed: expected one of auto, cpu, cuda" in line["msg"]

    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf"
    env = {**aws_env(moto_server), "API_KEY_SECRET_ARN": missing, "MODEL_URI": str(tiny_model_dir)}
    no_secret = run_service(env)
    assert no_secret.returncode == 2
    assert missing in no_secret.stdout
    assert "ResourceNotFoundException" in no_secret.stdout

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_service({"MODEL_URI": str(tiny_model_dir), "PORT": str(taken.getsockname()[1])})
    assert busy.returncode == 3
    assert "address already in use" in busy.stdout
    assert "could not serve on 127.0.0.1" in busy.stdout

    no_model = run_service({"MODEL_URI": str(tiny_model_dir / "absent"), "PORT": str(free_port())})
    assert no_model.returncode == 1
    assert "failed to load" in no_model.stdout
    assert "absent" in no_model.stdout
