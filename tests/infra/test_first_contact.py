"""What the first real `pulumi up` in an account would hit: access, capacity, pins, fixed names."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from infra.aws.eks_versions import CALENDAR, CLUSTER_AUTOSCALER, creatable
from infra.components.cluster_rbac import workload_deployer_rules
from tests.stack_inventory import Inventory
from tools.plan import config_file, read_stack_config, run_program


def _plural(kind: str) -> str:
    """The REST resource name of a kind (NetworkPolicy -> networkpolicies)."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


def test_the_workload_deployer_role_covers_every_kind_a_pr_stack_creates(
    stack_run: Callable[[str], Inventory],
) -> None:
    """pr stacks run with the workload-deployers group only: each object kind needs a rule."""
    granted = {
        (group, resource)
        for rule in workload_deployer_rules()
        if "create" in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    declared = set()
    for r in stack_run("pr-123").registrations:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm"):
            continue
        _, api, kind = r.type.split(":")
        group = api.rsplit("/", 1)[0] if "/" in api else ""
        group = "" if group == "core" else group
        declared.add((group, _plural(kind)))
    assert declared, "the pr stack declares Kubernetes objects"
    assert declared <= granted, declared - granted


def test_a_pr_stack_that_would_wait_for_gpus_is_refused_at_plan_time(
    stack_run: Callable[[str], Inventory],
) -> None:
    dev = stack_run("dev").run
    assert dev.outputs["prGpuSlots"] == 2
    starved = dev.__class__(
        stack="dev",
        registrations=dev.registrations,
        outputs={**dev.outputs, "prGpuSlots": 1},
        secret_outputs=dev.secret_outputs,
    )
    with pytest.raises(Exception, match=r"needs 2 GPU\(s\).*prGpuSlots = 1"):
        run_program("pr-7", referenced={"organization/torch-eks-inference/dev": starved})
    # The CPU image needs no GPU and plans on the same cluster.
    values, secrets = read_stack_config(config_file("pr-7"))
    values["torch-eks-inference:imageVariant"] = "cpu"
    run_program(
        "pr-7",
        config=values,
        secret_keys=secrets,
        referenced={"organization/torch-eks-inference/dev": starved},
    )


def test_every_offered_version_has_an_autoscaler_pin_of_its_own_minor() -> None:
    for release in CALENDAR:
        if release.version in CLUSTER_AUTOSCALER:
            chart, image = CLUSTER_AUTOSCALER[release.version]
            assert image.startswith(f"v{release.version}."), release.version
            assert chart.startswith("9.")
    from datetime import date

    assert creatable(date(2026, 12, 1)) == ("1.32", "1.33", "1.34", "1.35")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_fixed_name_resources_are_deleted_before_they_are_replaced(stack: str) -> None:
    """Create-before-delete (Pulumi's default) collides on a fixed physical name.

    Access entries (one per principal per cluster), and Kubernetes objects with a fixed
    metadata.name must go first; anything else should be auto-named.
    """
    values, secrets = read_stack_config(config_file(stack))
    values["torch-eks-inference:adminRoleArns"] = json.dumps([])
    run = run_program(stack, config=values, secret_keys=secrets)
    unique_per_cluster = (
        "aws:eks/accessEntry:AccessEntry",  # one per principal
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",  # one per namespace + SA
    )
    found = [r for r in run.registrations if r.type in unique_per_cluster]
    assert {r.type for r in found} == set(unique_per_cluster)
    assert all(r.delete_before_replace for r in found), [
        r.name for r in found if not r.delete_before_replace
    ]
