"""The image served like the pod: probes, predictions at the bundled model's accuracy, draining."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from typing import TYPE_CHECKING

import pytest

from service import contract
from tests.e2e.container.conftest import READY_TIMEOUT_S
from tools.container.client import holdout_accuracy, predict_labels, probes_answer
from tools.container.image import BuiltImage
from tools.container.pod import PodSpec, RunningPod, run_like_pod

if TYPE_CHECKING:
    import docker

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


def test_probes_and_metadata_answer(pod: RunningPod) -> None:
    assert probes_answer(pod.base_url) == {"live": 200, "ready": 200, "model": 200}


def test_predictions_have_the_bundled_models_accuracy(
    docker_engine: docker.DockerClient, service_image: BuiltImage, pod: RunningPod
) -> None:
    from model.package import ACCURACY_METRIC, DEFAULT_MIN_ACCURACY

    raw = docker_engine.containers.run(
        service_image.tag,
        entrypoint=["cat", f"{contract.BUNDLED_MODEL_DIR}/signature.json"],
        remove=True,
    )
    recorded = json.loads(raw)["metrics"][ACCURACY_METRIC]
    accuracy = holdout_accuracy(pod.base_url)
    assert accuracy.total >= 300
    assert accuracy.ratio >= DEFAULT_MIN_ACCURACY
    # Same bytes, same held-out digits: the served model scores exactly what the gate measured.
    assert accuracy.ratio == pytest.approx(recorded, abs=1e-9)


def _slow_request(
    base_url: str, row: list[float], go: threading.Event, results: list[object]
) -> None:
    """POST /predict, pausing mid-body until ``go`` is set, so the request is in flight."""
    host, port = base_url.removeprefix("http://").split(":")
    body = json.dumps({"instances": [row]}).encode()
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.putrequest("POST", contract.PATHS.PREDICT)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        half = len(body) // 2
        connection.send(body[:half])
        results.append("sent-half")
        go.wait(timeout=60)
        connection.send(body[half:])
        response = connection.getresponse()
        results.append((response.status, json.loads(response.read())))
    except Exception as exc:  # recorded and asserted on by the test
        results.append(exc)
    finally:
        connection.close()


def test_docker_stop_drains_in_flight_requests_and_exits_0(service_image: BuiltImage) -> None:
    from model.digits import holdout

    pixels, labels = holdout()
    rows = pixels[:8].astype(float).tolist()
    with run_like_pod(PodSpec(service_image.tag), ready_timeout_s=READY_TIMEOUT_S) as running:
        assert predict_labels(running.base_url, rows[:1])
        go = threading.Event()
        results: list[list[object]] = [[] for _ in rows]
        threads = [
            threading.Thread(target=_slow_request, args=(running.base_url, row, go, out))
            for row, out in zip(rows, results, strict=True)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while not all(out for out in results) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(out == ["sent-half"] for out in results), results
        grace = str(contract.SHUTDOWN.termination_grace_period_seconds)
        stop = ["docker", "stop", "--time", grace, running.name]
        stopper = threading.Thread(target=subprocess.run, args=(stop,), kwargs={"check": True})
        stopper.start()
        time.sleep(1.0)  # SIGTERM delivered: readiness off, listener closing, requests mid-body
        go.set()
        for thread in threads:
            thread.join(timeout=60)
        stopper.join(timeout=60)
    assert running.exit_code == 0
    for out, expected in zip(results, labels[:8].tolist(), strict=True):
        assert len(out) == 2, out
        status, document = out[1]
        assert status == 200, document
        assert document["predictions"][0]["label"] == str(expected)
