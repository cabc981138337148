"""The scaling keys: per-environment defaults, and a clear refusal of every bad combination."""

from __future__ import annotations

import importlib.util

import pytest

from infra.scaling_config import (
    SCALING_COMMON_DEFAULTS,
    SCALING_ENVIRONMENT_DEFAULTS,
    NodeProvisioner,
    ScaleToZero,
)
from tests.infra.test_config import load, one_problem, problems

PROD_OK = {"deletionProtection": True, "endpointPublicAccessCidrs": []}


def test_defaults_per_environment() -> None:
    dev = load("dev").scaling
    assert dev.scale_to_zero is ScaleToZero.OFF_HOURS
    assert dev.node_provisioner is NodeProvisioner.CLUSTER_AUTOSCALER
    assert (dev.latency_slo_ms, dev.target_in_flight, dev.target_queue_ms) == (100, 8, 25)
    assert load("staging").scaling.scale_to_zero is ScaleToZero.NEVER
    assert load("prod", **PROD_OK).scaling.scale_to_zero is ScaleToZero.NEVER
    pr = load("pr-7", environment="pr", clusterStack="dev").scaling
    assert pr.scale_to_zero is ScaleToZero.OFF_HOURS


def test_targets_and_window_are_tunable() -> None:
    cfg = load(
        "staging",
        latencySloMs=250,
        scalingTargetInFlight=32,
        scalingTargetQueueMs=60,
        scaleToZero="off-hours",
        workingHoursStart="30 7 * * 1-5",
        workingHoursEnd="0 18 * * 1-5",
        workingHoursTimezone="Europe/Berlin",
    ).scaling
    assert (cfg.latency_slo_ms, cfg.target_in_flight, cfg.target_queue_ms) == (250, 32, 60)
    assert cfg.working_hours_timezone == "Europe/Berlin"
    assert cfg.working_hours_start == "30 7 * * 1-5"


@pytest.mark.parametrize(
    ("stack", "values", "key", "fragment"),
    [
        ("prod", {**PROD_OK, "scaleToZero": "off-hours"}, "scaleToZero", "prod keeps"),
        ("dev", {"scaleToZero": "off"}, "scaleToZero", "must be one of never, off-hours"),
        ("dev", {"scalingTargetQueueMs": 100}, "scalingTargetQueueMs", "below latencySloMs"),
        ("dev", {"scalingTargetInFlight": 0}, "scalingTargetInFlight", "from 1 to 1024"),
        ("dev", {"workingHoursStart": "8am"}, "workingHoursStart", "five-field cron"),
        ("dev", {"workingHoursTimezone": "CEST"}, "workingHoursTimezone", "IANA time zone"),
        ("dev", {"nodeProvisioner": "fargate"}, "nodeProvisioner", "cluster-autoscaler"),
        # scale to zero with a GPU group that may not shrink to zero would keep paying for it
        ("dev", {"gpuNodeMin": 1}, "gpuNodeMin", "must be allowed to follow"),
        # one pool, one provisioner
        ("dev", {"nodeProvisioner": "karpenter", "gpuNodeMin": 0}, "gpuNodeMin", "karpenter"),
        (
            "pr-4",
            {"environment": "pr", "clusterStack": "dev", "nodeProvisioner": "karpenter"},
            "nodeProvisioner",
            "not allowed on pr stacks",
        ),
    ],
)
def test_bad_combinations_name_the_key(
    stack: str, values: dict[str, object], key: str, fragment: str
) -> None:
    message = one_problem(stack, **values)
    assert f"torch-eks-inference:{key}" in message
    assert fragment in message


def test_karpenter_without_node_group_sizes_loads() -> None:
    cfg = load("staging", nodeProvisioner="karpenter")
    assert cfg.scaling.node_provisioner is NodeProvisioner.KARPENTER


def test_problems_are_collected_together() -> None:
    found = problems("dev", scaleToZero="sometimes", workingHoursTimezone="Mars/Base")
    assert len(found) == 2


def test_defaults_match_the_simulation_when_it_exports_them() -> None:
    """The README says the defaults come from `make simulate`; hold it to that."""
    if importlib.util.find_spec("benchmarks.scaling_targets") is None:
        pytest.skip("benchmarks/scaling_targets.py (the simulation's export) is not here yet")
    from benchmarks import scaling_targets

    exported = getattr(scaling_targets, "STACK_DEFAULTS", None)
    if exported is None:
        pytest.skip("benchmarks.scaling_targets exports no STACK_DEFAULTS mapping")
    for environment, values in exported.items():
        ours = {**SCALING_COMMON_DEFAULTS, **SCALING_ENVIRONMENT_DEFAULTS[environment]}
        for key, value in values.items():
            assert ours[key] == value, (environment, key)
