"""The per-stack defaults are the ones the simulation favours, for the deployed configuration.

This re-runs the simulation for every stack (about half a minute): it is the check that
``RECOMMENDED`` in benchmarks/scaling_targets.py did not drift from ``make simulate``.
"""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks import scaling_choice as choice
from benchmarks import scaling_targets as targets
from benchmarks import simulate
from benchmarks.service_curve import load_curve
from infra.config import COMMON_DEFAULTS, ENVIRONMENT_DEFAULTS, Environment
from infra.k8s.pod import ContainerResources

CURVE = load_curve()


@pytest.mark.parametrize("stack", ["prod", "staging", "dev", "pr"])
def test_recommended_defaults_are_what_the_simulation_favours(stack: str) -> None:
    profile = choice.profiles()[stack]
    chosen = choice.choose(profile, choice.evaluate(profile, CURVE, seed=1))
    assert choice.as_stack_scaling(profile, chosen) == targets.RECOMMENDED[stack]


def test_make_simulate_reports_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = choice.profiles()["pr"]
    outcomes = choice.evaluate(profile, CURVE, seed=1)
    chosen: simulate.Chosen = {"pr": (profile, choice.choose(profile, outcomes), outcomes)}
    assert simulate.drift(chosen) == []
    wrong = dataclasses.replace(targets.RECOMMENDED["pr"], scale_to_zero=False)
    monkeypatch.setitem(targets.RECOMMENDED, "pr", wrong)
    assert simulate.drift(chosen)[0].startswith("pr: RECOMMENDED has")


def test_the_cpu_policy_simulated_is_the_one_deployed() -> None:
    # infra/k8s/pod.py ContainerResources and infra/environments.py hpaTargetCpuUtilization.
    cpu = next(p for p in choice.policy_set(100.0, 1, 3, CURVE) if p.name == "cpu-hpa")
    assert cpu.cpu_request_cores == float(ContainerResources().cpu_request.removesuffix("m")) / 1000
    assert cpu.cpu_target_utilization * 100 == COMMON_DEFAULTS["hpaTargetCpuUtilization"]


@pytest.mark.parametrize("stack", ["prod", "staging", "dev", "pr"])
def test_stack_profiles_use_each_environments_replica_ceiling(stack: str) -> None:
    defaults = ENVIRONMENT_DEFAULTS[Environment(stack)]
    assert choice.profiles()[stack].max_replicas == defaults["hpaMaxReplicas"]
