"""A stand-in for the ``pulumi`` CLI that workflow jobs find on PATH in the workflow tests.

It answers the subcommands the Automation API sends (``version``, ``stack select/init/ls/rm``,
``stack tag``, ``config set``, ``stack output``, ``stack history``, ``preview``, ``up``,
``destroy``) from a JSON state file, writes the engine event log that the Automation API reads
results from (``--event-log``: one JSON event per line, a ``summaryEvent`` then a
``cancelEvent``), and records every argv. Before any command that runs the program or the policy
pack it checks what the real CLI would need, and fails like a broken job would otherwise:

- ``Pulumi.yaml``'s ``runtime.options.virtualenv`` exists and its interpreter imports the
  program's dependencies (``pulumi, pulumi_aws, pulumi_kubernetes, infra``);
- for each ``--policy-pack DIR``: ``DIR/PulumiPolicy.yaml``'s virtualenv (relative to DIR)
  exists and imports ``pulumi_policy``.

Environment: ``FAKE_PULUMI_STATE`` (state file), ``FAKE_PULUMI_VERSION`` (what ``version``
prints), ``FAKE_PULUMI_OUTPUTS`` (JSON outputs an ``up`` leaves on the stack),
``FAKE_PULUMI_POLICY_EVENTS`` (JSON list of policyEvent objects a ``preview`` emits),
``FAKE_PULUMI_GRPC_PYTHON`` (an interpreter with grpc, to stream events to the Automation API).
Run as a script with the base interpreter: it imports only the standard library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_PROGRAM_IMPORTS = "import pulumi, pulumi_aws, pulumi_kubernetes, infra"
_POLICY_IMPORTS = "import pulumi_policy"


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    return {"stacks": {}, "calls": [], "checked": []}


def _flag(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _virtualenv(settings_file: Path) -> str | None:
    """The ``virtualenv:`` option of a Pulumi.yaml / PulumiPolicy.yaml (a flat YAML read)."""
    for line in settings_file.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("virtualenv:"):
            return stripped.split(":", 1)[1].split("#", 1)[0].strip().strip("'\"")
    return None


def _check_venv(base: Path, settings_file: Path, imports: str, state: dict[str, Any]) -> None:
    if not settings_file.is_file():
        _fail(f"{settings_file} does not exist")
    name = _virtualenv(settings_file)
    if not name:
        _fail(f"{settings_file} names no virtualenv")
    venv = (base / str(name)).resolve()
    python = venv / "bin" / "python"
    if not python.exists():
        _fail(
            f"virtualenv {venv} (named by {settings_file.name}) does not exist: the job did "
            "not create it before calling pulumi"
        )
    key = f"{venv}:{imports}:{python.stat().st_mtime_ns}"
    if key in state["checked"]:
        return
    result = subprocess.run(
        [str(python), "-c", imports], cwd=base, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        _fail(f"{venv} cannot run `{imports}`:\n{result.stderr[-1500:]}")
    state["checked"].append(key)


def _fail(message: str, code: int = 255) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


_GRPC_SENDER = """
import json, sys
import grpc
from pulumi.runtime.proto import events_pb2, events_pb2_grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = events_pb2_grpc.EventsStub(channel)
    requests = [events_pb2.EventRequest(event=line) for line in json.loads(sys.argv[2])]
    stub.StreamEvents(iter(requests))
