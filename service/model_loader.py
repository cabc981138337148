"""Load a model directory (local or on S3) onto a device, verified against its signature.

``load_model`` fetches ``signature.json`` and the artifact it names, checks the artifact's
sha256, loads it (TorchScript or ``torch.export``), then runs it once on a batch of zeros built
from the signature and checks every output's name, datatype and shape. Any failure is a
``ModelLoadError`` whose message names the file and the problem, so a bad ``MODEL_URI`` stops the
server at start-up with a line an operator can act on.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import torch

from service.contract import DEVICES, WRITABLE_DIR
from service.signature import (
    PLATFORM_EXPORT,
    PLATFORM_TORCHSCRIPT,
    SIGNATURE_FILE,
    ModelSignature,
    SignatureError,
    TensorSpec,
    datatype_of_torch,
    torch_dtype,
)

#: Where models fetched from S3 are kept; under /tmp because the root filesystem is read-only.
DEFAULT_CACHE_DIR: Final = f"{WRITABLE_DIR}/model-cache"
#: Batch sizes of the load-time check: two sizes prove the batch dimension is really free.
CHECK_BATCH_SIZES: Final = (1, 2)

_S3_SCHEME: Final = "s3://"
_FILE_SCHEME: Final = "file://"


class ModelLoadError(Exception):
    """The model could not be loaded; the message names the file or URI and the problem."""


class DeviceError(ModelLoadError):
    """The requested device is not a known name, or is not present on this machine."""


class InvalidInputError(ValueError):
    """Tensors given to ``LoadedModel.forward`` do not match the signature's inputs."""


def resolve_device(requested: str) -> torch.device:
    """The torch device for ``DEVICE``: ``auto`` picks CUDA when a GPU is visible, else the CPU."""
    if requested not in DEVICES:
        raise DeviceError(f"DEVICE={requested!r} is not a device; allowed: {', '.join(DEVICES)}")
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "auto":
        return torch.device("cpu")
    cuda_build = torch.version.cuda or "none: this torch build is CPU-only"
    raise DeviceError(
        f"DEVICE='cuda' but torch sees no CUDA GPU (torch {torch.__version__}, CUDA {cuda_build}); "
        "run on a GPU node, or set DEVICE=auto or DEVICE=cpu"
    )


_CPU = torch.device("cpu")


