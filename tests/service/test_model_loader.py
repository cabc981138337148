"""The model loader: both artifact formats, every start-up failure, devices, and S3 through moto."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import torch

from model.classifier import DigitsClassifier
from model.package import FORMATS, digits_signature, export_artifact
from service.model_loader import (
    DeviceError,
    InvalidInputError,
    LoadedModel,
    ModelLoadError,
    load_model,
    resolve_device,
)
from service.signature import DEFAULT_ARTIFACT, ModelSignature, TensorSpec

BUCKET = "models-bucket"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_model_dir(out: Path, module: torch.nn.Module, platform: str) -> Path:
    out.mkdir(parents=True)
    artifact = out / DEFAULT_ARTIFACT[platform]
    export_artifact(module, platform, artifact)  # type: ignore[arg-type]
    digits_signature(platform, _sha256(artifact), {}).write(out)
    return out


@pytest.fixture(scope="module")
def reference_net() -> DigitsClassifier:
    """An untrained but seeded classifier: the loader does not care how good a model is."""
    torch.manual_seed(1234)
    return DigitsClassifier().eval()


@pytest.fixture(scope="module")
def model_dirs(
    tmp_path_factory: pytest.TempPathFactory, reference_net: DigitsClassifier
) -> dict[str, Path]:
    """The reference network packaged once in each format, keyed by platform."""
    root = tmp_path_factory.mktemp("models")
    return {
        platform: _write_model_dir(root / fmt, reference_net, platform)
        for fmt, platform in FORMATS.items()
    }


@pytest.fixture(params=sorted(FORMATS.values()))
def model_dir(request: pytest.FixtureRequest, model_dirs: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of a packaged model directory, free to break, in each format."""
    return Path(shutil.copytree(model_dirs[request.param], tmp_path / "model"))


def _rewrite_signature(model_dir: Path, change: Callable[[ModelSignature], ModelSignature]) -> None:
    change(ModelSignature.read(model_dir)).write(model_dir)


def test_loads_each_format_and_answers_like_the_original(
    model_dir: Path, reference_net: DigitsClassifier
) -> None:
    model = load_model(str(model_dir), "cpu")
    assert isinstance(model, LoadedModel)
    assert model.device == torch.device("cpu")
    assert model.signature == ModelSignature.read(model_dir)
    pixels = torch.randint(0, 17, (5, 64)).float()
    outputs = model.forward({"pixels": pixels})
    assert list(outputs) == ["probabilities"]
    probabilities = outputs["probabilities"]
    assert probabilities.shape == (5, 10)
    assert probabilities.device.type == "cpu"
    with torch.no_grad():
        expected = reference_net(pixels)
    torch.testing.assert_close(probabilities, expected)
    model.warmup([1, 7, 32])


def test_file_scheme_is_a_local_directory(model_dirs: dict[str, Path]) -> None:
    model_dir = model_dirs["pytorch_export"]
    assert load_model(f"file://{model_dir}", "cpu").signature.platform == "pytorch_export"


def test_forward_refuses_inputs_that_do_not_fit(model_dirs: dict[str, Path]) -> None:
    model = load_model(str(model_dirs["pytorch_export"]), "cpu")
    with pytest.raises(
        InvalidInputError, match=r"inputs \['image'\] given; the model takes \['pixels'\]"
    ):
        model.forward({"image": torch.zeros(1, 64)})
    with pytest.raises(InvalidInputError, match=r"dtype torch\.float64; the model takes FP32"):
        model.forward({"pixels": torch.zeros(1, 64, dtype=torch.float64)})
    with pytest.raises(InvalidInputError, match=r"shape \[1, 63\]; the model takes \[-1, 64\]"):
        model.forward({"pixels": torch.zeros(1, 63)})
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.warmup([0])


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"{tmp_path}/nowhere: model directory not found"):
        load_model(str(tmp_path / "nowhere"), "cpu")


def test_uri_naming_a_file(model_dirs: dict[str, Path]) -> None:
    artifact = model_dirs["pytorch_export"] / "model.pt2"
    with pytest.raises(ModelLoadError, match=r"model\.pt2: not a directory"):
        load_model(str(artifact), "cpu")


def test_missing_signature(model_dir: Path) -> None:
    (model_dir / "signature.json").unlink()
    with pytest.raises(ModelLoadError, match=r"/model/signature\.json: missing"):
        load_model(str(model_dir), "cpu")


def test_invalid_signature_names_the_field(model_dir: Path) -> None:
    text = (model_dir / "signature.json").read_text().replace('"FP32"', '"FLOAT"', 1)
    (model_dir / "signature.json").write_text(text)
    with pytest.raises(
        ModelLoadError, match=r"signature\.json: invalid signature:.*datatype.*'FLOAT'"
    ):
        load_model(str(model_dir), "cpu")


