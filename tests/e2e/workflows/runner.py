"""Run one job of one of our workflows, step by step, in a scratch copy of the checkout.

What a GitHub-hosted runner does for a job, narrowed to what our workflows use
(https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-syntax and
https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands):

- ``run:`` steps are executed for real with ``bash --noprofile --norc -eo pipefail {0}`` (the
  default shell on Linux runners), in the checkout, with the workflow, job and step ``env:``
  (expressions evaluated), and the ``GITHUB_OUTPUT`` / ``GITHUB_ENV`` / ``GITHUB_PATH`` /
  ``GITHUB_STEP_SUMMARY`` files whose contents later steps see.
- ``if:`` conditions are evaluated (:mod:`tests.e2e.workflows.expressions`); a failed step skips the
  rest unless their condition asks for ``always()`` / ``failure()``.
- Local composite actions (``uses: ./.github/actions/X``) are expanded and run the same way.
- Remote actions are replaced by stand-ins that do what the action does to the job's
  environment: ``actions/setup-python`` puts a CPython 3.11 first on PATH, ``pulumi/actions``
  puts :mod:`tests.e2e.workflows.fake_pulumi` on PATH as ``pulumi`` (at the version its
  ``pulumi-version-file`` names), ``configure-aws-credentials`` and ``pulumi/auth-actions`` set
  credentials' variables, artifacts go to a shared folder. An action with no stand-in fails
  the run, so a new action cannot slip past these tests unexamined.

The one liberty, to keep each job to seconds instead of minutes: the setup-python stand-in
creates virtualenvs with ``--without-pip`` plus a ``.pth`` file that puts the shared, already
built virtualenv's site-packages on the new venv's path. The job's own commands still run
unchanged: it still has to create exactly the folder Pulumi.yaml names, and its
``pip install --require-hashes -r requirements/infra.lock`` still runs (offline, PIP_NO_INDEX):
pip finds each locked version already present and installs nothing, and fails if the lock asks
for a version the shared venv does not have.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.workflows.expressions import Evaluator

REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = REPO / ".github" / "workflows"
FAKE_PULUMI = Path(__file__).with_name("fake_pulumi.py")
BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
SHARED_SITE = Path(sysconfig.get_paths()["purelib"])
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STEP_TIMEOUT_S = 240


def load(path: Path) -> dict[str, Any]:
    """A workflow or action file, with YAML 1.1's ``on: true`` key put back as ``on``."""
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


@dataclass
class StepResult:
    """One executed (or skipped) step."""

    name: str
    outcome: str  # success, failure or skipped
    output: str = ""


@dataclass
class JobRun:
    """What a job did: its steps, the fake pulumi's calls and state, outputs and summary."""

    steps: list[StepResult]
    pulumi_state: dict[str, Any]
    outputs: dict[str, Any]
    summary: str
    work: Path
    artifacts: Path

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return all(step.outcome != "failure" for step in self.steps)

    @property
    def pulumi_calls(self) -> list[list[str]]:
        """argv of every ``pulumi`` invocation, in order."""
        return [call["argv"] for call in self.pulumi_state.get("calls", [])]

    def log(self) -> str:
        """Every step's outcome and output, for assertion messages."""
        return "\n".join(f"--- {s.name}: {s.outcome}\n{s.output[-3000:]}" for s in self.steps)


