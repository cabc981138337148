"""What ``pulumi up -s <stack>`` would declare, without a cloud account or the Pulumi CLI.

    python -m tools.plan --stack dev [--format table|json]
    python -m tools.plan --stack pr-123          # any pr-<n>: the pr template's config

The program (infra/__main__.py, the very file the CLI runs) is executed under ``tools.mocks``
with the config of ``stacks/Pulumi.<stack>.yaml``. For a pr-* stack the template supplies the
config and the stack it borrows (``clusterStack``) is run first, so its real outputs answer the
StackReference. Config values stored encrypted (``secure:``) cannot be read without the stack's
key and are replaced by a placeholder that is itself marked secret.

The JSON format is the interface other tools build on: a list sorted by (type, name, parent) of
``{"type", "name", "parent", "urn", "aliases", "component", "protect", "inputs"}``; every secret
value is masked as ``"[secret]"``; ``component`` is true for a ComponentResource (an entry in the
state, nothing in the cloud). ``urn`` is the engine's (every ancestor's type; see
``tools.aliases``), ``aliases`` are the old URNs the engine would match this resource
against (its own ``aliases`` option and those inherited from its parents, see ``tools.aliases``).
``collect(stack)`` returns the same list; ``run_program(stack)`` the raw registrations and stack
outputs. Runs are independent and can be repeated in one process.
"""

from __future__ import annotations

import argparse
import json
import re
import runpy
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pulumi
import yaml

from infra.config import PROJECT
from tools.aliases import AliasRecordingMonitor, alias_urns, engine_urns
from tools.mocks import ProgramMocks, Registration, runner
from tools.mocks.simulated_account import SimulatedAccount

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
PROGRAM: Final = REPO_ROOT / "infra" / "__main__.py"
STACKS_DIR: Final = REPO_ROOT / "stacks"
PR_TEMPLATE: Final = STACKS_DIR / "Pulumi.pr-template.yaml"
#: The pull request a bare ``--stack pr`` plans for.
SAMPLE_PR_STACK: Final = "pr-123"
#: A fixed expiry for planned pr stacks, so the inventory does not change with the clock.
SAMPLE_EXPIRES_AT: Final = "2030-01-01T00:00:00Z"
#: The image a long-lived stack runs when the plan is not told one (CI sets ``imageRef`` to the
#: digest it built; see tools/delivery/promotion.py). A fixed value keeps plans reproducible.
SAMPLE_IMAGE_REF: Final = (
    "123456789012.dkr.ecr.us-west-2.amazonaws.com/torch-eks-inference/dev@sha256:" + "0" * 64
)
#: Stands in for a ``secure:`` config value the plan cannot decrypt.
SECRET_PLACEHOLDER: Final = "plan-placeholder-secret-value-0000"  # noqa: S105 - not a secret
MASK: Final = "[secret]"
_PR_STACK = re.compile(r"^pr-[1-9]\d*$")


class PlanError(Exception):
    """The stack cannot be planned (no config file, unreadable YAML ...)."""


