"""Probes: liveness, readiness and start-up through loading, serving and shutdown."""

from __future__ import annotations

import threading
from pathlib import Path

from service.app import create_app, service_runtime
from service.contract import PATHS
from tests.service.api.payloads import INFER, READY_SERIES, BlockingLoader, error_of, infer_json
from tests.service.conftest import open_client, settings_for, wait_ready


def test_not_ready_until_loaded_and_warm_then_not_ready_from_shutdown(
    tiny_model_dir: Path, transport: str
) -> None:
    loader = BlockingLoader(tiny_model_dir)
    app = create_app(settings_for(tiny_model_dir), loader=loader)
    with open_client(app, transport) as client:
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


def test_a_model_that_fails_to_load_keeps_the_server_unready_and_says_why(
    tmp_path: Path, transport: str
) -> None:
    fatal = threading.Event()
    app = create_app(settings_for(tmp_path / "missing"), on_fatal=fatal.set)
    with open_client(app, transport) as client:
        assert fatal.wait(30)
        response = client.get(PATHS.READY)
        assert response.status_code == 503
        message = error_of(response)
        assert "failed to load" in message
        assert "missing" in message
