"""Deploy one image by digest to a long-lived stack, smoke-test it, and roll back on failure.

    python -m tools.delivery.deploy --stack STACK --image REGISTRY/REPO@sha256:DIGEST \\
        [--plan FILE] [--summary FILE]

1. prod only: staging's ``imageDigest`` output must equal the image's digest, else nothing is
   touched; the policy pack is told staging's digest (``--policy-pack-config``) and refuses
   anything else on its own as well.
2. ``pulumi up`` through the Automation API with config ``imageRef`` = the image and the policy
   pack; with ``--plan`` exactly that saved plan is applied (the engine fails the update at the
   first step that differs from the plan, so a stack that moved since the approval fails).
3. The smoke test (tools/delivery/smoke.py) against the deployed service through a
   ``kubectl port-forward``: readiness, held-out accuracy >= the packaging gate, p99 under a
   short bounded load <= the stack's ``smokeP99Ms``.
4. On a failed ``up`` or smoke test, the image the stack ran before (its ``imageRef`` output) is
   deployed again and smoke-tested, and the command exits 1.

A Markdown report is appended to ``--summary`` (default ``$GITHUB_STEP_SUMMARY``). On success
the last line printed is ``verified-image=<ref>``, the digest the next stage may take.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pulumi import automation as auto

from infra.config import PROJECT, ConfigError, load_stack_config
from tools.delivery.promotion import (
    PromotionError,
    digest_of,
    policy_config,
    write_policy_config,
)
from tools.delivery.smoke import SmokeReport, SmokeSettings, packaging_gate, run_smoke
from tools.delivery.stacks import POLICY_PACK, describe_error, output_text

IMAGE_REF_KEY = f"{PROJECT}:imageRef"
PROD_STACKS = frozenset({"prod"})
PROMOTED_FROM = "staging"


class DeployStack(Protocol):
    """The methods of ``pulumi.automation.Stack`` deploying uses."""

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None: ...

    def outputs(self) -> Mapping[str, auto.OutputValue]: ...

    def up(
        self,
        *,
        policy_packs: list[str] | None = None,
        policy_pack_configs: list[str] | None = None,
        plan: str | None = None,
        color: str | None = None,
        on_output: Callable[[str], Any] | None = None,
    ) -> Any: ...


@dataclass(frozen=True)
class Target:
    """Where the deployed service answers, and its API key (never printed)."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)


#: Opens a stack by its short name (dev, staging, prod).
StackOpener = Callable[[str], DeployStack]
#: Reaches the deployed service from the stack's outputs (a port-forward in CI).
EndpointOpener = Callable[[Mapping[str, auto.OutputValue]], AbstractContextManager[Target]]


@dataclass(frozen=True)
class Deps:
    """What deploying talks to; tests replace the stacks and the endpoint."""

    open_stack: StackOpener
    open_endpoint: EndpointOpener
    out: Callable[[str], Any] = print


@dataclass
class Attempt:
    """One ``up`` of one image and its smoke test."""

    image: str
    error: str | None = None
    report: SmokeReport | None = None

    @property
    def passed(self) -> bool:
        """The update succeeded and the smoke test passed."""
        return self.error is None and self.report is not None and self.report.passed


@dataclass
class Outcome:
    """What a deploy did: the attempt, the rollback (if any) and the exit code."""

    stack: str
    attempt: Attempt
    settings: SmokeSettings
    previous: str | None = None
    rollback: Attempt | None = None
    refused: str | None = None

    @property
    def exit_code(self) -> int:
        """0 only when the new image was deployed and verified."""
        return 0 if self.refused is None and self.attempt.passed else 1


def smoke_settings(stack: str, api_key: str | None = None) -> SmokeSettings:
    """The stack's smoke SLO (config ``smokeP99Ms`` in stacks/Pulumi.<stack>.yaml)."""
    from tools.plan import config_file, read_stack_config

    raw, secret_keys = read_stack_config(config_file(stack))
    cfg = load_stack_config(stack, raw, secret_keys=frozenset(secret_keys))
    return SmokeSettings(
        p99_slo_ms=float(cfg.smoke_p99_ms), min_accuracy=packaging_gate(), api_key=api_key
    )