def test_missing_artifact(model_dir: Path) -> None:
    artifact = model_dir / ModelSignature.read(model_dir).artifact
    artifact.unlink()
    with pytest.raises(ModelLoadError, match=f"{artifact.name}: missing"):
        load_model(str(model_dir), "cpu")


def test_sha_mismatch(model_dir: Path) -> None:
    artifact = model_dir / ModelSignature.read(model_dir).artifact
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=f"{artifact.name}: sha256 is {_sha256(artifact)} but"):
        load_model(str(model_dir), "cpu")


def test_corrupt_artifact_with_matching_sha(model_dir: Path) -> None:
    # A truncated file whose sha was recorded: the archive itself must be refused, not crash.
    artifact = model_dir / ModelSignature.read(model_dir).artifact
    artifact.write_bytes(artifact.read_bytes()[:1000])
    _rewrite_signature(model_dir, lambda s: replace(s, sha256=_sha256(artifact)))
    with pytest.raises(ModelLoadError, match=f"{artifact.name}: not a loadable"):
        load_model(str(model_dir), "cpu")


def test_artifact_of_the_other_format(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    model_dir = Path(shutil.copytree(model_dirs["pytorch_export"], tmp_path / "model"))
    _rewrite_signature(model_dir, lambda s: replace(s, platform="pytorch_torchscript"))
    with pytest.raises(ModelLoadError, match=r"model\.pt2: not a loadable TorchScript archive"):
        load_model(str(model_dir), "cpu")


MISMATCHES = [
    (
        "output shape",
        lambda s: replace(s, outputs=(TensorSpec("probabilities", "FP32", (-1, 11)),), labels=None),
        r"output 'probabilities' has shape \[1, 10\] for a batch of 1; "
        r"signature\.json declares \[-1, 11\]",
    ),
    (
        "output datatype",
        lambda s: replace(s, outputs=(TensorSpec("probabilities", "FP64", (-1, 10)),)),
        r"output 'probabilities' is FP32; signature\.json declares FP64",
    ),
    (
        "output count",
        lambda s: replace(
            s, outputs=(*s.outputs, TensorSpec("logits", "FP32", (-1, 10))), labels=None
        ),
        r"the model returned 1 outputs; signature\.json declares 2",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [case[1:] for case in MISMATCHES], ids=[case[0] for case in MISMATCHES]
)
def test_signature_that_does_not_match_the_model(
    model_dir: Path, change: Callable[[ModelSignature], ModelSignature], message: str
) -> None:
    _rewrite_signature(model_dir, change)
    artifact = ModelSignature.read(model_dir).artifact
    with pytest.raises(ModelLoadError, match=f"{artifact}: {message}"):
        load_model(str(model_dir), "cpu")


def test_torchscript_input_shape_mismatch_fails_the_zero_batch(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = Path(shutil.copytree(model_dirs["pytorch_torchscript"], tmp_path / "model"))
    _rewrite_signature(
        model_dir, lambda s: replace(s, inputs=(TensorSpec("pixels", "FP32", (-1, 32)),))
    )
    with pytest.raises(
        ModelLoadError,
        match=r"model\.ts: the model fails on a batch of zeros shaped as signature\.json "
        r"declares \(\{'pixels': \[1, 32\]\}\)",
    ):
        load_model(str(model_dir), "cpu")


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (("FP32", (-1, 32)), r"FP32 \[-1, 64\] in the exported program; .* FP32 \[-1, 32\]"),
        (("INT64", (-1, 64)), r"FP32 \[-1, 64\] in the exported program; .* INT64 \[-1, 64\]"),
        (("FP32", (-1, -1)), r"FP32 \[-1, 64\] in the exported program; .* FP32 \[-1, -1\]"),
    ],
    ids=["shape", "datatype", "free-dim-the-program-fixes"],
)
def test_exported_input_mismatch_is_found_in_the_program(
    model_dirs: dict[str, Path], tmp_path: Path, declared: tuple[str, tuple[int, ...]], message: str
) -> None:
    # An exported program accepts an INT64 tensor without complaint, so the loader compares the
    # dtypes and shapes the program recorded at export time with the signature.
    model_dir = Path(shutil.copytree(model_dirs["pytorch_export"], tmp_path / "model"))
    datatype, shape = declared
    _rewrite_signature(
        model_dir, lambda s: replace(s, inputs=(TensorSpec("pixels", datatype, shape),))
    )
    with pytest.raises(ModelLoadError, match=r"model\.pt2: input 'pixels' is " + message):
        load_model(str(model_dir), "cpu")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_model_with_a_fixed_batch_size_is_refused(tmp_path: Path) -> None:
    class FixedBatch(torch.nn.Module):
        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return torch.softmax(pixels.reshape(2, 64)[:, :10], dim=1)

    model_dir = tmp_path / "fixed"
    model_dir.mkdir()
    artifact = model_dir / "model.ts"
    torch.jit.save(torch.jit.script(FixedBatch()), str(artifact))
    digits_signature("pytorch_torchscript", _sha256(artifact), {}).write(model_dir)
    with pytest.raises(ModelLoadError, match=r"the model fails on a batch of zeros.*\[1, 64\]"):
        load_model(str(model_dir), "cpu")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected_auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected_auto
    with pytest.raises(
        DeviceError, match=r"DEVICE='gpu' is not a device; allowed: auto, cpu, cuda"
    ):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(DeviceError, match="DEVICE='cuda' but torch sees no CUDA GPU"):
        load_model(str(model_dirs["pytorch_export"]), "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("platform", sorted(FORMATS.values()))
def test_loads_onto_the_gpu(model_dirs: dict[str, Path], platform: str) -> None:
    model = load_model(str(model_dirs[platform]), "cuda")
    assert model.device.type == "cuda"
    outputs = model.forward({"pixels": torch.zeros(3, 64)})
    assert outputs["probabilities"].device.type == "cpu"
    model.warmup([1, 32])


# --- S3, against moto in server mode on 127.0.0.1 ------------------------------------------


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An S3 client of the moto server, with the loader's boto3 pointed at it too."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    client = boto3.client("s3", endpoint_url=moto_server)
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    return client


def _upload(client: Any, model_dir: Path, prefix: str, names: list[str] | None = None) -> None:
    for path in sorted(model_dir.iterdir()):
        if names is None or path.name in names:
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.name}")


def test_loads_from_s3_and_reuses_the_cache(
    s3: Any, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    source = model_dirs["pytorch_export"]
    _upload(s3, source, "digits/v1")
    model = load_model(f"s3://{BUCKET}/digits/v1/", "cpu", cache_dir=str(tmp_path))
    assert model.signature == ModelSignature.read(source)
    assert model.forward({"pixels": torch.zeros(2, 64)})["probabilities"].shape == (2, 10)
    cached = list(tmp_path.rglob("model.pt2"))
    assert len(cached) == 1
    assert _sha256(cached[0]) == model.signature.sha256
    # With the artifact gone from the bucket, a reload still works from the verified cache.
    s3.delete_object(Bucket=BUCKET, Key="digits/v1/model.pt2")
    again = load_model(f"s3://{BUCKET}/digits/v1", "cpu", cache_dir=str(tmp_path))
    assert again.signature.sha256 == model.signature.sha256


def test_s3_torchscript(s3: Any, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    _upload(s3, model_dirs["pytorch_torchscript"], "ts")
    model = load_model(f"s3://{BUCKET}/ts", "cpu", cache_dir=str(tmp_path))
    assert model.signature.platform == "pytorch_torchscript"


def test_s3_missing_signature_key(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"s3://{BUCKET}/absent/signature.json: not found"):
        load_model(f"s3://{BUCKET}/absent", "cpu", cache_dir=str(tmp_path))


def test_s3_missing_artifact_key(s3: Any, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    _upload(s3, model_dirs["pytorch_export"], "half", names=["signature.json"])
    with pytest.raises(ModelLoadError, match=f"s3://{BUCKET}/half/model.pt2: not found"):
        load_model(f"s3://{BUCKET}/half", "cpu", cache_dir=str(tmp_path))


def test_s3_missing_bucket(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"s3://no-such-bucket/m/signature\.json: not found"):
        load_model("s3://no-such-bucket/m", "cpu", cache_dir=str(tmp_path))


def test_s3_uri_without_bucket(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no bucket; expected s3://BUCKET/PREFIX"):
        load_model("s3:///digits", "cpu", cache_dir=str(tmp_path))


def test_s3_tampered_artifact_fails_the_sha_check(
    s3: Any, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    _upload(s3, model_dirs["pytorch_export"], "tampered")
    s3.put_object(Bucket=BUCKET, Key="tampered/model.pt2", Body=b"not a model")
    with pytest.raises(ModelLoadError, match=f"s3://{BUCKET}/tampered/model.pt2: sha256 is"):
        load_model(f"s3://{BUCKET}/tampered", "cpu", cache_dir=str(tmp_path))


@pytest.mark.parametrize("platform", sorted(FORMATS.values()))
def test_forward_moves_no_tensor_already_where_it_belongs(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    # Tensor.to releases the GIL even as a no-op, and taking it back on the inference worker
    # costs up to a GIL switch interval while the event loop is busy (service.model_loader).
    model = load_model(str(model_dirs[platform]), "cpu")
    moves: list[torch.device | str] = []
    original = torch.Tensor.to

    def counting_to(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        moves.append(args[0] if args else kwargs.get("device", "?"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    outputs = model.forward(model.zero_batch(2))
    assert moves == []
    assert all(tensor.device.type == "cpu" for tensor in outputs.values())