def scratch_checkout(target: Path) -> Path:
    """Copy the working tree's tracked and unignored files (what actions/checkout gives)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


def _tools(root: Path) -> dict[str, Path]:
    """Write the setup-python and pulumi stand-ins; return their bin folders."""
    python_bin, pulumi_bin = root / "python" / "bin", root / "pulumi" / "bin"
    python_bin.mkdir(parents=True, exist_ok=True)
    pulumi_bin.mkdir(parents=True, exist_ok=True)
    venv_maker = root / "python" / "make_venv.py"
    venv_maker.write_text(
        "import pathlib, subprocess, sys, sysconfig\n"
        "target = pathlib.Path(sys.argv[-1])\n"
        f"subprocess.run([{str(BASE_PYTHON)!r}, '-m', 'venv', '--without-pip', *sys.argv[1:]],"
        " check=True)\n"
        "site = target / 'lib' / 'python3.11' / 'site-packages'\n"
        f"(site / '_shared_venv.pth').write_text({str(SHARED_SITE)!r} + '\\n')\n"
    )
    for name in ("python", "python3"):
        shim = python_bin / name
        shim.write_text(
            "#!/bin/bash\n"
            "# actions/setup-python stand-in: CPython 3.11; `-m venv`: see runner.py\n"
            'if [ "${1:-}" = "-m" ] && [ "${2:-}" = "venv" ]; then\n'
            f'  exec {BASE_PYTHON} {venv_maker} "${{@:3}}"\n'
            "fi\n"
            f'exec {BASE_PYTHON} "$@"\n'
        )
        shim.chmod(0o755)
    pulumi = pulumi_bin / "pulumi"
    pulumi.write_text(f'#!/bin/bash\nexec {BASE_PYTHON} -I {FAKE_PULUMI} "$@"\n')
    pulumi.chmod(0o755)
    return {"python": python_bin, "pulumi": pulumi_bin}


@dataclass
class _Job:
    work: Path
    home: Path
    contexts: dict[str, Any]
    env: dict[str, str]
    path: list[str]
    tools: dict[str, Path]
    artifacts: Path
    files: dict[str, Path]
    results: list[StepResult] = field(default_factory=list)
    status: str = "success"


def _expand(steps: list[dict[str, Any]], work: Path) -> list[tuple[dict[str, Any], Any]]:
    """Steps with local composite actions expanded; each paired with its inputs (or None)."""
    out: list[tuple[dict[str, Any], Any]] = []
    for step in steps:
        uses = step.get("uses", "")
        if uses.startswith("./"):
            action = load(work / uses / "action.yml")
            assert action["runs"]["using"] == "composite", uses
            defaults = {k: v.get("default", "") for k, v in action.get("inputs", {}).items()}
            given = {k: str(v) for k, v in step.get("with", {}).items()}
            out.append(({"name": f"{uses} (composite)", "if": step.get("if")}, "marker"))
            out += [(inner, {**defaults, **given}) for inner in action["runs"]["steps"]]
        else:
            out.append((step, None))
    return out


def _render_env(evaluator: Evaluator, env: Mapping[str, Any] | None) -> dict[str, str]:
    rendered = {}
    for key, value in (env or {}).items():
        result = evaluator.interpolate(value)
        rendered[key] = "" if result is None else _text(result)
    return rendered


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _read_key_values(path: Path) -> dict[str, str]:
    """``name=value`` and ``name<<EOF`` blocks of a GITHUB_OUTPUT / GITHUB_ENV file."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            index += 1
            while lines[index] != delimiter:
                block.append(lines[index])
                index += 1
            values[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        index += 1
    return values


def _stand_in(job: _Job, step: dict[str, Any], inputs: Mapping[str, Any]) -> dict[str, str]:
    """Do what a remote action does to the job; return its outputs."""
    uses = step["uses"].split("@", 1)[0]
    if uses in {"actions/checkout", "actions/cache"}:
        return {}
    if uses == "actions/setup-python":
        assert str(inputs.get("python-version")) == "3.11", "the project's Python is 3.11"
        job.path.insert(0, str(job.tools["python"]))
        return {"python-version": "3.11.7"}
    if uses == "pulumi/actions":
        assert "command" not in inputs, "pulumi/actions only installs the CLI here"
        version_file = job.work / str(inputs["pulumi-version-file"])
        job.env["FAKE_PULUMI_VERSION"] = version_file.read_text().strip()
        job.path.insert(0, str(job.tools["pulumi"]))
        return {}
    if uses == "aws-actions/configure-aws-credentials":
        assert inputs.get("role-to-assume"), "an AWS role per environment"
        job.env.update(AWS_ACCESS_KEY_ID="ASIAFAKE", AWS_SECRET_ACCESS_KEY="fake")
        job.env["AWS_REGION"] = str(inputs.get("aws-region") or "us-west-2")
        return {}
    if uses == "pulumi/auth-actions":
        job.env["PULUMI_ACCESS_TOKEN"] = "pul-oidc-" + str(inputs.get("scope", "org"))
        return {"pulumi-access-token": job.env["PULUMI_ACCESS_TOKEN"]}
    if uses == "actions/upload-artifact":
        target = job.artifacts / str(inputs["name"])
        for pattern in str(inputs["path"]).split():
            source = job.work / pattern
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            elif source.is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / source.name)
        return {}
    if uses == "actions/download-artifact":
        source = job.artifacts / str(inputs["name"])
        destination = Path(str(inputs.get("path") or job.work))
        if not destination.is_absolute():
            destination = job.work / destination
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return {}
    raise AssertionError(
        f"no stand-in for action {uses}: model it in tests/e2e/workflows/runner.py"
    )