def _up(
    stack: DeployStack,
    image: str,
    deps: Deps,
    policy: Mapping[str, Mapping[str, str]] | None,
    plan: Path | None,
) -> str | None:
    """``pulumi up`` of ``image``; the error line when it fails."""
    stack.set_config(IMAGE_REF_KEY, auto.ConfigValue(image))
    with tempfile.TemporaryDirectory(prefix="deploy-") as scratch:
        configs = None
        if policy is not None:
            configs = [str(write_policy_config(Path(scratch) / "policy-config.json", policy))]
        try:
            stack.up(
                policy_packs=[str(POLICY_PACK)],
                policy_pack_configs=configs,
                plan=None if plan is None else str(plan),
                color="never",
                on_output=deps.out,
            )
        except auto.CommandError as exc:
            return describe_error(exc)
    return None


def _attempt(
    stack: DeployStack,
    image: str,
    deps: Deps,
    settings: SmokeSettings,
    policy: Mapping[str, Mapping[str, str]] | None,
    plan: Path | None = None,
) -> Attempt:
    attempt = Attempt(image, error=_up(stack, image, deps, policy, plan))
    if attempt.error is not None:
        return attempt
    try:
        with deps.open_endpoint(stack.outputs()) as target:
            attempt.report = run_smoke(
                target.base_url, SmokeSettings(**{**settings.__dict__, "api_key": target.api_key})
            )
    except (OSError, RuntimeError, ValueError) as exc:
        attempt.error = f"could not reach the deployed service: {exc}"
    return attempt


def _staging_digest(deps: Deps) -> str | None:
    return output_text(deps.open_stack(PROMOTED_FROM).outputs(), "imageDigest")


def deploy(
    stack_name: str, image: str, deps: Deps, settings: SmokeSettings, plan: Path | None = None
) -> Outcome:
    """Deploy ``image`` to ``stack_name``, verify it, roll back when it fails (see module doc)."""
    digest = digest_of(image)
    stack = deps.open_stack(stack_name)
    previous = output_text(stack.outputs(), "imageRef")
    outcome = Outcome(stack_name, Attempt(image), settings, previous=previous)
    policy = None
    if stack_name in PROD_STACKS:
        staging = _staging_digest(deps)
        if staging != digest:
            outcome.refused = (
                f"{digest} is not the digest {PROMOTED_FROM} runs ({staging or 'none'}); "
                "prod only takes the image staging verified"
            )
            return outcome
        policy = policy_config(staging)
    outcome.attempt = _attempt(stack, image, deps, settings, policy, plan)
    if outcome.attempt.passed:
        return outcome
    if previous is None or previous == image:
        return outcome
    rollback_policy = None
    if policy is not None:
        rollback_policy = policy_config(digest, rollback_digest=digest_of(previous))
    outcome.rollback = _attempt(stack, previous, deps, settings, rollback_policy)
    return outcome


def render_summary(outcome: Outcome) -> str:
    """The Markdown report of a deploy, for the job summary or a PR comment."""
    a = outcome.attempt
    title = f"### Deploy `{outcome.stack}`: `{a.image}`"
    if outcome.refused is not None:
        return f"{title}\n\n**Refused:** {outcome.refused}\n"
    verdict = "verified" if a.passed else "**failed**"
    lines = [title, "", f"Result: {verdict}"]
    lines += _attempt_lines(a, outcome.settings)
    if not a.passed:
        if outcome.rollback is None:
            lines += ["", "No previous image to roll back to; the stack keeps the failed one."]
        else:
            r = outcome.rollback
            state = "verified" if r.passed else "**failed too**"
            lines += ["", f"#### Rolled back to `{r.image}`: {state}"]
            lines += _attempt_lines(r, outcome.settings)
    return "\n".join(lines) + "\n"


def _attempt_lines(attempt: Attempt, settings: SmokeSettings) -> list[str]:
    lines = []
    if attempt.error is not None:
        lines += ["", f"`pulumi up` or the port-forward failed: {attempt.error}"]
    if attempt.report is not None:
        lines += ["", attempt.report.markdown(settings).rstrip("\n")]
    return lines


