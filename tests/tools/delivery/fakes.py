"""An in-memory stand-in for the Pulumi Automation API, recording every call made to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from tools.delivery.stacks import Pulumi


def command_error(stderr: str, cls: type[auto.CommandError] = auto.CommandError) -> Exception:
    return cls(CommandResult("", stderr, 255))


@dataclass
class FakeBackend:
    """Stacks as the backend holds them: tags, outputs, config, and whether an update runs."""

    stacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    tags_supported: bool = True
    fail_destroy: set[str] = field(default_factory=set)
    fail_preview: str | None = None
    up_outputs: dict[str, auto.OutputValue] = field(default_factory=dict)
    preview_lines: list[str] = field(default_factory=list)
    #: called with each recorded call before it happens (a concurrent actor's move)
    hook: Callable[[tuple[str, ...]], None] | None = None
    #: canonical form of a stack name (e.g. org/project/stack); identity by default
    canonical: Callable[[str], str] = lambda name: name
    #: policyEvent payloads (engine JSON) the preview emits through on_event
    policy_events: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        name: str,
        *,
        tag: str | None = None,
        output: str | None = None,
        busy: bool = False,
    ) -> None:
        outputs = {} if output is None else {"expiresAt": auto.OutputValue(output, False)}
        tags = {} if tag is None else {"expires-at": tag}
        self.stacks[name] = {"tags": tags, "outputs": outputs, "config": {}, "busy": busy}

    def record(self, *call: str) -> None:
        if self.hook is not None:
            self.hook(call)
        self.calls.append(call)

    def pulumi(self) -> Pulumi:
        return Pulumi(workspace=FakeWorkspace(self), stacks=FakeStackApi(self))


class FakeStack:
    def __init__(self, backend: FakeBackend, name: str) -> None:
        self.backend, self._name = backend, name
        self._key = backend.canonical(name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def _state(self) -> dict[str, Any]:
        return self.backend.stacks[self._key]

    def _record(self, *call: str) -> None:
        self.backend.record(call[0], self._name, *call[1:])
        if self._key not in self.backend.stacks:
            raise command_error(
                f"error: no stack named '{self._name}' found", auto.StackNotFoundError
            )

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        self._record("set_config", key, value.value)
        self._state["config"][key] = value.value

    def set_tag(self, key: str, value: str) -> None:
        self._record("set_tag", key, value)
        if not self.backend.tags_supported:
            raise command_error("error: stack tags are not supported by this backend")
        self._state["tags"][key] = value

    def get_tag(self, key: str) -> str:
        self._record("get_tag", key)
        if not self.backend.tags_supported or key not in self._state["tags"]:
            raise command_error(f"error: stack tag {key!r} not found")
        return str(self._state["tags"][key])

    def outputs(self) -> dict[str, auto.OutputValue]:
        self._record("outputs")
        return dict(self._state["outputs"])

    def up(self, **kwargs: Any) -> Any:
        self._record("up", *kwargs.get("policy_packs", []))
        self._state["outputs"] = dict(self.backend.up_outputs)
        return SimpleNamespace(outputs=dict(self.backend.up_outputs))

    def preview(self, **kwargs: Any) -> Any:
        self._record("preview", f"diff={kwargs.get('diff')}", *kwargs.get("policy_packs", []))
        if kwargs.get("refresh") or kwargs.get("plan"):
            self._record("preview-options", f"refresh={kwargs.get('refresh')}", str(kwargs["plan"]))
        for path in kwargs.get("policy_pack_configs") or []:
            with open(path, encoding="utf-8") as config:
                self._record("policy-pack-config", config.read())
        for line in self.backend.preview_lines:
            kwargs["on_output"](line)
        for sequence, payload in enumerate(self.backend.policy_events):
            # What the Automation API builds from each line of the engine's event log.
            event = auto.EngineEvent.from_json(
                {"sequence": sequence, "timestamp": 0, "policyEvent": payload}
            )
            kwargs["on_event"](event)
        if self.backend.fail_preview:
            raise command_error(self.backend.fail_preview)
        return SimpleNamespace(
            stdout="", change_summary={auto.OpType.UPDATE: 1, auto.OpType.SAME: 40}
        )

    def destroy(self, **kwargs: Any) -> Any:
        self._record("destroy")
        if self._name in self.backend.fail_destroy:
            raise command_error("error: resource still in use")
        return SimpleNamespace()


class FakeStackApi:
    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend

    def create_or_select(self, stack_name: str, workspace: Any) -> FakeStack:
        self.backend.record("create_or_select", stack_name)
        if self.backend.canonical(stack_name) not in self.backend.stacks:
            self.backend.add(self.backend.canonical(stack_name))
        return FakeStack(self.backend, stack_name)

    def select(self, stack_name: str, workspace: Any) -> FakeStack:
        self.backend.record("select", stack_name)
        if self.backend.canonical(stack_name) not in self.backend.stacks:
            raise command_error(f"error: no stack named '{stack_name}'", auto.StackNotFoundError)
        return FakeStack(self.backend, stack_name)


class FakeWorkspace:
    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend

    def list_stacks(self, include_all: bool | None = None) -> list[auto.StackSummary]:
        return [
            auto.StackSummary(
                state.get("listed_as", name), current=False, update_in_progress=state["busy"]
            )
            for name, state in self.backend.stacks.items()
        ]

    def remove_stack(
        self, stack_name: str, force: bool | None = None, preserve_config: bool | None = None
    ) -> None:
        self.backend.record("remove_stack", stack_name, f"force={force}")
        key = self.backend.canonical(stack_name)
        if key not in self.backend.stacks:
            raise command_error(
                f"error: no stack named '{stack_name}' found", auto.StackNotFoundError
            )
        del self.backend.stacks[key]
