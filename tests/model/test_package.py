"""The bundled digits model: held-out split, accuracy gate, reproducibility, command line."""

from __future__ import annotations

import filecmp
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import digits
from model.package import (
    ACCURACY_METRIC,
    DEFAULT_MIN_ACCURACY,
    holdout_accuracy,
    main,
    package_model,
)
from service.model_loader import load_model
from service.signature import ModelSignature

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model.package", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    signature = ModelSignature.read(model_dir)
    artifact = model_dir / signature.artifact
    if signature.platform == "pytorch_export":
        return dict(torch.export.load(artifact).state_dict)
    scripted = torch.jit.load(str(artifact))  # type: ignore[no-untyped-call]
    return dict(scripted.state_dict())


def test_holdout_is_a_fixed_split_of_raw_pixels() -> None:
    pixels, labels = digits.holdout()
    train_pixels, train_labels = digits.training_set()
    assert pixels.dtype == np.uint8
    assert pixels.shape == (360, 64)
    assert labels.shape == (360,)
    assert int(pixels.max()) == digits.PIXEL_MAX
    assert set(labels.tolist()) == set(range(10))
    assert len(train_pixels) + len(pixels) == 1797
    assert len(train_labels) == len(train_pixels)
    again_pixels, again_labels = digits.holdout()
    assert np.array_equal(pixels, again_pixels)
    assert np.array_equal(labels, again_labels)


def test_packaged_model_passes_the_gate_and_its_figure_is_true(packaged_model_dir: Path) -> None:
    signature = ModelSignature.read(packaged_model_dir)
    accuracy = signature.metrics[ACCURACY_METRIC]
    assert accuracy >= DEFAULT_MIN_ACCURACY
    assert signature.name == "digits"
    assert signature.labels == tuple("0123456789")
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [
        ("pixels", "FP32", (-1, 64))
    ]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("probabilities", "FP32", (-1, 10))
    ]
    assert sorted(p.name for p in packaged_model_dir.iterdir()) == sorted(
        ["signature.json", signature.artifact]
    )
    # The image runs as an unprivileged user, which must be able to read the directory.
    assert packaged_model_dir.stat().st_mode & stat.S_IROTH
    assert packaged_model_dir.stat().st_mode & stat.S_IXOTH
    # The recorded figure is what the served artifact really scores on raw held-out pixels.
    model = load_model(str(packaged_model_dir), "cpu")
    assert holdout_accuracy(model, *digits.holdout()) == accuracy


@pytest.mark.slow
def test_gate_failure_exits_non_zero_and_writes_nothing(
    packaged_model_dir: Path, tmp_path: Path
) -> None:
    # An earlier model in the output directory must survive a failed packaging untouched.
    out = tmp_path / "model"
    shutil.copytree(packaged_model_dir, out)
    result = _run_cli("--out", str(out), "--min-accuracy", "1.0")
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr
    assert "accuracy gate failed" in message
    assert "below the threshold 1.0000" in message
    assert f"nothing written to {out}" in message
    assert result.stdout == ""
    comparison = filecmp.dircmp(packaged_model_dir, out)
    assert not comparison.diff_files
    assert not comparison.left_only
    assert not comparison.right_only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial directory left
    # Reproducibility: this second training scores exactly what the packaged model scored.
    figure = re.search(r"held-out accuracy (\d\.\d{4})", message)
    assert figure is not None, message
    packaged = ModelSignature.read(packaged_model_dir).metrics[ACCURACY_METRIC]
    assert figure.group(1) == f"{packaged:.4f}"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_packaging_twice_gives_the_same_model(packaged_model_dir: Path, tmp_path: Path) -> None:
    threads_before = torch.get_num_threads()
    # In-process (the command line is covered above), in the other format: same weights.
    result = package_model(tmp_path / "again", min_accuracy=0.97, fmt="torchscript")
    out = result.model_dir
    packaged = ModelSignature.read(packaged_model_dir)
    again = ModelSignature.read(out)
    assert again.platform == "pytorch_torchscript"
    assert again.metrics == packaged.metrics
    assert result.accuracy == packaged.metrics[ACCURACY_METRIC]
    assert torch.get_num_threads() == threads_before  # packaging restores torch's settings
    first, second = _weights(packaged_model_dir), _weights(out)
    assert sorted(first) == sorted(second)
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


def test_threshold_outside_zero_to_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "m"), "--min-accuracy", "1.5"]) == 1
    assert "--min-accuracy 1.5: must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--out", str(tmp_path / "m"), "--format", "onnx"])
    assert exited.value.code == 2
    assert "invalid choice: 'onnx'" in capsys.readouterr().err


def test_refuses_to_replace_a_directory_that_is_not_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["--out", str(precious)]) == 1
    assert "not empty and not a model directory" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["--out", str(a_file)]) == 1
    assert "exists and is not a directory" in capsys.readouterr().err
