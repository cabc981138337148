"""The preview-free plan: inventory format, determinism, secret masking and the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.stack_inventory import Inventory
from tools import plan


def test_inventory_is_sorted_masked_and_json_ready(stack_run: Callable[[str], Inventory]) -> None:
    entries = plan.inventory(stack_run("dev").run)
    keys = [(e["type"], e["name"], e["parent"] or "") for e in entries]
    assert keys == sorted(keys)
    assert all(
        set(e) == {"type", "name", "parent", "urn", "aliases", "component", "protect", "inputs"}
        for e in entries
    )
    text = json.dumps(entries, sort_keys=True)
    assert "4dabf18193072939515e22adb298388d" not in text  # no raw secret markers
    by_name = {e["name"]: e for e in entries if not e["component"]}
    components = {(e["type"].rsplit(":", 1)[-1], e["name"]): e for e in entries if e["component"]}
    assert by_name["api-key-version"]["inputs"]["secretString"] == plan.MASK
    assert by_name["k8s"]["inputs"]["kubeconfig"] == plan.MASK
    assert by_name["cluster-eks"]["parent"] == "cluster"
    assert components["Cluster", "cluster"]["parent"] is None
    assert components["ControlPlane", "cluster"]["parent"] == "cluster"


def test_no_secret_value_reaches_the_inventory(stack_run: Callable[[str], Inventory]) -> None:
    inv = stack_run("dev")
    password = next(r for r in inv.registrations if r.type.startswith("random:"))
    generated = password.outputs["result"]["value"]
    assert generated not in json.dumps(plan.inventory(inv.run))


def test_two_runs_give_the_same_inventory() -> None:
    first = plan.collect("staging")
    second = plan.collect("staging")
    assert first == second


def test_json_output_of_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "pr", "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["type"] for e in entries} >= {
        "pulumi:pulumi:StackReference",
        "docker:index/image:Image",
    }
    assert all(e["urn"].startswith("urn:pulumi:pr-123::torch-eks-inference::") for e in entries)


def test_table_output_of_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Stack prod: what `pulumi up` would declare")
    assert "aws:eks/nodeGroup:NodeGroup" in out
    assert 'capacityType="ON_DEMAND"' in out
    count = int(out.rstrip().rsplit("\n", 1)[1].split()[0])
    assert count == len(out.strip().splitlines()) - 5


def test_unknown_stack_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "qa"]) == 2
    err = capsys.readouterr().err
    assert "no stack file stacks/Pulumi.qa.yaml" in err
    assert "Pulumi.dev.yaml" in err


def test_bad_config_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  aws:region: us-west-2\n  torch-eks-inference:logRetentionDays: 10\n"
    )
    monkeypatch.setattr(plan, "STACKS_DIR", tmp_path)
    assert plan.main(["--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert "torch-eks-inference:logRetentionDays = 10: CloudWatch allows" in err


def test_secure_config_values_become_secret_placeholders(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(
        "config:\n"
        "  aws:region: eu-west-1\n"
        "  torch-eks-inference:apiKey:\n    secure: v1:abc:def\n"
        "  torch-eks-inference:gpuInstanceTypes: [g5.xlarge]\n"
        "  torch-eks-inference:deletionProtection: false\n"
    )
    values, secrets = plan.read_stack_config(path)
    assert values["torch-eks-inference:apiKey"] == plan.SECRET_PLACEHOLDER
    assert secrets == ["torch-eks-inference:apiKey"]
    assert values["torch-eks-inference:gpuInstanceTypes"] == '["g5.xlarge"]'
    assert values["torch-eks-inference:deletionProtection"] == "false"


def test_unreadable_stack_file_is_a_plan_error(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("config: [unclosed\n")
    with pytest.raises(plan.PlanError, match="not valid YAML"):
        plan.read_stack_config(path)


def test_a_run_after_asyncio_run_in_the_same_process_works() -> None:
    """``asyncio.run`` leaves the main thread without a loop; the SDK's mocks need one."""
    import asyncio

    async def nothing() -> None:
        return None

    asyncio.run(nothing())
    from tools.plan import run_program

    assert run_program("pr-123").registrations