def append_summary(path: Path | None, markdown: str) -> None:
    """Append to ``path``, or to ``$GITHUB_STEP_SUMMARY`` when no path is given and it is set."""
    default = os.environ.get("GITHUB_STEP_SUMMARY")
    target = path or (Path(default) if default else None)
    if target is not None:
        with target.open("a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")


def run(argv: Sequence[str] | None, deps: Deps, settings: SmokeSettings | None = None) -> int:
    """Parse arguments, deploy, write the summary; the exit code (0 ok, 1 failed, 2 usage)."""
    args = _parse(argv)
    try:
        digest_of(args.image)
        settings = settings or smoke_settings(args.stack)
    except (PromotionError, ConfigError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    if args.plan is not None and not args.plan.is_file():
        print(f"deploy: plan file {args.plan} does not exist", file=sys.stderr)
        return 2
    outcome = deploy(args.stack, args.image, deps, settings, plan=args.plan)
    markdown = render_summary(outcome)
    append_summary(args.summary, markdown)
    deps.out(markdown)
    if outcome.exit_code == 0:
        deps.out(f"verified-image={args.image}")
    return outcome.exit_code


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.delivery.deploy",
        description="pulumi up one image by digest, smoke-test it, roll back on failure.",
    )
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "prod"))
    parser.add_argument("--image", required=True, help="REGISTRY/REPO@sha256:<64 hex>")
    parser.add_argument("--plan", type=Path, help="apply exactly this saved plan (prod)")
    parser.add_argument("--summary", type=Path, help="append the report here")
    return parser.parse_args(argv)


def forward_command(
    outputs: Mapping[str, auto.OutputValue], kubeconfig: Path, port: int
) -> list[str]:
    """The stack's ``portForwardCommand`` with our kubeconfig, loopback address and local port."""
    text = output_text(outputs, "portForwardCommand")
    command = shlex.split(text or "")
    if len(command) < 4 or command[0] != "kubectl" or "port-forward" not in command:
        raise ValueError(f"stack output portForwardCommand is not a kubectl port-forward: {text!r}")
    remote = command[-1].rpartition(":")[2]
    return [
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        *command[1:-1],
        "--address",
        "127.0.0.1",
        f"{port}:{remote}",
    ]


def _api_key(outputs: Mapping[str, auto.OutputValue]) -> str | None:  # pragma: no cover - AWS
    arn = output_text(outputs, "secretArn")
    if arn is None:
        return None
    import boto3

    client = boto3.client("secretsmanager", region_name=output_text(outputs, "region"))
    return str(client.get_secret_value(SecretId=arn)["SecretString"])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kubectl port-forward exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"kubectl port-forward did not listen on {port} within {timeout:.0f} s")


@contextlib.contextmanager
def port_forward(outputs: Mapping[str, auto.OutputValue]) -> Iterator[Target]:  # pragma: no cover
    """``kubectl port-forward`` to the stack's Service with its kubeconfig (a 0600 temp file)."""
    kubeconfig = outputs.get("kubeconfig")
    if kubeconfig is None:
        raise ValueError("the stack has no kubeconfig output")
    with tempfile.TemporaryDirectory(prefix="deploy-kube-") as scratch:
        path = Path(scratch) / "kubeconfig"
        path.touch(mode=0o600)
        path.write_text(str(kubeconfig.value), encoding="utf-8")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        process = subprocess.Popen(
            forward_command(outputs, path, port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, process, timeout=60)
            yield Target(f"http://127.0.0.1:{port}", api_key=_api_key(outputs))
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - needs the Pulumi CLI
    """The real thing: the Automation API on this repository and a kubectl port-forward."""
    from tools.delivery.stacks import local_workspace

    pulumi = local_workspace()
    if "--plan" in (sys.argv[1:] if argv is None else argv):
        os.environ.setdefault("PULUMI_EXPERIMENTAL", "true")  # update plans are experimental

    def open_stack(name: str) -> DeployStack:
        workspace: Any = pulumi.workspace  # a LocalWorkspace (stacks.local_workspace)
        return auto.Stack.select(pulumi.qualified(name), workspace)

    return run(argv, Deps(open_stack=open_stack, open_endpoint=port_forward))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
