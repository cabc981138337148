"""Lifecycle of a pull request's ephemeral stack ``pr-<n>`` through the Automation API.

    python -m tools.delivery ephemeral up --pr 123 [--ttl-hours 72]   # create or update
    python -m tools.delivery ephemeral down --pr 123                  # destroy + stack rm

``up`` writes the stack's config from the ``pr-*`` template, sets the expiry (config key
``expiresAt`` and stack tag ``expires-at``; every push moves it forward), runs ``pulumi up``
with the policy pack and prints the service URL. ``down`` destroys every resource and removes the
stack; a stack that does not exist is already torn down, which is not an error, so a PR closed
twice or never deployed is fine.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pulumi import automation as auto

from infra.config import PROJECT
from tools.delivery.expiry import (
    EXPIRY_CONFIG_KEY,
    EXPIRY_TAG,
    expiry_after,
    is_ephemeral_stack,
)
from tools.delivery.stacks import (
    POLICY_PACK,
    REPO_ROOT,
    OutputCallback,
    Pulumi,
    describe_error,
    output_text,
)

#: Stack output holding the service's URL (the program exports it on every stack).
SERVICE_URL_OUTPUT = "serviceUrl"
#: The template every ``pr-<n>`` stack's config file is written from.
TEMPLATE_CONFIG = REPO_ROOT / "stacks" / "Pulumi.pr-template.yaml"
DEFAULT_TTL = timedelta(hours=72)


class EphemeralStackError(Exception):
    """An ephemeral stack operation was refused or failed; the message says which and why."""


@dataclass(frozen=True)
class Deployed:
    """What ``up`` did: the stack, its new expiry and the service URL (if the program has one)."""

    stack: str
    expires_at: str
    service_url: str | None
    notes: tuple[str, ...] = ()
    reach: tuple[str, ...] = ()


def write_stack_config(template: Path, stack: str, config_dir: Path) -> Path:
    """Copy the ``pr-*`` template to ``Pulumi.<stack>.yaml`` (CI checkouts start without one).

    The template is the whole truth about a ``pr-<n>`` stack's settings, so the file is rewritten
    on every update; only the expiry is added to it afterwards.
    """
    if not is_ephemeral_stack(stack):
        raise EphemeralStackError(f"{stack!r} is not an ephemeral stack name (pr-<digits>)")
    stack = stack.rsplit("/", 1)[-1]
    if not template.is_file():
        raise EphemeralStackError(f"ephemeral stack template {template} does not exist")
    target = config_dir / f"Pulumi.{stack}.yaml"
    shutil.copyfile(template, target)
    return target


def deploy(
    pulumi: Pulumi,
    stack: str,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    template: Path = TEMPLATE_CONFIG,
    config_dir: Path = REPO_ROOT / "stacks",
    extra_config: Mapping[str, str] | None = None,
    on_output: OutputCallback = print,
) -> Deployed:
    """Create or update ``stack`` (a ``pr-<n>``), move its expiry to ``now + ttl``, run up.

    ``extra_config`` overrides template keys for this deployment, e.g. ``clusterStack`` (the
    fully qualified dev stack, which differs per Pulumi organisation or backend).
    """
    if not is_ephemeral_stack(stack):
        raise EphemeralStackError(f"refusing to deploy {stack!r}: not a pr-<digits> stack")
    try:
        expires_at = expiry_after(now, ttl)
    except ValueError as exc:
        raise EphemeralStackError(str(exc)) from exc
    write_stack_config(template, stack, config_dir)
    handle = pulumi.stacks.create_or_select(pulumi.qualified(stack), pulumi.workspace)
    for key, value in sorted((extra_config or {}).items()):
        handle.set_config(f"{PROJECT}:{key}", auto.ConfigValue(value=value))
    # The expiry goes into config (the program tags what the stack owns with it, and exports it
    # as an output) before anything is created, so even a failed first update can be swept.
    handle.set_config(f"{PROJECT}:{EXPIRY_CONFIG_KEY}", auto.ConfigValue(value=expires_at))
    notes: list[str] = []
    try:
        handle.set_tag(EXPIRY_TAG, expires_at)
    except auto.CommandError as exc:
        # Self-managed backends may not support stack tags; the output carries the expiry then.
        notes.append(f"stack tag {EXPIRY_TAG} not set ({describe_error(exc)}); output is used")
    result = handle.up(policy_packs=[str(POLICY_PACK)], color="never", on_output=on_output)
    return Deployed(
        stack=stack,
        expires_at=expires_at,
        service_url=output_text(result.outputs, SERVICE_URL_OUTPUT),
        notes=tuple(notes),
        reach=reach_commands(result.outputs),
    )


def reach_commands(outputs: Mapping[str, auto.OutputValue]) -> tuple[str, ...]:
    """The exact shell commands that reach the deployed service from a workstation.

    The service is ClusterIP (or an internal NLB) inside the shared cluster, so the way in is a
    kubeconfig for the cluster (``aws eks update-kubeconfig``), the stack's own
    ``portForwardCommand`` output, and a request to the readiness route of the runtime contract.
    Empty when the stack does not export what the commands need.
    """
    cluster, region = output_text(outputs, "clusterName"), output_text(outputs, "region")
    forward = output_text(outputs, "portForwardCommand")
    if not (cluster and region and forward):
        return ()
    port = forward.rsplit(" ", 1)[-1].split(":", 1)[0]
    return (
        f"aws eks update-kubeconfig --name {cluster} --region {region}",
        f"{forward} &",
        f"curl -s localhost:{port}/v2/health/ready",
    )


def destroy_and_remove(pulumi: Pulumi, stack: str, on_output: OutputCallback = print) -> bool:
    """Destroy every resource of ``stack`` and remove it; ``False`` if it did not exist.

    Refuses any name that is not ``pr-<digits>``: this is the one function that deletes, and a
    long-lived stack must not reach it through a caller's mistake.
    """
    if not is_ephemeral_stack(stack):
        raise EphemeralStackError(f"refusing to destroy {stack!r}: not a pr-<digits> stack")
    name = pulumi.qualified(stack)
    try:
        handle = pulumi.stacks.select(name, pulumi.workspace)
    except auto.StackNotFoundError:
        return False
    handle.destroy(color="never", on_output=on_output)
    # Removal after a successful destroy only: `stack rm` of a stack that still owns resources
    # would orphan them (Pulumi refuses it without --force, which is never passed).
    pulumi.workspace.remove_stack(name)
    return True


def format_deployed(deployed: Deployed) -> str:
    """The PR comment for a deployed ephemeral stack."""
    url = f"<{deployed.service_url}>" if deployed.service_url else "*(no service URL output)*"
    lines = [
        f"### Ephemeral stack `{deployed.stack}`",
        "",
        f"- Service URL: {url}",
        f"- Expires at: `{deployed.expires_at}` (every push moves it forward; the scheduled "
        "sweeper destroys the stack after that, closing the PR destroys it at once)",
    ]
    lines += [f"- Note: {note}" for note in deployed.notes]
    if deployed.reach:
        lines += ["", "Reach it from your machine:", "", "```sh", *deployed.reach, "```"]
    return "\n".join(lines) + "\n"


def format_failed(stack: str, error: str, run_url: str) -> str:
    """The PR comment for an ``up`` that failed: what failed, and where the full log is."""
    where = f" Full log: [this run]({run_url})." if run_url else ""
    return (
        f"### Ephemeral stack `{stack}`: **update failed**\n\n"
        f"```\n{error[:1500]}\n```\n\nThe job failed. Push a fix to try again, or close the PR "
        f"to destroy the stack (the sweeper does, too, once it expires).{where}\n"
    )
