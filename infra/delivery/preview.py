"""``pulumi preview --diff`` of a long-lived stack with the policy pack, as a PR comment.

    python -m infra.delivery preview --stack dev --out build/preview [--pr 12]

Runs the preview through the Automation API (the CLI itself is installed by ``pulumi/actions``),
keeps the complete output in ``<out>/preview-<stack>.txt`` for the workflow to upload as an
artifact, and renders a comment that puts the summary first (status, change counts, policy
violations) and the diff after it, trimmed to GitHub's limit. Running the preview here rather
than reading the action's ``output`` keeps the full text in one process: step outputs reach the
next step as environment variables, which Linux caps at 128 KiB each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

from infra.delivery.pr_comment import fit_detail
from infra.delivery.stacks import POLICY_PACK, Pulumi, describe_error

LONG_LIVED_STACKS = ("dev", "staging", "prod")
_CHANGE_COLUMNS = ("create", "update", "replace", "delete", "same")


@dataclass(frozen=True)
class PreviewOutcome:
    """The full text of a preview, its change counts and whether it succeeded."""

    stack: str
    output: str
    change_summary: Mapping[str, int]
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the preview succeeded (no error, no mandatory policy violation)."""
        return self.error is None


def run_preview(pulumi: Pulumi, stack: str) -> PreviewOutcome:
    """Preview ``stack`` with ``--diff`` and the policy pack, capturing every output line."""
    if stack not in LONG_LIVED_STACKS:
        raise ValueError(f"preview comments are for {', '.join(LONG_LIVED_STACKS)}, not {stack!r}")
    lines: list[str] = []
    handle = pulumi.stacks.select(pulumi.qualified(stack), pulumi.workspace)
    try:
        result = handle.preview(
            policy_packs=[str(POLICY_PACK)], diff=True, color="never", on_output=lines.append
        )
    except auto.CommandError as exc:
        # A mandatory policy violation fails the preview; its output still says why.
        return PreviewOutcome(stack, "\n".join(lines), {}, error=describe_error(exc))
    summary = {getattr(op, "value", str(op)): count for op, count in result.change_summary.items()}
    return PreviewOutcome(stack, "\n".join(lines) or result.stdout, summary)


def policy_section(output: str) -> list[str]:
    """The lines of the ``Policies:`` block of a preview's output (violations), if any."""
    lines = output.splitlines()
    for start, line in enumerate(lines):
        if line.strip() == "Policies:":
            block = []
            for following in lines[start + 1 :]:
                if following and not following.startswith(" "):
                    break
                block.append(following)
            return [line for line in block if line.strip()]
    return []


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
    violations = policy_section(outcome.output)
    if violations:
        summary += ["Policy pack findings:", "", "```", *violations, "```", ""]
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
