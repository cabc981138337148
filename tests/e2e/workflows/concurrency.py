"""GitHub Actions concurrency groups, as documented, and a driver for event sequences.

"There can be at most one running and one pending job in a concurrency group at any time. When
a concurrent job or workflow is queued, if another job or workflow using the same concurrency
group in the repository is in progress, the queued job or workflow will be pending. Any existing
pending job or workflow in the same concurrency group, if it exists, will be canceled and the
new queued job or workflow will take its place." (with ``cancel-in-progress: false``;
https://docs.github.com/en/actions/using-jobs/using-concurrency). Group names are
case-insensitive (same page).

:class:`Ephemeral` turns pull-request events into runs of the real ``ephemeral.yml`` and
``sweep.yml``: each job's ``if:`` and ``concurrency.group`` are evaluated from the event (as
GitHub does when the event arrives), a job that passes its condition is queued in its group (or,
when the workflow declares workflow-level concurrency, the whole run is, whether any job runs or
not), and a job that starts runs its real command (``python -m tools.delivery ...``) against an
in-memory Pulumi backend and GitHub API that hold the PR's state *at the time the job starts*.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.e2e.workflows.expressions import Evaluator
from tests.e2e.workflows.fake_github import GitHubState
from tests.e2e.workflows.runner import WORKFLOWS, load
from tests.tools.delivery.fakes import FakeBackend
from tools.delivery.cli import Env, main
from tools.delivery.pr_comment import GitHub

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class Member:
    """A queued job (or a whole run, for workflow-level groups)."""

    label: str
    group: str | None
    action: Callable[[], None]


@dataclass
class Groups:
    """The one-running-one-pending rule per concurrency group."""

    running: dict[str, Member] = field(default_factory=dict)
    pending: dict[str, Member] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    def queue(self, member: Member) -> None:
        """Queue ``member``: start it, make it pending, or replace (cancel) the pending one."""
        if member.group is None:
            self._start(member)
            self.finish_member(member)
            return
        key = member.group.lower()
        if key not in self.running:
            self.running[key] = member
            self._start(member)
            return
        if key in self.pending:
            self.cancelled.append(self.pending[key].label)
        self.pending[key] = member

    def _start(self, member: Member) -> None:
        self.started.append(member.label)
        member.action()

    def finish_member(self, member: Member) -> None:
        """A member without a group ran and finished at once."""
        return

    def finish(self, group: str) -> None:
        """The running member of ``group`` completes; the pending one (if any) starts."""
        key = group.lower()
        self.running.pop(key)
        if key in self.pending:
            self.running[key] = self.pending.pop(key)
            self._start(self.running[key])

    def drain(self) -> None:
        """Let everything finish, in order."""
        while self.running:
            self.finish(next(iter(self.running)))


def _argv(run: str) -> list[str]:
    """The ``python -m tools.delivery`` arguments of a step's script, with variables bound."""
    match = re.search(r"-m tools\.delivery (.*)", run.replace("\n", " "))
    assert match, run
    return shlex.split(match[1])


def _bind(argv: list[str], values: dict[str, str]) -> list[str]:
    return [re.sub(r"\$\{?(\w+)\}?", lambda m: values[m[1]], arg) for arg in argv]