def _on(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``: moved only if it is elsewhere."""
    return tensor if tensor.device == device else tensor.to(device)


class LoadedModel:
    """A model on its device, called with named tensors and answering with named tensors."""

    def __init__(
        self,
        signature: ModelSignature,
        device: torch.device,
        module: Callable[..., Any],
        source: str,
    ) -> None:
        self.signature = signature
        self.device = device
        self.source = source
        self._module = module
        # Resolved once: forward runs per batch and its checks must cost microseconds.
        self._input_names = frozenset(spec.name for spec in signature.inputs)
        self._input_dtypes = tuple(torch_dtype(spec.datatype) for spec in signature.inputs)

    def zero_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        """A batch of zeros for every input, with 1 for each free non-batch dimension."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return {
            spec.name: torch.zeros(spec.example_shape(batch_size), dtype=torch_dtype(spec.datatype))
            for spec in self.signature.inputs
        }

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run one batch: inputs by name (on any device), outputs by name on the CPU.

        ``InvalidInputError`` when the names, datatypes or shapes differ from the signature.
        """
        self._check_inputs(inputs)
        with torch.inference_mode():
            # Tensor.to releases the GIL even when it has nothing to move; on the worker, under a
            # busy event loop, taking it back costs up to a GIL switch interval per call (0.6 ms
            # measured per no-op .to()). So only tensors on the wrong device are moved.
            args = [_on(inputs[spec.name], self.device) for spec in self.signature.inputs]
            raw = self._module(*args)
            outputs = self._name_outputs(raw)
            return {name: _on(tensor, _CPU) for name, tensor in outputs.items()}

    def warmup(self, batch_sizes: Iterable[int]) -> None:
        """Run a batch of zeros of each size, so first requests do not pay for lazy set-up."""
        for batch_size in batch_sizes:
            self.forward(self.zero_batch(batch_size))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _check_inputs(self, inputs: Mapping[str, torch.Tensor]) -> None:
        if inputs.keys() != self._input_names:
            expected = [spec.name for spec in self.signature.inputs]
            raise InvalidInputError(f"inputs {sorted(inputs)} given; the model takes {expected}")
        batch_sizes = set()
        for spec, dtype in zip(self.signature.inputs, self._input_dtypes, strict=True):
            tensor = inputs[spec.name]
            if tensor.dtype != dtype:
                raise InvalidInputError(
                    f"input {spec.name!r} has dtype {tensor.dtype}; the model takes {spec.datatype}"
                )
            if not spec.matches(tensor.shape):
                raise InvalidInputError(
                    f"input {spec.name!r} has shape {list(tensor.shape)}; "
                    f"the model takes {list(spec.shape)}"
                )
            batch_sizes.add(tensor.shape[0])
        if len(batch_sizes) > 1:
            raise InvalidInputError(f"inputs disagree on the batch size: {sorted(batch_sizes)}")

    def _name_outputs(self, raw: object) -> dict[str, torch.Tensor]:
        specs = self.signature.outputs
        if isinstance(raw, torch.Tensor):
            values: list[object] = [raw]
        elif isinstance(raw, tuple | list):
            values = list(raw)
        elif isinstance(raw, dict):
            if sorted(raw) != sorted(spec.name for spec in specs):
                raise ModelLoadError(
                    f"{self.source}: the model returned outputs {sorted(raw)}; "
                    f"{SIGNATURE_FILE} declares {[spec.name for spec in specs]}"
                )
            values = [raw[spec.name] for spec in specs]
        else:
            raise ModelLoadError(
                f"{self.source}: the model returned a {type(raw).__name__}; "
                "expected a tensor, a tuple of tensors or a dict of tensors"
            )
        if len(values) != len(specs):
            raise ModelLoadError(
                f"{self.source}: the model returned {len(values)} outputs; "
                f"{SIGNATURE_FILE} declares {len(specs)} ({[spec.name for spec in specs]})"
            )
        named: dict[str, torch.Tensor] = {}
        for spec, value in zip(specs, values, strict=True):
            if not isinstance(value, torch.Tensor):
                raise ModelLoadError(
                    f"{self.source}: output {spec.name!r} is a {type(value).__name__}, not a tensor"
                )
            named[spec.name] = value
        return named


def load_model(
    uri: str, device: str = "auto", *, cache_dir: str = DEFAULT_CACHE_DIR
) -> LoadedModel:
    """Fetch, verify, load and check the model directory at ``uri`` on ``device``.

    ``uri`` is a local directory (optionally ``file://``) or ``s3://bucket/prefix``; S3 objects
    are downloaded into ``cache_dir`` with boto3, which honours ``AWS_ENDPOINT_URL`` and the usual
    credential chain (EKS Pod Identity in the cluster).
    """
    torch_device = resolve_device(device)
    if uri.startswith(_S3_SCHEME):
        model_dir, display = _fetch_from_s3(uri, Path(cache_dir))
    else:
        model_dir = Path(uri.removeprefix(_FILE_SCHEME))
        display = str(model_dir)
        _check_local_dir(model_dir)
    signature = _read_signature(model_dir, display)
    artifact = model_dir / signature.artifact
    artifact_display = f"{display.rstrip('/')}/{signature.artifact}"
    if not artifact.is_file():
        raise ModelLoadError(f"{artifact_display}: missing (the artifact {SIGNATURE_FILE} names)")
    _verify_sha256(artifact, signature.sha256, artifact_display)
    module = _load_artifact(artifact, signature, torch_device, artifact_display)
    model = LoadedModel(signature, torch_device, module, artifact_display)
    _check_against_signature(model)
    return model


def _check_local_dir(model_dir: Path) -> None:
    if not model_dir.exists():
        raise ModelLoadError(f"{model_dir}: model directory not found")
    if not model_dir.is_dir():
        raise ModelLoadError(
            f"{model_dir}: not a directory; the model URI must be a directory holding "
            f"{SIGNATURE_FILE} and the artifact"
        )


def _read_signature(model_dir: Path, display: str) -> ModelSignature:
    shown = f"{display.rstrip('/')}/{SIGNATURE_FILE}"
    try:
        return ModelSignature.read(model_dir)
    except FileNotFoundError:
        raise ModelLoadError(f"{shown}: missing (every model directory needs one)") from None
    except OSError as exc:
        raise ModelLoadError(f"{shown}: cannot be read ({exc.strerror or exc})") from None
    except SignatureError as exc:
        raise ModelLoadError(f"{shown}: invalid signature: {exc}") from None


def _verify_sha256(artifact: Path, expected: str, display: str) -> None:
    with artifact.open("rb") as stream:
        actual = hashlib.file_digest(stream, "sha256").hexdigest()
    if actual != expected:
        raise ModelLoadError(
            f"{display}: sha256 is {actual} but {SIGNATURE_FILE} says {expected} "
            "(the artifact is corrupt or was replaced without re-packaging)"
        )


def _load_artifact(
    artifact: Path, signature: ModelSignature, device: torch.device, display: str
) -> Callable[..., Any]:
    if signature.platform == PLATFORM_TORCHSCRIPT:
        return _load_torchscript(artifact, device, display)
    if signature.platform == PLATFORM_EXPORT:
        return _load_exported(artifact, signature, device, display)
    raise ModelLoadError(f"{display}: unsupported platform {signature.platform!r}")


def _load_torchscript(artifact: Path, device: torch.device, display: str) -> Callable[..., Any]:
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream but still a supported artifact format here.
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(artifact), map_location=device)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ModelLoadError(
            f"{display}: not a loadable TorchScript archive ({type(exc).__name__}: {exc})"
        ) from None
    scripted.eval()
    return scripted  # type: ignore[no-any-return]


def _load_exported(
    artifact: Path, signature: ModelSignature, device: torch.device, display: str
) -> Callable[..., Any]:
    try:
        program = torch.export.load(artifact)
    except Exception as exc:
        raise ModelLoadError(
            f"{display}: not a loadable torch.export archive (.pt2) ({type(exc).__name__}: {exc})"
        ) from None
    _check_exported_inputs(program, signature, display)
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    return program.module()


def _check_exported_inputs(
    program: torch.export.ExportedProgram, signature: ModelSignature, display: str
) -> None:
    """Compare the exported program's recorded input dtypes and shapes with the signature.

    An exported program does not check dtypes when called, so a signature declaring the wrong
    datatype would otherwise load and silently feed the model converted data.
    """
    from torch.export.graph_signature import InputKind, TensorArgument

    names = [
        spec.arg.name
        for spec in program.graph_signature.input_specs
        if spec.kind == InputKind.USER_INPUT and isinstance(spec.arg, TensorArgument)
    ]
    if len(names) != len(signature.inputs):
        raise ModelLoadError(
            f"{display}: the exported program takes {len(names)} tensor inputs; "
            f"{SIGNATURE_FILE} declares {len(signature.inputs)}"
        )
    recorded = {node.name: node.meta.get("val") for node in program.graph.nodes}
    for spec, name in zip(signature.inputs, names, strict=True):
        value = recorded.get(name)
        if not isinstance(value, torch.Tensor):
            continue  # no metadata recorded: the zero-batch run still checks this input
        # A symbolic size is free (-1); a plain int is a size the program was specialised to.
        shape = [dim if isinstance(dim, int) else -1 for dim in value.shape]
        fits = (
            value.dtype == torch_dtype(spec.datatype)
            and len(shape) == len(spec.shape)
            and all(have in (-1, want) for have, want in zip(shape, spec.shape, strict=True))
        )
        if not fits:
            raise ModelLoadError(
                f"{display}: input {spec.name!r} is {_datatype_name(value.dtype)} {shape} in the "
                f"exported program; {SIGNATURE_FILE} declares {spec.datatype} {list(spec.shape)}"
            )


def _datatype_name(dtype: torch.dtype) -> str:
    try:
        return datatype_of_torch(dtype)
    except SignatureError:
        return str(dtype)


def _check_against_signature(model: LoadedModel) -> None:
    """Run zero batches and compare every output with what the signature declares."""
    for batch_size in CHECK_BATCH_SIZES:
        inputs = model.zero_batch(batch_size)
        shapes = {name: list(tensor.shape) for name, tensor in inputs.items()}
        try:
            outputs = model.forward(inputs)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"{model.source}: the model fails on a batch of zeros shaped as {SIGNATURE_FILE} "
                f"declares ({shapes}): {type(exc).__name__}: {_first_line(exc)}"
            ) from None
        for spec in model.signature.outputs:
            _check_output(model.source, spec, outputs[spec.name], batch_size)


def _check_output(source: str, spec: TensorSpec, tensor: torch.Tensor, batch_size: int) -> None:
    datatype = _datatype_name(tensor.dtype)
    if datatype != spec.datatype:
        raise ModelLoadError(
            f"{source}: output {spec.name!r} is {datatype}; "
            f"{SIGNATURE_FILE} declares {spec.datatype}"
        )
    if not spec.matches(tensor.shape) or tensor.shape[0] != batch_size:
        raise ModelLoadError(
            f"{source}: output {spec.name!r} has shape {list(tensor.shape)} for a batch of "
            f"{batch_size}; {SIGNATURE_FILE} declares {list(spec.shape)}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _fetch_from_s3(uri: str, cache_dir: Path) -> tuple[Path, str]:
    """Download ``signature.json`` and its artifact from S3; returns the local dir and the URI."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri.removeprefix(_S3_SCHEME).partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise ModelLoadError(f"{uri}: no bucket; expected s3://BUCKET/PREFIX")
    display = f"{_S3_SCHEME}{bucket}/{prefix}" if prefix else f"{_S3_SCHEME}{bucket}"
    # One directory per URI, named by its hash: keys may hold '..' or other path tricks.
    local_dir = cache_dir / hashlib.sha256(display.encode()).hexdigest()[:24]
    try:
        local_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(
            f"{display}: cannot create the cache directory {local_dir} ({exc})"
        ) from None
    client = boto3.client("s3")

    def download(name: str) -> None:
        key = f"{prefix}/{name}" if prefix else name
        shown = f"{display}/{name}"
        handle, partial = tempfile.mkstemp(dir=local_dir, prefix=f".{name}.")
        os.close(handle)
        try:
            client.download_file(bucket, key, partial)
            os.replace(partial, local_dir / name)
        except ClientError as exc:
            raise ModelLoadError(f"{shown}: {_describe_s3_error(exc)}") from None
        except BotoCoreError as exc:
            raise ModelLoadError(f"{shown}: cannot be fetched ({exc})") from None
        finally:
            Path(partial).unlink(missing_ok=True)

    download(SIGNATURE_FILE)
    signature = _read_signature(local_dir, display)
    cached = local_dir / signature.artifact
    if not (cached.is_file() and _sha256_matches(cached, signature.sha256)):
        download(signature.artifact)
    return local_dir, display


def _sha256_matches(path: Path, expected: str) -> bool:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest() == expected


def _describe_s3_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code in {"404", "NoSuchKey", "NotFound"}:
        return "not found (no such key)"
    if code == "NoSuchBucket":
        return "not found (no such bucket)"
    if code in {"403", "AccessDenied", "Forbidden"}:
        return "access denied (check the pod's IAM role allows s3:GetObject on it)"
    return f"S3 error {code or 'unknown'}: {error.get('Message', exc)}"