"""


def _events(path: str | None, events: list[dict[str, Any]]) -> None:
    """Deliver engine events the way the CLI does: a log file, or gRPC for CLIs after 3.205."""
    if not path:
        return
    lines = [
        json.dumps({"sequence": sequence, "timestamp": int(time.time()), **event})
        for sequence, event in enumerate([*events, {"cancelEvent": {}}])
    ]
    if path.startswith("tcp://"):
        # The engine streams events to the Automation API's Events gRPC service; the sender
        # runs in an interpreter that has grpc (the test's), this script has only the stdlib.
        python = os.environ["FAKE_PULUMI_GRPC_PYTHON"]
        argv = [python, "-c", _GRPC_SENDER, path.removeprefix("tcp://"), json.dumps(lines)]
        subprocess.run(argv, check=True, timeout=60)
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write("\n".join(lines) + "\n")


def _summary(changes: dict[str, int]) -> dict[str, Any]:
    return {
        "summaryEvent": {
            "maybeCorrupt": False,
            "durationSeconds": 1,
            "resourceChanges": changes,
            "policyPacks": {},
        }
    }


def _stack_of(argv: list[str], state: dict[str, Any]) -> dict[str, Any]:
    name = _flag(argv, "--stack") or state.get("current")
    if not name or name not in state["stacks"]:
        _fail(f"no stack named '{name}' found")
    state["current"] = name
    stack: dict[str, Any] = state["stacks"][name]
    return stack


def _run_program(argv: list[str], state: dict[str, Any]) -> None:
    cwd = Path.cwd()
    _check_venv(cwd, cwd / "Pulumi.yaml", _PROGRAM_IMPORTS, state)
    for index, arg in enumerate(argv):
        if arg == "--policy-pack":
            pack = (cwd / argv[index + 1]).resolve()
            _check_venv(pack, pack / "PulumiPolicy.yaml", _POLICY_IMPORTS, state)


def _operation(verb: str, argv: list[str], state: dict[str, Any]) -> None:
    stack = _stack_of(argv, state)
    _run_program(argv, state)
    events: list[dict[str, Any]] = []
    if verb == "preview":
        events += [
            {"policyEvent": e}
            for e in json.loads(os.environ.get("FAKE_PULUMI_POLICY_EVENTS", "[]"))
        ]
        plan = _flag(argv, "--save-plan")
        if plan:
            Path(plan).write_text(json.dumps({"config": stack["config"], "resourcePlans": {}}))
    if verb == "up":
        plan = _flag(argv, "--plan")
        if plan and not Path(plan).is_file():
            _fail(f"plan file {plan} does not exist")
        stack["outputs"] = json.loads(os.environ.get("FAKE_PULUMI_OUTPUTS", "{}"))
        stack["updates"] = stack.get("updates", 0) + 1
    if verb == "destroy":
        stack["outputs"] = {}
    _events(_flag(argv, "--event-log"), [*events, _summary({"same": 1})])


def _stack_command(argv: list[str], state: dict[str, Any]) -> None:
    sub = argv[1] if len(argv) > 1 else ""
    stacks = state["stacks"]
    if sub == "select":
        name = _flag(argv, "--stack") or ""
        if name not in stacks:
            if "--create" not in argv:
                _fail(f"no stack named '{name}' found")
            stacks[name] = {"config": {}, "tags": {}, "outputs": {}}
        state["current"] = name
    elif sub == "init":
        name = argv[2] if len(argv) > 2 and not argv[2].startswith("-") else _flag(argv, "--stack")
        if name in stacks:
            _fail(f"stack '{name}' already exists")
        stacks[str(name)] = {"config": {}, "tags": {}, "outputs": {}}
        state["current"] = name
    elif sub == "ls":
        print(json.dumps([{"name": n, "current": n == state.get("current")} for n in stacks]))
    elif sub == "rm":
        name = [a for a in argv[2:] if not a.startswith("-")][-1]
        if name not in stacks:
            _fail(f"no stack named '{name}' found")
        del stacks[name]
    elif sub == "tag":
        stack = _stack_of(argv, state)
        if argv[2] == "set":
            stack["tags"][argv[3]] = argv[4]
        elif argv[2] == "get":
            if argv[3] not in stack["tags"]:
                _fail(f"stack tag '{argv[3]}' not found")
            print(stack["tags"][argv[3]])
    elif sub == "output":
        print(json.dumps(_stack_of(argv, state)["outputs"]))
    elif sub == "history":
        stack = _stack_of(argv, state)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        entry = {"kind": "update", "startTime": now, "endTime": now, "message": "",
                 "environment": {}, "config": {}, "result": "succeeded",
                 "version": stack.get("updates", 0), "resourceChanges": {"same": 1}}  # fmt: skip
        print(json.dumps([entry]))


def main(argv: list[str]) -> int:
    """Answer one CLI invocation, recording it in the state file."""
    state_file = Path(os.environ["FAKE_PULUMI_STATE"])
    state = _load(state_file)
    # Global flags the Automation API puts before the command (--non-interactive).
    while argv and argv[0].startswith("--"):
        argv = argv[1:]
    state["calls"].append({"argv": argv, "cwd": os.getcwd()})
    try:
        verb = argv[0] if argv else ""
        if verb == "version":
            print("v" + os.environ.get("FAKE_PULUMI_VERSION", "3.272.0"))
        elif verb == "stack":
            _stack_command(argv, state)
        elif verb == "config" and len(argv) > 1 and argv[1] == "set":
            stack = _stack_of(argv, state)
            values = [a for a in argv[2:] if not a.startswith("-") and a != _flag(argv, "--stack")]
            stack["config"][values[0]] = values[-1]
        elif verb in {"preview", "up", "destroy", "refresh"}:
            _operation(verb, argv, state)
        elif verb == "whoami":
            print("ci-bot")
        return 0
    finally:
        state_file.write_text(json.dumps(state, indent=1))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