@dataclass
class Ephemeral:
    """One pull request, its ephemeral stack, and the workflows that act on them."""

    number: int = 7
    workflow: dict[str, Any] = field(default_factory=lambda: load(WORKFLOWS / "ephemeral.yml"))
    sweeper: dict[str, Any] = field(default_factory=lambda: load(WORKFLOWS / "sweep.yml"))
    backend: FakeBackend = field(default_factory=FakeBackend)
    github: GitHubState = field(default_factory=GitHubState)
    groups: Groups = field(default_factory=Groups)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.github.pull(self.number, "open", ())

    # --- the world --------------------------------------------------------------------
    @property
    def pr(self) -> dict[str, Any]:
        """The pull request as GitHub has it now."""
        return self.github.pulls[self.number]

    @property
    def stack_exists(self) -> bool:
        """Whether ``pr-<n>`` exists in the backend."""
        return f"pr-{self.number}" in self.backend.stacks

    def _env(self) -> Env:
        def transport(method: str, url: str, body: Any) -> tuple[int, Any]:
            return self.github.answer(method, url.removeprefix("https://api.github.com"), body)

        return Env(
            pulumi=self.backend.pulumi,
            github=lambda: GitHub("o/r", transport),
            now=lambda: NOW,
            out=self.log.append,
            environ={"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "o/r"},
        )

    # --- events -----------------------------------------------------------------------
    def event(self, action: str, label: str | None = None) -> None:
        """A pull_request event; the PR changes first, then ephemeral.yml is triggered."""
        labels = [entry["name"] for entry in self.pr["labels"]]
        if action == "labeled" and label and label not in labels:
            labels.append(label)
        if action == "unlabeled" and label in labels:
            labels.remove(label)
        state = {"closed": "closed", "reopened": "open"}.get(action, self.pr["state"])
        self.github.pull(self.number, state, tuple(labels))
        payload = {
            "action": action,
            "number": self.number,
            "pull_request": {**self.pr, "head": {"repo": {"full_name": "o/r"}}},
        }
        if label:
            payload["label"] = {"name": label}
        self._trigger(payload)

    def _trigger(self, payload: dict[str, Any]) -> None:
        contexts = {"github": {"event": payload, "repository": "o/r"}, "env": {}}
        evaluator = Evaluator(contexts)
        run_label = f"ephemeral({payload['action']})"
        jobs = [
            (name, job)
            for name, job in self.workflow["jobs"].items()
            if evaluator.condition(job.get("if"))
        ]
        workflow_group = self.workflow.get("concurrency")
        if workflow_group is not None:
            # The whole run waits in the group, whether any of its jobs will run or not.
            group = str(evaluator.interpolate(workflow_group["group"]))
            members = [self._job(run_label, name, job, None, evaluator) for name, job in jobs]
            self.groups.queue(Member(run_label, group, lambda: [m.action() for m in members]))
            return
        for name, job in jobs:
            self.groups.queue(self._job(run_label, name, job, job.get("concurrency"), evaluator))

    def _job(
        self,
        run_label: str,
        name: str,
        job: dict[str, Any],
        concurrency: dict[str, Any] | None,
        evaluator: Evaluator,
    ) -> Member:
        group = None if concurrency is None else str(evaluator.interpolate(concurrency["group"]))
        env = {"PR_NUMBER": str(self.number), "LABEL": "preview-env"}
        argv = _bind(_argv(job["steps"][-1]["run"]), env)
        return Member(f"{run_label}.{name}", group, lambda: self._command(argv))

    def _command(self, argv: list[str]) -> None:
        code = main(argv, self._env())
        self.log.append(f"{' '.join(argv)} -> {code}")

    def sweep(self) -> None:
        """A scheduled sweep.yml run: `list` now, then one `destroy` per due PR, grouped."""
        self.log.clear()
        main(["sweep", "--list-json"], self._env())
        listed = next(line for line in self.log if line.startswith("prs="))
        due = [int(n) for n in re.findall(r"\d+", listed)]
        destroy = self.sweeper["jobs"]["destroy"]
        for number in due:
            evaluator = Evaluator({"matrix": {"pr": number}})
            group = str(evaluator.interpolate(destroy["concurrency"]["group"]))
            argv = _bind(_argv(destroy["steps"][-1]["run"]), {"PR": str(number)})
            self.groups.queue(
                Member(f"sweep.destroy({number})", group, lambda a=argv: self._command(a))
            )

    def finish(self) -> None:
        """The running member of this PR's group completes."""
        self.groups.finish(f"ephemeral-pr-{self.number}")
