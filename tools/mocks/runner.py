"""Runs a Pulumi program (or a few components) under the mock engine and records what it declared.

This is the one module that touches the Python SDK's private runtime: the settings reset between
runs, the mock monitor, waiting for every outstanding registration (``run_pulumi_func``) and the
wire format of secrets. Everything else (the plan tool, the manifest renderer, the tests) goes
through ``run`` with a ``RecordingMonitor``, ``run_component`` and the secret helpers here, so
an SDK upgrade that moves those internals breaks one file; tests/test_architecture.py holds
every other module to that.

Config reaches the program both ways the SDK knows: ``set_all_config`` (what the Automation API's
inline programs get) and, as the Python language host hands it to the program process, the
``PULUMI_CONFIG`` / ``PULUMI_CONFIG_SECRET_KEYS`` environment variables
(pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go, ``pulumiConfigVar``; the SDK reads
them with ``pulumi.runtime.get_config_env`` / ``get_config_secret_keys_env``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import pulumi
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tools.mocks.engine import ProgramMocks, Registration

#: The project every run registers under (Pulumi.yaml ``name``).
DEFAULT_PROJECT: Final = "torch-eks-inference"
_CONFIG_ENV: Final = ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS")


# ---------------------------------------------------------------------- secrets on the wire
def is_secret(value: Any) -> bool:
    """Whether a recorded input or output value is a secret (as the engine would store it)."""
    return bool(rpc.is_rpc_secret(value))


def reveal(value: Any) -> Any:
    """The plain value of a recorded secret (tests check what the secret holds)."""
    return rpc.unwrap_rpc_secret(value)


def secret(value: Any) -> Any:
    """``value`` as a recorded secret looks (to compare recorded inputs against)."""
    return rpc.wrap_rpc_secret(value)


# ---------------------------------------------------------------------- recording
class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent and inputs in order."""

    def __init__(self, mocks: ProgramMocks) -> None:
        super().__init__(mocks)
        self.engine = mocks
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self._record(request, response, read=False)
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        self._record(request, response, read=True)
        return response

    def _record(self, request: Any, response: Any, read: bool) -> None:
        inputs = rpc.deserialize_properties(request.properties if read else request.object)
        answered = rpc.deserialize_properties(response.properties if read else response.object)
        self.engine.registered(response.urn, request.type, inputs, answered, read=read)
        self.registrations.append(
            Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent_urn=request.parent or None,
                inputs=inputs,
                outputs=answered,
                id=str(getattr(response, "id", "") or request.name),
                dependencies=tuple(getattr(request, "dependencies", ()) or ()),
                protect=bool(getattr(request, "protect", False)),
                delete_before_replace=bool(getattr(request, "deleteBeforeReplace", False)),
                read=read,
                custom=bool(getattr(request, "custom", True)),
            )
        )


# ---------------------------------------------------------------------- running
def _ensure_event_loop() -> None:
    """Give this thread an open event loop: the Pulumi SDK's mocks take the current one.

    ``asyncio.run`` (used by other code in the same process) leaves the main thread with none,
    after which the SDK's ``get_event_loop`` raises.
    """
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


@contextmanager
def _config(config: Mapping[str, str], secret_keys: Sequence[str]) -> Iterator[None]:
    """The run's config, set as the engine and the language host set it, then taken away."""
    saved = {name: os.environ.get(name) for name in _CONFIG_ENV}
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    os.environ["PULUMI_CONFIG"] = json.dumps(dict(config))
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(secret_keys))
    try:
        yield
    finally:
        pulumi.runtime.set_all_config({}, [])
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(
    program: Callable[[], None],
    monitor: RecordingMonitor,
    stack: str,
    config: Mapping[str, str] | None = None,
    secret_keys: Sequence[str] = (),
    project: str = DEFAULT_PROJECT,
) -> tuple[dict[str, Any], frozenset[str]]:
    """Run ``program`` as stack ``stack`` under ``monitor``'s engine; every registration finishes.

    ``monitor.registrations`` then holds what the program declared, in order; the result is the
    stack outputs, resolved (secret ones still wrapped), and the names of the secret ones. Each
    run starts from a fresh root Stack resource and RPC bookkeeping, so runs are independent and
    can be repeated in one process. Raises whatever the program raises.
    """
    _ensure_event_loop()
    mocks = monitor.engine
    settings.ROOT.set(None)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    root = settings.get_root_resource()
    assert root is not None  # set_mocks creates it
    resolved: dict[str, Any] = {}
    secret_names: set[str] = set()

    async def resolve_outputs() -> None:
        outputs: dict[str, Any] = getattr(root, "outputs", {})
        for key, value in outputs.items():
            output = pulumi.Output.from_input(value)
            resolved[key] = await output.future()
            if await output.is_secret():
                secret_names.add(key)

    def declare() -> Any:
        program()
        return resolve_outputs()

    with _config(config or {}, secret_keys):
        _sync_await(run_pulumi_func(declare))
    return resolved, frozenset(secret_names)


def run_component(
    build: Callable[[], object],
    region: str = "us-west-2",
    stack: str = "test",
    config: Mapping[str, str] | None = None,
) -> list[Registration]:
    """Declare a few components (``build``) in a stack of their own and return what registered.

    The same engine as whole-program runs answers them, so a component sees the ARNs, ids and
    endpoints the real program would; ``region`` sets the partition and endpoints.
    """

    def program() -> None:
        build()

    monitor = RecordingMonitor(ProgramMocks(region=region))
    run(program, monitor, stack, config)
    return list(monitor.registrations)
