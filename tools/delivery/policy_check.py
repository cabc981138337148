"""Run the CrossGuard pack on the program's mock inventory, offline, as the engine runs it.

    python -m tools.delivery policy-check                 # dev, staging, prod and a pr stack
    python -m tools.delivery policy-check --stack prod

The pack is started the way the Pulumi CLI starts it (``python -m pulumi.policy <engine>
policy/``, which serves the Analyzer gRPC interface on 127.0.0.1 and prints its port), and
every resource of ``tools.plan.collect(stack)`` is sent to ``Analyze`` with the inputs the
program declared: what the pack sees at ``pulumi preview``, without a cloud account or the CLI.
Exit code 1 when any mandatory policy is violated.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from tools.delivery.stacks import POLICY_PACK

DEFAULT_STACKS = ("dev", "staging", "prod", "pr-123")
_START_TIMEOUT_S = 60.0


class PolicyCheckError(Exception):
    """The policy pack could not be started or answered with an error."""


@dataclass(frozen=True, order=True)
class Finding:
    """One policy violation reported by the pack for one resource."""

    stack: str
    level: str
    policy: str
    resource_type: str
    name: str
    message: str

    @property
    def mandatory(self) -> bool:
        """Mandatory findings fail ``pulumi preview`` and ``pulumi up``."""
        return self.level == "mandatory"


@contextlib.contextmanager
def running_pack(pack_dir: Path = POLICY_PACK) -> Iterator[Any]:
    """Start the pack as the Pulumi CLI does and yield an Analyzer stub; stop it afterwards."""
    argv = [sys.executable, "-m", "pulumi.policy", "127.0.0.1:0", str(pack_dir)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            process.kill()
            _, err = process.communicate(timeout=_START_TIMEOUT_S)
            raise PolicyCheckError(f"policy pack {pack_dir} did not start:\n{err[-2000:]}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=_START_TIMEOUT_S)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def pack_policies(stub: Any) -> list[str]:
    """The policy names the running pack declares."""
    info = stub.GetAnalyzerInfo(empty_pb2.Empty())
    return [policy.name for policy in info.policies]


def _level(diagnostic: Any) -> str:
    return str(analyzer_pb2.EnforcementLevel.Name(diagnostic.enforcementLevel)).lower()


def analyze(stub: Any, stack: str, inventory: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Send every resource of a plan inventory to the pack; return what it reports."""
    findings = []
    for resource in inventory:
        properties = struct_pb2.Struct()
        properties.update(dict(resource["inputs"]))
        request = analyzer_pb2.AnalyzeRequest(
            type=resource["type"],
            properties=properties,
            urn=resource["urn"],
            name=resource["name"],
        )
        try:
            response = stub.Analyze(request)
        except grpc.RpcError as exc:
            raise PolicyCheckError(f"pack failed on {resource['urn']}: {exc}") from exc
        for diagnostic in response.diagnostics:
            # The runtime prefixes the policy's description; keep only the finding itself.
            message = diagnostic.message.split("\n", 1)[-1]
            findings.append(
                Finding(
                    stack,
                    _level(diagnostic),
                    diagnostic.policyName,
                    resource["type"],
                    resource["name"],
                    message,
                )
            )
    findings += _analyze_stack(stub, stack, inventory)
    return sorted(findings)


def _analyze_stack(stub: Any, stack: str, inventory: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Stack policies: the whole inventory in one AnalyzeStack call, as the CLI sends it."""
    resources = []
    for resource in inventory:
        properties = struct_pb2.Struct()
        properties.update(dict(resource["inputs"]))
        resources.append(
            analyzer_pb2.AnalyzerResource(
                type=resource["type"],
                properties=properties,
                urn=resource["urn"],
                name=resource["name"],
            )
        )
    try:
        response = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
    except grpc.RpcError as exc:
        raise PolicyCheckError(f"pack failed on stack {stack}: {exc}") from exc
    by_urn = {r["urn"]: r for r in inventory}
    findings = []
    for diagnostic in response.diagnostics:
        resource = by_urn.get(diagnostic.urn, {"type": "", "name": ""})
        findings.append(
            Finding(
                stack,
                _level(diagnostic),
                diagnostic.policyName,
                resource["type"],
                resource["name"],
                diagnostic.message.split("\n", 1)[-1],
            )
        )
    return findings


def format_findings(
    findings: Sequence[Finding], stacks: Sequence[str], counts: Mapping[str, int]
) -> str:
    """A readable report: one line per stack, then each finding."""
    lines = []
    for stack in stacks:
        mine = [f for f in findings if f.stack == stack]
        mandatory = sum(f.mandatory for f in mine)
        lines.append(
            f"{stack}: {counts.get(stack, 0)} resources, {mandatory} mandatory, "
            f"{len(mine) - mandatory} advisory findings"
        )
        lines += [f"  [{f.level}] {f.policy} {f.resource_type} {f.name}: {f.message}" for f in mine]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: exit 0 when no mandatory policy is violated on any stack."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.delivery policy-check",
        description="Run the policy pack on the program's mock inventory of each stack.",
    )
    parser.add_argument(
        "--stack", action="append", help=f"stack to check (repeatable; default {DEFAULT_STACKS})"
    )
    args = parser.parse_args(argv)
    stacks = tuple(args.stack or DEFAULT_STACKS)

    from tools.plan import PlanError, collect  # the program's modules, loaded on demand

    findings: list[Finding] = []
    counts: dict[str, int] = {}
    try:
        with running_pack() as stub:
            # Prod may run only staging's digest; offline, staging's mock plan says which.
            from tools.delivery.promotion import (
                configure_pack,
                offline_staging_digest,
                policy_config,
            )

            configure_pack(stub, policy_config(offline_staging_digest()))
            for stack in stacks:
                inventory = collect(stack)
                counts[stack] = len(inventory)
                findings += analyze(stub, stack, inventory)
    except (PolicyCheckError, PlanError) as exc:
        print(f"policy-check: {exc}", file=sys.stderr)
        return 2
    print(format_findings(findings, stacks, counts))
    return 1 if any(f.mandatory for f in findings) else 0
