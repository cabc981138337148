"""The GPU benchmark's harness, run on the CPU with a small input (``--smoke``).

The real run needs a CUDA machine; this proves the model builds and scripts, the bare loop and
the served cells run, and the table comes out, so one short run on a GPU gives the figures.
"""

from __future__ import annotations

import pytest

from benchmarks import gpu

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_smoke_run_serves_the_resnet_sized_model_and_prints_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert gpu.main(["--smoke", "--concurrency", "8", "--client-procs", "2"]) == 0
    table = capsys.readouterr().out
    assert "| 8 |" in table
    row = next(line for line in table.splitlines() if line.startswith("| 8 |"))
    errors = row.split("|")[6].strip()
    assert errors == "0", row


def test_without_a_gpu_the_real_run_says_so() -> None:
    if gpu.torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the real run would start")
    assert gpu.main([]) == 2


def test_the_model_has_resnet50s_size() -> None:
    parameters = sum(p.numel() for p in gpu.ResNet50().parameters())
    assert 25_000_000 < parameters < 26_000_000  # torchvision's resnet50: 25,557,032
