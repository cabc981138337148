"""The compute-heavy model packages into a loadable model directory; the ceiling measures it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from benchmarks.ceiling import measure_ceiling
from benchmarks.cpu import CpuMeter
from benchmarks.heavy_model import MODEL_NAME, package_heavy_model
from service.model_loader import load_model
from service.signature import ModelSignature


def test_heavy_model_is_a_valid_model_directory(tmp_path: Path) -> None:
    # A narrow, shallow variant keeps the test fast; the code path is the same.
    model_dir = package_heavy_model(tmp_path / "heavy", channels=4, blocks=1)
    signature = ModelSignature.read(model_dir)
    assert signature.name == MODEL_NAME
    assert [spec.name for spec in signature.inputs] == ["pixels"]
    model = load_model(str(model_dir), "cpu")
    outputs = model.forward({"pixels": torch.rand(3, 64) * 16})
    probabilities = outputs["probabilities"]
    assert probabilities.shape == (3, 10)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(3))


def test_heavy_model_refuses_a_senseless_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="channels must be >= 1"):
        package_heavy_model(tmp_path / "heavy", channels=0)


def test_ceiling_measures_every_batch_size(tmp_path: Path) -> None:
    model_dir = package_heavy_model(tmp_path / "heavy", channels=4, blocks=1)
    results = measure_ceiling(model_dir, [1, 4], seconds=0.05, repeats=2, threads=1)
    assert [result.batch for result in results] == [1, 4]
    for result in results:
        assert len(result.rows_per_s) == 2
        assert all(rate > 0 for rate in result.rows_per_s)
        assert result.forward_ms > 0


def test_cpu_meter_sees_the_cpu_of_a_process_group() -> None:
    meter = CpuMeter(os.getpgid(0))
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    shares = meter.shares()
    assert shares.server > 0.05
    assert shares.other >= 0.0
