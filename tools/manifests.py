"""Render the Kubernetes objects a stack declares, validate them, and scan them with checkov.

    python -m tools.manifests --stack dev [--out build/manifests/dev] [--no-checkov]

The Pulumi program runs under mocks (no cloud, no cluster); every ``kubernetes:*`` resource it
registers is turned back into the apiVersion/kind/metadata/spec document the provider would
send, with computed values (the image digest, the secret ARN) filled in by the mocks. The
documents are written as YAML, validated against the Kubernetes OpenAPI schemas of the stack's
cluster version (kubernetes-validate, strict: unknown fields are errors too), then scanned with
checkov. Exit status: 0 clean, 1 schema errors or unskipped checkov findings, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import yaml

from tools import crd_check

if TYPE_CHECKING:
    from tools.plan import ProgramRun

REPO_ROOT = Path(__file__).resolve().parents[1]
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


@dataclass(frozen=True)
class CheckovFinding:
    """One checkov result: check id and name, the object (``Kind.namespace.name``), the file."""

    check_id: str
    check_name: str
    resource: str
    file: str
    #: Why it was skipped (the text after ``=`` in the ``checkov.io/skipN`` annotation).
    reason: str = ""

    def __str__(self) -> str:
        text = f"{self.check_id} {self.check_name} [{self.resource} in {Path(self.file).name}]"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass
class CheckovReport:
    """What checkov found: failed checks (unskipped) and skipped ones, with their reasons."""

    passed: int = 0
    failed: list[CheckovFinding] = field(default_factory=list)
    skipped: list[CheckovFinding] = field(default_factory=list)


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
        # Sorted keys: stable diffs between runs (apiVersion, kind, metadata, spec stay first).
        path.write_text(yaml.safe_dump(dict(doc), sort_keys=True), encoding="utf-8")
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
    """Validate every document (strict: unknown fields fail too) against the cluster's schemas.

    KEDA and Karpenter objects have no schema in kubernetes-validate; ``tools.crd_check``
    checks them from their documented fields instead.
    """
    version = schema_version(kubernetes_version)
    errors = [
        SchemaError(document_id(doc), *problem.split(": ", 1))
        for doc, problems in crd_check.check_documents(docs)
        for problem in problems
    ]
    for doc in docs:
        if crd_check.is_custom_resource(doc):
            continue
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
    completed = subprocess.run(
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
            report.failed.append(_finding(check))
        for check in results.get("skipped_checks", []):
            report.skipped.append(_finding(check))
    return report


def _finding(check: Mapping[str, Any]) -> CheckovFinding:
    return CheckovFinding(
        check_id=str(check["check_id"]),
        check_name=str(check.get("check_name", "")),
        resource=str(check.get("resource", "")),
        file=str(check.get("file_path", "")),
        reason=str((check.get("check_result") or {}).get("suppress_comment", "")),
    )


def program_resources(
    stack: str, run: ProgramRun | None = None
) -> tuple[list[RecordedResource], str]:
    """The resources ``stack`` declares (secrets masked) and its cluster's Kubernetes version.

    Runs the program under mocks unless ``run`` (a plan tool run of that stack) is given.
    Long-lived stacks declare the EKS cluster, so its ``version`` input is authoritative; a pr-*
    stack borrows the cluster of ``clusterStack``, whose stack file says the version.
    """
    from infra.config import COMMON_DEFAULTS, PROJECT
    from tools import plan

    if run is None:
        run = plan.run_program(stack)
    resources = [
        RecordedResource(entry["type"], entry["name"], entry["inputs"])
        for entry in plan.inventory(run)
    ]
    versions = {str(r.inputs["version"]) for r in resources if r.type == "aws:eks/cluster:Cluster"}
    if len(versions) > 1:
        raise ValueError(f"stack {stack} declares clusters of several versions: {versions}")
    if versions:
        return resources, versions.pop()
    raw, _ = plan.read_stack_config(plan.config_file(stack))
    cluster_stack = raw.get(f"{PROJECT}:clusterStack", "").rsplit("/", 1)[-1] or stack
    cluster_raw, _ = plan.read_stack_config(plan.config_file(cluster_stack))
    version = (
        cluster_raw.get(f"{PROJECT}:kubernetesVersion") or COMMON_DEFAULTS["kubernetesVersion"]
    )
    return resources, str(version)


def overridden_run(stack: str, overrides: Sequence[str]) -> ProgramRun:
    """The program run for ``stack`` with some of its config keys changed (``KEY=VALUE``)."""
    from infra.config import PROJECT
    from tools import plan

    values, secret_keys = plan.read_stack_config(plan.config_file(stack))
    values = dict(values)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE (KEY= removes the key)")
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value:
            values[full] = value
        else:
            values.pop(full, None)
    return plan.run_program(stack, config=values, secret_keys=secret_keys)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.manifests",
        description="Render, schema-validate and checkov-scan the Kubernetes objects of a stack.",
    )
    parser.add_argument("--stack", required=True, help="dev, staging, prod or pr-<n>")
    parser.add_argument("--out", type=Path, help="output folder (default build/manifests/STACK)")
    parser.add_argument(
        "--no-checkov", action="store_true", help="skip the checkov scan (schemas only)"
    )
    parser.add_argument("--checkov", type=Path, default=DEFAULT_CHECKOV, help=argparse.SUPPRESS)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key of the stack file for this render (KEY= removes it), e.g. "
        "--set nodeProvisioner=karpenter --set gpuNodeMin=",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out or REPO_ROOT / "build" / "manifests" / args.stack

    try:
        run = overridden_run(args.stack, args.set) if args.set else None
        resources, kubernetes_version = program_resources(args.stack, run)
        docs = documents(resources)
        version = schema_version(kubernetes_version)
    except Exception as exc:  # the program or its config refused the stack: say why, exit 2
        print(f"manifests: {args.stack}: {exc}", file=sys.stderr)
        return 2
    paths = write_documents(docs, out_dir)
    print(f"{len(paths)} Kubernetes objects of stack {args.stack} written to {out_dir}")

    failed = False
    errors = validate_documents(docs, kubernetes_version)
    for error in errors:
        print(f"SCHEMA ERROR {error}")
    print(
        f"schema (kubernetes-validate {kubernetes_validate.__version__}, strict, Kubernetes "
        f"{kubernetes_version} schemas v{version}): "
        f"{len(docs) - len({e.document for e in errors})}/{len(docs)} valid; "
        f"{sum(map(crd_check.is_custom_resource, docs))} of them KEDA/Karpenter objects, checked "
        "from their documented fields (tools/crd_check.py)"
    )
    failed |= bool(errors)

    if args.no_checkov:
        print("checkov: skipped (--no-checkov)")
    else:
        report = run_checkov(out_dir, args.checkov)
        for finding in report.failed:
            print(f"CHECKOV FAILED {finding}")
        for skipped in report.skipped:
            print(f"checkov skipped {skipped}")
        print(
            f"checkov: {report.passed} passed, {len(report.failed)} failed, "
            f"{len(report.skipped)} skipped (each skip annotated in place with its reason)"
        )
        failed |= bool(report.failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
