"""The demo's two halves end to end: the bundled model served natively, real held-out digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.demo import run_client_demo, serve_native

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_bundled_model_labels_held_out_digits_over_both_routes(
    packaged_model_dir: Path,
) -> None:
    with serve_native(packaged_model_dir) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        result = run_client_demo(base_url, limit=60)
    # serve_native raised unless the server exited 0 after SIGTERM.
    assert result.samples == 60
    assert [route.requests for route in result.routes] == [60, 60]
    for route in result.routes:
        assert route.accuracy >= 0.95, route
        assert route.percentile(50) > 0
    assert result.batch_accuracy >= 0.95
    assert len(result.examples) == 8
    assert "POST v2 infer (binary)" in result.summary()
