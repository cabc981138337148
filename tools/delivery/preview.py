"""``pulumi preview --diff`` of a long-lived stack with the policy pack, as a PR comment or a plan.

    python -m tools.delivery preview --stack dev --out build/preview [--pr 12]
    python -m tools.delivery preview --stack prod --image REPO@sha256:... --refresh \\
        --save-plan build/plan/prod.json --out build/preview    # what prod's approver reads

Policy findings come from the engine's structured ``policyEvent`` events (the Automation API's
``on_event``), not from the text: each carries the policy, pack, enforcement level, resource URN
and message. With ``--save-plan`` the preview is saved as an update plan (``pulumi preview
--save-plan``); ``pulumi up --plan`` later applies exactly those operations and fails on any
deviation (https://www.pulumi.com/docs/iac/operations/stack-management/update-plans/).
``--refresh`` reads the real state first, so the plan starts from what exists, and ``--image``
sets the stack's image config (:data:`IMAGE_CONFIG_KEY`) to the digest being promoted, exactly as
the deploy step will, so the plan and the update see the same configuration.

Runs the preview through the Automation API (the CLI itself is installed by ``pulumi/actions``),
keeps the complete output in ``<out>/preview-<stack>.txt`` for the workflow to upload as an
artifact, and renders a comment that puts the summary first (status, change counts, policy
violations) and the diff after it, trimmed to GitHub's limit. Running the preview here rather
than reading the action's ``output`` keeps the full text in one process: step outputs reach the
next step as environment variables, which Linux caps at 128 KiB each.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pulumi import automation as auto

from tools.delivery.pr_comment import fit_detail
from tools.delivery.promotion import LONG_LIVED, POLICY_KEY, POLICY_NAME
from tools.delivery.stacks import POLICY_PACK, Pulumi, describe_error, output_text

LONG_LIVED_STACKS = LONG_LIVED
#: Stack config key holding the promoted image (``registry/repository@sha256:<digest>``); the
#: same key the deploy step sets (tools/delivery/deploy.py), so a saved plan matches the update.
IMAGE_CONFIG_KEY = "torch-eks-inference:imageRef"
#: The policy pack's promotion rule (policy/guardrails/promotion.py): prod may run only the
#: digest staging runs, which the pack reads from its policy config.
PROMOTION_POLICY = POLICY_NAME
#: Stack output with the image a long-lived stack runs now.
IMAGE_OUTPUT = "imageRef"
PROMOTION_CONFIG_KEY = POLICY_KEY
_IMAGE_REF = re.compile(r"[a-z0-9][a-z0-9.-]*(?::[0-9]+)?(?:/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}")


def check_image_ref(ref: str) -> str:
    """``ref`` if it names an image by digest (``registry/repo@sha256:<64 hex>``), else raise."""
    if not _IMAGE_REF.fullmatch(ref):
        raise ValueError(f"image {ref!r} is not REGISTRY/REPOSITORY@sha256:<64 hex digits>")
    return ref


def promotion_policy_config(image: str) -> dict[str, dict[str, str]]:
    """The ``--policy-pack-config`` that admits ``image``'s digest on prod.

    The workflow previews prod only with the image staging verified, so this is staging's digest;
    the deploy step checks it against staging's ``imageDigest`` output again before ``up``.
    """
    digest = check_image_ref(image).rpartition("@")[2]
    return {PROMOTION_POLICY: {PROMOTION_CONFIG_KEY: digest}}


@dataclass(frozen=True, order=True)
class PolicyFinding:
    """One policy violation as the engine reported it (a ``policyEvent``)."""

    level: str  # "mandatory", "advisory" or "remediate" (the engine's "warning" is advisory)
    policy: str
    resource: str
    message: str


_CHANGE_COLUMNS = ("create", "update", "replace", "delete", "same")


@dataclass(frozen=True)
class PreviewOutcome:
    """The full text of a preview, its change counts and whether it succeeded."""

    stack: str
    output: str
    change_summary: Mapping[str, int]
    error: str | None = None
    findings: tuple[PolicyFinding, ...] = field(default=())
    plan: Path | None = None

    @property
    def ok(self) -> bool:
        """True when the preview succeeded (no error, no mandatory policy violation)."""
        return self.error is None


def _finding(event: auto.EngineEvent) -> PolicyFinding | None:
    policy = event.policy_event
    if policy is None:
        return None
    level = "advisory" if policy.enforcement_level == "warning" else policy.enforcement_level
    resource = (policy.resource_urn or "").rsplit("::", 1)[-1] or "(stack)"
    return PolicyFinding(level, policy.policy_name, resource, policy.message.strip())


def run_preview(
    pulumi: Pulumi,
    stack: str,
    *,
    image: str | None = None,
    refresh: bool = False,
    save_plan: Path | None = None,
) -> PreviewOutcome:
    """Preview ``stack`` with ``--diff`` and the policy pack, capturing output and policy events."""
    if stack not in LONG_LIVED_STACKS:
        raise ValueError(f"preview comments are for {', '.join(LONG_LIVED_STACKS)}, not {stack!r}")
    lines: list[str] = []
    findings: list[PolicyFinding] = []

    def on_event(event: auto.EngineEvent) -> None:
        found = _finding(event)
        if found is not None:
            findings.append(found)

    handle = pulumi.stacks.select(pulumi.qualified(stack), pulumi.workspace)
    pack_configs: list[str] | None = None
    promoting = image is not None
    if image is None:
        # A pull request does not change the image: preview with the one the stack runs now
        # (its ``imageRef`` output; the CI checkout's stack file does not hold it).
        image = output_text(handle.outputs(), IMAGE_OUTPUT)
    if image is not None:
        handle.set_config(IMAGE_CONFIG_KEY, auto.ConfigValue(value=check_image_ref(image)))
    if promoting and image is not None and stack == "prod":
        config_file = Path(tempfile.mkdtemp(prefix="policy-config-")) / "policy-config.json"
        config_file.write_text(json.dumps(promotion_policy_config(image)), encoding="utf-8")
        pack_configs = [str(config_file)]
    if save_plan is not None:
        save_plan.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = handle.preview(
            policy_packs=[str(POLICY_PACK)],
            policy_pack_configs=pack_configs,
            diff=True,
            color="never",
            on_output=lines.append,
            on_event=on_event,
            refresh=refresh or None,
            plan=str(save_plan) if save_plan is not None else None,
        )
    except auto.CommandError as exc:
        # A mandatory policy violation fails the preview; its events still say which.
        return PreviewOutcome(
            stack, "\n".join(lines), {}, describe_error(exc), tuple(sorted(findings))
        )
    summary = {getattr(op, "value", str(op)): count for op, count in result.change_summary.items()}
    output = "\n".join(lines) or result.stdout
    return PreviewOutcome(stack, output, summary, None, tuple(sorted(findings)), save_plan)


def findings_block(findings: tuple[PolicyFinding, ...]) -> list[str]:
    """Markdown table of policy findings, mandatory first."""
    if not findings:
        return []
    rows = ["| level | policy | resource | finding |", "| --- | --- | --- | --- |"]
    for f in sorted(findings, key=lambda f: (f.level != "mandatory", f)):
        message = f.message.replace("|", "\\|").replace("\n", " ")[:300]
        rows.append(f"| {f.level} | `{f.policy}` | `{f.resource}` | {message} |")
    return ["Policy pack findings:", "", *rows, ""]


def render_preview_comment(outcome: PreviewOutcome, where_full: str) -> str:
    """Comment body: status and counts, policy violations, then the (trimmed) diff."""
    status = "succeeded" if outcome.ok else "**failed**"
    summary = [f"### `pulumi preview --diff` on `{outcome.stack}`: {status}", ""]
    if outcome.change_summary:
        counts = [str(outcome.change_summary.get(column, 0)) for column in _CHANGE_COLUMNS]
        summary += [
            "| " + " | ".join(_CHANGE_COLUMNS) + " |",
            "|" + " --- |" * len(_CHANGE_COLUMNS),
            "| " + " | ".join(counts) + " |",
            "",
        ]
    if outcome.error:
        summary += [f"Error: `{outcome.error.splitlines()[0][:300]}`", ""]
    summary += findings_block(outcome.findings)
    if outcome.plan is not None:
        summary += [f"Saved update plan: `{outcome.plan.name}` (applied as is after approval).", ""]
    head = "\n".join(summary) + "<details><summary>Diff</summary>\n\n```diff\n"
    tail = f"```\n\n</details>\n\n{where_full}\n"
    # A line of the diff that holds ``` would end the fence early; indent such lines.
    diff = "\n".join(
        f" {line}" if line.lstrip().startswith("```") else line
        for line in outcome.output.rstrip("\n").splitlines()
    )
    return head + fit_detail(head, diff + "\n", reserve=len(tail) + 100) + tail


def write_full_output(outcome: PreviewOutcome, out_dir: Path) -> Path:
    """Write the complete preview text where the workflow uploads artifacts from."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"preview-{outcome.stack}.txt"
    path.write_text(outcome.output + "\n", encoding="utf-8")
    return path