@dataclass(frozen=True)
class ProgramRun:
    """Everything one run of the program under mocks produced."""

    stack: str
    registrations: list[Registration]
    #: Stack outputs, resolved; secret ones are still wrapped (see ``secret_outputs``).
    outputs: dict[str, Any]
    secret_outputs: frozenset[str] = field(default_factory=frozenset)
    #: Per URN, the old URNs the resource answers to (own and inherited aliases, resolved).
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Per URN, the URN the engine gives (the mock monitor keeps only the parent's last type).
    engine_urns: Mapping[str, str] = field(default_factory=dict)


def config_file(stack: str) -> Path:
    """The stack file for ``stack``: Pulumi.<stack>.yaml, or the template for pr-* stacks."""
    own = STACKS_DIR / f"Pulumi.{stack}.yaml"
    if own.is_file():
        return own
    if _PR_STACK.match(stack):
        return PR_TEMPLATE
    available = sorted(p.name for p in STACKS_DIR.glob("Pulumi.*.yaml"))
    raise PlanError(f"no stack file {own.relative_to(REPO_ROOT)}; found: {', '.join(available)}")


def _as_config_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def read_stack_config(path: Path) -> tuple[dict[str, str], list[str]]:
    """(config, secret keys) from a stack file, keys namespaced like the engine passes them."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from exc
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: 'config' must be a mapping")
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[full] = SECRET_PLACEHOLDER
            secret_keys.append(full)
        else:
            values[full] = _as_config_string(value)
    return values, secret_keys


def run_program(
    stack: str,
    config: Mapping[str, str] | None = None,
    secret_keys: Sequence[str] = (),
    referenced: Mapping[str, ProgramRun] | None = None,
    program: Callable[[], None] | None = None,
    account: SimulatedAccount | None = None,
) -> ProgramRun:
    """Run infra/__main__.py for ``stack`` under mocks and return what it declared.

    ``config`` defaults to the stack's file; a pr-* stack gets a fixed sample expiry unless
    ``config`` names one, a long-lived stack gets ``SAMPLE_IMAGE_REF`` unless ``config`` names
    an ``imageRef``, and the stack it references is run first unless ``referenced`` has it.
    ``program`` replaces infra/__main__.py (tests run single components this way).
    ``account`` checks every creation against a simulated AWS account's state and rules (and
    records it there), so sequences of runs (up, destroy, up) behave as they would in AWS.
    Raises whatever the program raises (``ConfigError`` for bad config).
    """
    if config is None:
        file_values, file_secrets = read_stack_config(config_file(stack))
        config, secret_keys = file_values, [*file_secrets, *secret_keys]
    config = dict(config)
    if _PR_STACK.match(stack):
        config.setdefault(f"{PROJECT}:expiresAt", SAMPLE_EXPIRES_AT)
    elif config.get(f"{PROJECT}:environment", "") != "pr":
        config.setdefault(f"{PROJECT}:imageRef", SAMPLE_IMAGE_REF)
    referenced = dict(referenced or {})
    cluster_stack = config.get(f"{PROJECT}:clusterStack")
    if cluster_stack and cluster_stack not in referenced:
        base = cluster_stack.rsplit("/", 1)[-1]
        referenced[cluster_stack] = run_program(base)

    mocks = ProgramMocks(
        region=config.get("aws:region", "us-west-2"),
        stack_outputs={name: run.outputs for name, run in referenced.items()},
        secret_outputs={name: tuple(run.secret_outputs) for name, run in referenced.items()},
        account=account,
    )
    monitor = AliasRecordingMonitor(mocks)
    resolved, secret_names = runner.run(
        program or _run_main, monitor, stack, config, secret_keys, project=PROJECT
    )
    return ProgramRun(
        stack=stack,
        registrations=list(monitor.registrations),
        outputs=resolved,
        secret_outputs=frozenset(secret_names),
        aliases=alias_urns(monitor.registrations, monitor.alias_specs, PROJECT, stack),
        engine_urns=engine_urns(monitor.registrations),
    )


def _run_main() -> None:
    """infra/__main__.py, run the way the Pulumi language host runs it."""
    runpy.run_path(str(PROGRAM), run_name="__main__")


def mask_secrets(value: Any) -> Any:
    """A JSON-ready copy of ``value`` with every secret replaced by ``"[secret]"``."""
    if runner.is_secret(value):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    return str(value)


def inventory(run: ProgramRun) -> list[dict[str, Any]]:
    """The sorted, secret-masked resource list of one run (the plan tool's JSON)."""
    entries = [
        {
            "type": r.type,
            "name": r.name,
            "parent": r.parent_name,
            "urn": run.engine_urns.get(r.urn, r.urn),
            "aliases": list(run.aliases.get(r.urn, ())),
            "component": not r.custom,
            "protect": r.protect,
            "inputs": mask_secrets(dict(r.inputs)),
        }
        for r in run.registrations
    ]
    return sorted(entries, key=lambda e: (e["type"], e["name"], e["parent"] or ""))


def collect(stack: str) -> list[dict[str, Any]]:
    """The inventory of ``stack`` (see the module docstring for the format)."""
    return inventory(run_program(stack))


#: Inputs worth a column in the table, per resource type (everything else is in the JSON).
_KEY_INPUTS: Final[Mapping[str, Sequence[str]]] = {
    "aws:eks/cluster:Cluster": ("name", "version", "enabledClusterLogTypes", "deletionProtection"),
    "aws:eks/nodeGroup:NodeGroup": ("amiType", "capacityType", "instanceTypes", "scalingConfig"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("metadataOptions",),
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone"),
    "aws:ecr/repository:Repository": ("name", "imageTagMutability", "forceDelete"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:eks/addon:Addon": ("addonName", "addonVersion"),
    "kubernetes:helm.sh/v3:Release": ("chart", "version", "namespace"),
    "docker:index/image:Image": ("imageName",),
    "aws:secretsmanager/secret:Secret": ("name", "recoveryWindowInDays"),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": ("namespace", "serviceAccount"),
    "aws:autoscaling/tag:Tag": ("tag",),
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": ("spec",),
    "kubernetes:keda.sh/v1alpha1:ScaledObject": ("spec",),
    "aws:amp/workspaceConfiguration:WorkspaceConfiguration": ("retentionPeriodInDays",),
    "kubernetes:karpenter.sh/v1:NodePool": ("spec",),
}


def _summary(entry: Mapping[str, Any], width: int = 110) -> str:
    inputs = entry["inputs"]
    keys = _KEY_INPUTS.get(entry["type"])
    if keys is None and entry["type"].startswith("kubernetes:"):
        metadata = inputs.get("metadata") or {}
        return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}".strip("/")
    parts = []
    for key in keys or ():
        if key in inputs:
            value = inputs[key]
            if entry["type"] == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler":
                value = {"min": value.get("minReplicas"), "max": value.get("maxReplicas")}
            elif entry["type"] == "kubernetes:keda.sh/v1alpha1:ScaledObject":
                value = {
                    "min": value.get("minReplicaCount"),
                    "max": value.get("maxReplicaCount"),
                    "triggers": [t.get("name") or t.get("type") for t in value.get("triggers", [])],
                }
            elif entry["type"] == "kubernetes:karpenter.sh/v1:NodePool":
                value = {"limits": value.get("limits"), "disruption": value.get("disruption")}
            parts.append(f"{key}={json.dumps(value, separators=(',', ':'), sort_keys=True)}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 3] + "..."


def render_table(entries: Sequence[Mapping[str, Any]]) -> str:
    """A readable table: one line per resource with its type, name, parent and key inputs."""
    rows = [("TYPE", "NAME", "PARENT", "KEY INPUTS")]
    rows += [(e["type"], e["name"], e["parent"] or "-", _summary(e)) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + f"\n\n{len(entries)} resources\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0 ok, 1 program error, 2 usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.plan",
        description="Print what `pulumi up -s STACK` would declare, from the program run under "
        "mocks (no cloud account, no Pulumi CLI).",
    )
    parser.add_argument("--stack", required=True, help="dev, staging, prod or pr-<number>")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    stack = SAMPLE_PR_STACK if args.stack == "pr" else args.stack
    started = datetime.now(UTC)
    try:
        entries = collect(stack)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except pulumi.RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(entries, indent=2, sort_keys=True))
    else:
        seconds = (datetime.now(UTC) - started).total_seconds()
        print(
            f"Stack {stack}: what `pulumi up` would declare (program run under mocks, "
            f"{seconds:.1f} s)\n"
        )
        print(render_table(entries), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
