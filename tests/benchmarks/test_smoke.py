"""One tiny real cell per server: ours and every peer, started and driven by wrk.

No timing is asserted; the point is that every code path of the benchmark runs against the real
processes (start, readiness, sanity answer, wrk, CPU and /metrics accounting, stop).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bodies
from benchmarks.run import ModelUnderTest, Plan, check_answer, measure_cell
from benchmarks.servers import ServerConfig, running_server
from model.digits import holdout
from service.signature import ModelSignature

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("wrk")]
TINY = Plan(
    warmup_s=1, seconds=1, repeats=1, ceiling_seconds=0.1, ceiling_repeats=1, profile_seconds=1
)


@pytest.fixture(scope="module")
def digits(packaged_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelUnderTest:
    work = tmp_path_factory.mktemp("bench")
    signature = ModelSignature.read(packaged_model_dir)
    pixels, labels = holdout()
    model_bodies = {
        route: bodies.write_body(route, pixels[0], signature, work) for route in bodies.ROUTES
    }
    return ModelUnderTest("digits", packaged_model_dir, signature, model_bodies, str(labels[0]))


@pytest.mark.parametrize("kind", ["ours", "litserve", "minimal-batcher", "minimal-unbatched"])
def test_one_tiny_cell_against_a_real_server(
    kind: str, digits: ModelUnderTest, tmp_path: Path
) -> None:
    config = ServerConfig(kind, digits.model_dir, digits.name, 8, 5.0, 1)
    with running_server(config, tmp_path) as server:
        check_answer(server, digits, bodies.ROUTE_PREDICT)
        cell = measure_cell(server, digits, kind, bodies.ROUTE_PREDICT, 4, TINY)
        pid = server.process.pid
    assert server.process.poll() is not None, f"{kind} server {pid} still running"
    assert cell.errors == 0
    assert cell.runs[0].requests > 0
    assert cell.server_cores is not None
    assert cell.server_cores > 0
    if kind == "ours":
        assert cell.metrics is not None
        assert cell.metrics.mean_batch >= 1.0
    else:
        assert cell.metrics is None
