"""The slice of the Pulumi Automation API that delivery uses, as protocols, plus the real one.

Delivery code takes a :class:`Workspace` and a :class:`StackApi` as arguments instead of calling
``pulumi.automation`` directly, so tests inject fakes that record calls (the Pulumi CLI, which
the Automation API drives, is not available everywhere). :func:`local_workspace` builds the real
pair for the repository: ``LocalWorkspace`` on the project root plus ``pulumi.automation.Stack``.

Backend selection is Pulumi's own: ``PULUMI_ACCESS_TOKEN`` for Pulumi Cloud, or
``PULUMI_BACKEND_URL=s3://bucket?region=...`` for a self-managed S3 backend. ``PULUMI_ORG``, when
set, qualifies stack names (``org/pr-12``) for Pulumi Cloud organisations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pulumi import automation as auto

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The policy pack folder, given to every preview and update.
POLICY_PACK = REPO_ROOT / "policy"

OutputCallback = Callable[[str], Any]


class StackLike(Protocol):
    """The methods of ``pulumi.automation.Stack`` delivery calls."""

    @property
    def name(self) -> str: ...

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None: ...

    def set_tag(self, key: str, value: str) -> None: ...

    def get_tag(self, key: str) -> str: ...

    def outputs(self) -> Mapping[str, auto.OutputValue]: ...

    def up(
        self,
        *,
        policy_packs: list[str] | None = None,
        color: str | None = None,
        on_output: OutputCallback | None = None,
    ) -> auto.UpResult: ...

    def preview(
        self,
        *,
        policy_packs: list[str] | None = None,
        policy_pack_configs: list[str] | None = None,
        diff: bool | None = None,
        color: str | None = None,
        on_output: OutputCallback | None = None,
        on_event: Callable[[auto.EngineEvent], Any] | None = None,
        refresh: bool | None = None,
        plan: str | None = None,
    ) -> auto.PreviewResult: ...

    def destroy(
        self, *, color: str | None = None, on_output: OutputCallback | None = None
    ) -> auto.DestroyResult: ...


class Workspace(Protocol):
    """The methods of ``pulumi.automation.LocalWorkspace`` delivery calls."""

    def list_stacks(self, include_all: bool | None = None) -> Sequence[auto.StackSummary]: ...

    def remove_stack(
        self, stack_name: str, force: bool | None = None, preserve_config: bool | None = None
    ) -> None: ...


class StackApi(Protocol):
    """How stacks are opened: ``pulumi.automation.Stack``'s class methods."""

    def create_or_select(self, stack_name: str, workspace: Any) -> StackLike: ...

    def select(self, stack_name: str, workspace: Any) -> StackLike: ...


@dataclass(frozen=True)
class Pulumi:
    """A workspace and the way to open its stacks: everything delivery needs from Pulumi."""

    workspace: Workspace
    stacks: StackApi

    def qualified(self, stack: str) -> str:
        """``org/stack`` when ``PULUMI_ORG`` is set (Pulumi Cloud organisations), else ``stack``."""
        org = os.environ.get("PULUMI_ORG", "").strip()
        return f"{org}/{stack}" if org and "/" not in stack else stack


class _AutomationStacks:
    """``StackApi`` over ``pulumi.automation.Stack`` (its class methods are the API)."""

    def create_or_select(self, stack_name: str, workspace: Any) -> StackLike:
        return auto.Stack.create_or_select(stack_name, workspace)

    def select(self, stack_name: str, workspace: Any) -> StackLike:
        return auto.Stack.select(stack_name, workspace)


def local_workspace(work_dir: Path = REPO_ROOT) -> Pulumi:  # pragma: no cover - needs the CLI
    """The real Automation API on the project in ``work_dir`` (needs the Pulumi CLI on PATH)."""
    workspace = auto.LocalWorkspace(work_dir=str(work_dir))
    return Pulumi(workspace=workspace, stacks=_AutomationStacks())


def output_text(outputs: Mapping[str, auto.OutputValue], key: str) -> str | None:
    """A stack output as text, ``None`` when absent, empty or secret (never printed)."""
    output = outputs.get(key)
    if output is None or output.secret or output.value in (None, ""):
        return None
    return str(output.value)


def describe_error(exc: BaseException) -> str:
    """One line for a failed Pulumi command: its first ``error:`` line, else its last line.

    ``CommandError`` text is ``code: N / stdout: ... / stderr: ...``; the useful part is the
    CLI's ``error:`` line, which never holds secret values (Pulumi masks them in diagnostics).
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:
            return line[line.index("error:") :][:300]
    return lines[-1][:300] if lines else type(exc).__name__
