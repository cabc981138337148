"""Render the Kubernetes objects a stack declares, validate them, and scan them with checkov.

    python -m infra.tools.manifests --stack dev [--out build/manifests/dev] [--no-checkov]

The Pulumi program runs under mocks (no cloud, no cluster); every ``kubernetes:*`` resource it
registers is turned back into the apiVersion/kind/metadata/spec document the provider would
send, with computed values (the image digest, the secret ARN) filled in by the mocks. The
documents are written as YAML, validated against the Kubernetes OpenAPI schemas of the stack's
cluster version (kubernetes-validate, strict: unknown fields are errors too), then scanned with
checkov. Exit status: 0 clean, 1 schema errors or unskipped checkov findings, 2 bad usage.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
#: checkov lives in its own virtualenv (its pins clash with the program's); see `make lint`.
DEFAULT_CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
#: Pulumi types of Kubernetes resources that are not API objects themselves.
_NOT_OBJECTS = re.compile(r"^(pulumi:providers:kubernetes|kubernetes:(helm|yaml|kustomize)\b)")
#: Checkov's annotation prefix for in-place skips (``checkov.io/skip1: CKV_K8S_x=reason``).
SKIP_ANNOTATION_PREFIX = "checkov.io/skip"


@dataclass(frozen=True)
class RecordedResource:
    """One resource registration seen by the mocks: Pulumi type, logical name and inputs."""

    type: str
    name: str
    inputs: Mapping[str, Any]


@dataclass(frozen=True)
class SchemaError:
    """A document that does not validate against the cluster version's OpenAPI schema."""

    document: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.document}: {self.path or '<root>'}: {self.message}"


@dataclass
class CheckovReport:
    """What checkov found: failed checks (unskipped) and skipped ones, with their reasons."""

    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _normalise(value: Any) -> Any:
    """Plain YAML-able data: protobuf numbers back to ints, ``None`` fields dropped."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def is_kubernetes_object(resource_type: str) -> bool:
    """True for Pulumi types that are one Kubernetes API object (``kubernetes:apps/v1:...``)."""
    return resource_type.startswith("kubernetes:") and not _NOT_OBJECTS.match(resource_type)


def to_document(resource: RecordedResource) -> dict[str, Any]:
    """The Kubernetes document for one recorded ``kubernetes:*`` resource.

    Raises ``ValueError`` when the inputs lack apiVersion, kind or metadata.name: the Pulumi SDK
    always sets the first two, and this program names every object explicitly.
    """
    inputs = _normalise(resource.inputs)
    missing = [key for key in ("apiVersion", "kind", "metadata") if key not in inputs]
    if missing or "name" not in inputs["metadata"]:
        raise ValueError(
            f"{resource.type} '{resource.name}' cannot be rendered: missing "
            f"{', '.join(missing) or 'metadata.name'} in its inputs"
        )
    head = {"apiVersion": inputs["apiVersion"], "kind": inputs["kind"]}
    head["metadata"] = inputs["metadata"]
    rest = {k: v for k, v in inputs.items() if k not in head}
    return {**head, **rest}


def documents(resources: Iterable[RecordedResource]) -> list[dict[str, Any]]:
    """Every Kubernetes object among ``resources``, in a stable order (namespaces first)."""
    docs = [to_document(r) for r in resources if is_kubernetes_object(r.type)]
    return sorted(
        docs,
        key=lambda d: (
            d["kind"] != "Namespace",
            d["metadata"].get("namespace", ""),
            d["kind"],
            d["metadata"]["name"],
        ),
    )


def document_id(doc: Mapping[str, Any]) -> str:
    """``<namespace>.<kind>.<name>`` (``_cluster`` for cluster-scoped objects), lowercase."""
    namespace = doc["metadata"].get("namespace", "_cluster")
    return f"{namespace}.{doc['kind']}.{doc['metadata']['name']}".lower()


def write_documents(docs: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    """Write one YAML file per document into ``out_dir``, replacing what an earlier run left."""
    if out_dir.exists():
        for old in out_dir.glob("*.yaml"):
            old.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in docs:
        path = out_dir / f"{document_id(doc)}.yaml"
        path.write_text(yaml.safe_dump(dict(doc), sort_keys=False), encoding="utf-8")
        paths.append(path)
    return paths


def schema_version(kubernetes_version: str) -> str:
    """The schema version kubernetes-validate uses for ``kubernetes_version`` (e.g. ``1.33``).

    It ships one schema set per minor version; an exact match is required so a newer cluster is
    never validated against older schemas without anyone noticing.
    """
    shipped = kubernetes_validate.utils.all_versions()
    wanted = re.sub(r"^v", "", kubernetes_version)
    for version in shipped:
        if kubernetes_validate.utils.major_minor(version) == wanted:
            return str(version)
    raise ValueError(
        f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for Kubernetes "
        f"{kubernetes_version}; it ships {', '.join(shipped)}"
    )


def validate_documents(
    docs: Sequence[Mapping[str, Any]], kubernetes_version: str
) -> list[SchemaError]:
    """Validate every document (strict: unknown fields fail too) against the cluster's schemas."""
    version = schema_version(kubernetes_version)
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(dict(doc), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            errors.append(SchemaError(document_id(doc), path, str(exc.message)))
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(SchemaError(document_id(doc), "", str(exc.message)))
    return errors


def run_checkov(out_dir: Path, checkov: Path = DEFAULT_CHECKOV) -> CheckovReport:
    """Scan ``out_dir`` with checkov's Kubernetes checks and collect failed and skipped checks."""
    if not checkov.exists():
        raise FileNotFoundError(
            f"checkov not found at {checkov}; create it with `python3 -m venv .venv-checkov && "
            ".venv-checkov/bin/pip install checkov==3.3.30` (or pass --no-checkov)"
        )
    completed = subprocess.run(  # noqa: S603 - fixed argv, our own scanner binary
        [
            str(checkov),
            "-d",
            str(out_dir),
            "--framework",
            "kubernetes",
            "-o",
            "json",
            # Offline: never fetch guidelines or policies from the vendor's platform.
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return parse_checkov_json(completed.stdout)


def parse_checkov_json(output: str) -> CheckovReport:
    """Turn checkov's ``-o json`` output (one report, a list of them, or an empty summary)."""
    output = output.strip()
    report = CheckovReport()
    if not output:
        return report
    data = json.loads(output)
    for run in data if isinstance(data, list) else [data]:
        if not isinstance(run, dict):
            continue
        results = run.get("results", {})
        report.passed += int(run.get("summary", {}).get("passed", 0))
        for check in results.get("failed_checks", []):
            report.failed.append(
                f"{check['check_id']} {check.get('check_name', '')} "
                f"[{check.get('resource', '')} in {Path(check.get('file_path', '')).name}]"
            )
        for check in results.get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            report.skipped.append(f"{check['check_id']} [{check.get('resource', '')}]: {reason}")
    return report