def _run_script(job: _Job, script: str, env: dict[str, str], name: str) -> StepResult:
    path_value = os.pathsep.join([*job.path, SYSTEM_PATH])
    script_file = job.files["temp"] / "step.sh"
    script_file.write_text(script)
    try:
        completed = subprocess.run(
            ["/bin/bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
            cwd=job.work,
            env={**env, "PATH": path_value},
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return StepResult(name, "failure", f"timed out after {STEP_TIMEOUT_S}s: {exc}")
    outcome = "success" if completed.returncode == 0 else "failure"
    return StepResult(name, outcome, completed.stdout + completed.stderr)


def _step(job: _Job, step: dict[str, Any], inputs: Any, index: int) -> None:
    contexts = dict(job.contexts)
    if isinstance(inputs, dict):
        contexts["inputs"] = inputs
    contexts["env"] = dict(job.env)
    evaluator = Evaluator(contexts, job.status)
    name = str(step.get("name") or step.get("uses") or f"step {index}")
    if not evaluator.condition(step.get("if")):
        job.results.append(StepResult(name, "skipped"))
        return
    if inputs == "marker":
        return
    with_inputs = {k: evaluator.interpolate(v) for k, v in step.get("with", {}).items()}
    outputs: dict[str, str] = {}
    if "uses" in step:
        try:
            outputs = _stand_in(job, step, with_inputs)
            result = StepResult(name, "success")
        except (OSError, KeyError) as exc:
            result = StepResult(name, "failure", f"{type(exc).__name__}: {exc}")
    else:
        for key in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH"):
            job.files[key].write_text("")
        env = {**job.env, **_render_env(evaluator, step.get("env"))}
        script = str(evaluator.interpolate(step["run"]))
        result = _run_script(job, script, env, name)
        outputs = _read_key_values(job.files["GITHUB_OUTPUT"])
        job.env.update(_read_key_values(job.files["GITHUB_ENV"]))
        added = job.files["GITHUB_PATH"].read_text().split()
        job.path[:0] = list(reversed(added))
    if "id" in step:
        job.contexts["steps"][step["id"]] = {"outputs": outputs, "outcome": result.outcome}
    job.results.append(result)
    if result.outcome == "failure":
        job.status = "failure"


def run_job(
    workflow: str,
    job_id: str,
    *,
    tmp: Path,
    event_name: str,
    event: Mapping[str, Any],
    work: Path | None = None,
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    inputs: Mapping[str, Any] | None = None,
    matrix: Mapping[str, Any] | None = None,
    needs: Mapping[str, Any] | None = None,
    platform_env: Mapping[str, str] | None = None,
    ref: str = "refs/heads/main",
    artifacts: Path | None = None,
) -> JobRun:
    """Run ``workflow``'s job ``job_id`` for one event; see the module docstring."""
    document = load(
        work / ".github" / "workflows" / f"{workflow}.yml"
        if work
        else WORKFLOWS / f"{workflow}.yml"
    )
    job_spec = document["jobs"][job_id]
    work = work or scratch_checkout(tmp / "work")
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir(parents=True, exist_ok=True)
    files = {
        key: runner_temp / key.lower() for key in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")
    }
    files["GITHUB_STEP_SUMMARY"] = runner_temp / "summary.md"
    files["temp"] = runner_temp
    files["GITHUB_STEP_SUMMARY"].write_text("")
    artifacts = artifacts or tmp / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    state = tmp / "pulumi-state.json"
    github = {
        "event_name": event_name, "event": dict(event), "repository": "o/r",
        "repository_owner": "o", "ref": ref, "sha": "0" * 40, "run_id": "4242",
        "server_url": "https://github.com", "api_url": "https://api.github.com",
        "workspace": str(work), "token": "ghs_fake", "ref_name": ref.rsplit("/", 1)[-1],
        "actor": "someone", "run_attempt": "1",
    }  # fmt: skip
    contexts: dict[str, Any] = {
        "github": github, "vars": dict(variables or {}), "secrets": dict(secrets or {}),
        "inputs": dict(inputs or {}), "matrix": dict(matrix or {}), "needs": dict(needs or {}),
        "steps": {}, "runner": {"os": "Linux", "temp": str(runner_temp), "arch": "X64"},
        "strategy": {}, "job": {}, "env": {},
    }  # fmt: skip
    evaluator = Evaluator(contexts)
    env: dict[str, str] = {
        "HOME": str(home), "CI": "true", "GITHUB_ACTIONS": "true", "LANG": "C.UTF-8",
        "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "4242", "GITHUB_SHA": github["sha"],
        "GITHUB_SERVER_URL": github["server_url"], "GITHUB_API_URL": github["api_url"],
        "GITHUB_WORKSPACE": str(work), "GITHUB_EVENT_NAME": event_name, "GITHUB_REF": ref,
        "RUNNER_TEMP": str(runner_temp), "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "FAKE_PULUMI_STATE": str(state), "PULUMI_SKIP_UPDATE_CHECK": "true",
        "FAKE_PULUMI_GRPC_PYTHON": sys.executable,
    }  # fmt: skip
    env.update({k: str(files[k]) for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")})
    env["GITHUB_STEP_SUMMARY"] = str(files["GITHUB_STEP_SUMMARY"])
    env.update(platform_env or {})
    env.update(_render_env(evaluator, document.get("env")))
    contexts["env"] = dict(env)
    env.update(_render_env(Evaluator(contexts), job_spec.get("env")))
    job = _Job(work, home, contexts, env, [], _tools(tmp / "tools"), artifacts, files)
    for index, (step, step_inputs) in enumerate(_expand(job_spec["steps"], work)):
        _step(job, step, step_inputs, index)
    outputs = {
        key: Evaluator({**job.contexts, "env": job.env}).interpolate(value)
        for key, value in job_spec.get("outputs", {}).items()
    }
    pulumi_state = json.loads(state.read_text()) if state.exists() else {}
    summary = files["GITHUB_STEP_SUMMARY"].read_text()
    return JobRun(job.results, pulumi_state, outputs, summary, work, artifacts)
