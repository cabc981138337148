"""The vocabulary of ``make preflight``: one finding per check, and the table that prints them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

#: (AWS service name, region) -> a boto3 client. Tests point it at moto; the CLI uses boto3.
ClientFactory = Callable[[str, str], Any]


class Status(StrEnum):
    """How a check came out: fine, worth knowing, or a reason the first ``pulumi up`` fails."""

    OK = "ok"
    WARN = "warn"
    BLOCKER = "blocker"


@dataclass(frozen=True)
class Finding:
    """One row of the preflight table."""

    check: str
    status: Status
    detail: str
    fix: str = ""


def boto3_clients(service: str, region: str) -> Any:
    """A boto3 client with the caller's ordinary credential chain (and AWS_ENDPOINT_URL, if set)."""
    import boto3

    return boto3.client(service, region_name=region)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


#: Column widths of the table (check, status, detail, fix); long cells wrap inside their column.
_WIDTHS: Final = (23, 7, 56, 56)


def render_table(findings: Sequence[Finding]) -> str:
    """The findings as one plain-text table, followed by a one-line verdict."""
    header = ("CHECK", "STATUS", "DETAIL", "FIX")
    rows = [header, *((f.check, f.status.value, f.detail, f.fix or "-") for f in findings)]
    rule = "  ".join("-" * width for width in _WIDTHS)
    lines: list[str] = []
    for index, row in enumerate(rows):
        # Never split a word or a --flag: a fix must stay copy-pasteable.
        cells = [
            textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]
            for text, width in zip(row, _WIDTHS, strict=True)
        ]
        for line_no in range(max(len(cell) for cell in cells)):
            parts = [
                (cell[line_no] if line_no < len(cell) else "").ljust(width)
                for cell, width in zip(cells, _WIDTHS, strict=True)
            ]
            lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append(rule)
    counts = {status: sum(f.status is status for f in findings) for status in Status}
    verdict = (
        f"{counts[Status.BLOCKER]} blocker(s), {counts[Status.WARN]} warning(s), "
        f"{counts[Status.OK]} ok: "
        + (
            "fix the blockers before the first `pulumi up`"
            if counts[Status.BLOCKER]
            else "nothing blocks the first `pulumi up`"
        )
    )
    return "\n".join(lines) + "\n\n" + verdict + "\n"
