"""The rendered Kubernetes objects of every stack: schema-valid for the cluster's version, and
clean under checkov (each skip carrying its reason in place)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack_inventory import STACKS, Inventory
from tools import manifests
from tools.manifests import RecordedResource

EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Deployment",
    "Service",
    # KEDA creates the HPA in the cluster from the ScaledObject.
    "ScaledObject",
    "TriggerAuthentication",
    "PodDisruptionBudget",
    "NetworkPolicy",
}


@pytest.fixture(scope="module")
def rendered(
    stack_run: Callable[[str], Inventory],
) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """Documents and Kubernetes version of each stack, from the session's program runs."""
    result = {}
    for stack in STACKS:
        resources, version = manifests.program_resources(stack, stack_run(stack).run)
        result[stack] = (manifests.documents(resources), version)
    return result


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_renders_the_workload_objects(
    rendered: dict[str, tuple[list[dict[str, Any]], str]], stack: str
) -> None:
    docs, _ = rendered[stack]
    # Clusters also bind the workload-deployer ClusterRole (pr stacks own no cluster objects).
    cluster_rbac = set() if stack.startswith("pr-") else {"ClusterRole", "ClusterRoleBinding"}
    assert {d["kind"] for d in docs} == EXPECTED_KINDS | cluster_rbac
    assert docs[0]["kind"] == "Namespace"
    image = deployment(docs)["spec"]["template"]["spec"]["containers"][0]["image"]
    manifests_image_is_digest = "@sha256:" in image and ":latest" not in image
    assert manifests_image_is_digest, image


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_validates_against_its_cluster_version(
    rendered: dict[str, tuple[list[dict[str, Any]], str]], stack: str
) -> None:
    docs, version = rendered[stack]
    assert manifests.schema_version(version).startswith(version)
    assert manifests.validate_documents(docs, version) == []


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_reaches_a_manifest(
    rendered: dict[str, tuple[list[dict[str, Any]], str]], stack: str
) -> None:
    docs, _ = rendered[stack]
    text = yaml.safe_dump_all(docs)
    # The plan masks every secret value as "[secret]"; none may end up in a Kubernetes object.
    assert "[secret]" not in text
    assert "plan-placeholder-secret-value" not in text


def test_unknown_fields_and_wrong_types_fail_validation(
    rendered: dict[str, tuple[list[dict[str, Any]], str]],
) -> None:
    docs, version = rendered["dev"]
    broken = copy.deepcopy(deployment(docs))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = "Always"
    container["ports"][0]["containerPort"] = "eighty"
    errors = manifests.validate_documents([broken], version)
    assert len(errors) == 1
    assert errors[0].document == manifests.document_id(broken)


def test_validation_follows_the_cluster_version(
    rendered: dict[str, tuple[list[dict[str, Any]], str]],
) -> None:
    # The preStop sleep action entered the API in 1.29 (on by default from 1.30): a 1.28
    # cluster would reject the Deployment, and the schemas of 1.28 say so.
    docs, _ = rendered["dev"]
    (error,) = manifests.validate_documents([deployment(docs)], "1.28")
    assert "lifecycle.preStop" in error.path
    assert "sleep" in error.message


def test_a_version_without_schemas_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no schemas for Kubernetes 1\.99.*ships"):
        manifests.schema_version("1.99")


def test_a_resource_without_a_name_cannot_be_rendered() -> None:
    resource = RecordedResource(
        "kubernetes:core/v1:ConfigMap", "cm", {"apiVersion": "v1", "kind": "ConfigMap"}
    )
    with pytest.raises(ValueError, match="missing metadata"):
        manifests.to_document(resource)


def test_non_objects_are_not_rendered() -> None:
    assert not manifests.is_kubernetes_object("kubernetes:helm.sh/v3:Release")
    assert not manifests.is_kubernetes_object("pulumi:providers:kubernetes")
    assert not manifests.is_kubernetes_object("aws:eks/cluster:Cluster")
    assert manifests.is_kubernetes_object("kubernetes:apps/v1:Deployment")


def test_cli_writes_one_file_per_object_and_exits_zero(tmp_path: Path) -> None:
    stale = tmp_path / "left-over.yaml"
    stale.write_text("kind: Stale\n")
    assert manifests.main(["--stack", "staging", "--out", str(tmp_path), "--no-checkov"]) == 0
    files = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert "left-over.yaml" not in files
    assert len(files) == 13  # 9 workload objects, the deployer and the collector RBAC (2 + 2)
    assert "inference.deployment.inference.yaml" in files
    loaded = yaml.safe_load((tmp_path / "inference.deployment.inference.yaml").read_text())
    assert loaded["kind"] == "Deployment"


def test_cli_refuses_an_unknown_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert manifests.main(["--stack", "qa", "--out", str(tmp_path), "--no-checkov"]) == 2
    assert "qa" in capsys.readouterr().err


@pytest.fixture(scope="module")
def checkov() -> Path:
    if manifests.DEFAULT_CHECKOV.exists():
        return manifests.DEFAULT_CHECKOV
    reason = f"checkov is not installed at {manifests.DEFAULT_CHECKOV} (run `make venv`)"
    if os.environ.get("REQUIRE_CHECKOV") == "1":
        pytest.fail(f"REQUIRE_CHECKOV=1 but {reason}")
    pytest.skip(reason)


def test_checkov_passes_every_stack_and_catches_a_weakened_pod(
    rendered: dict[str, tuple[list[dict[str, Any]], str]], checkov: Path, tmp_path: Path
) -> None:
    # One checkov run (it takes seconds to start) over every stack plus one deliberately weakened
    # Deployment, which must fail: proof the scan is live, not vacuously green.
    for stack, (docs, _) in rendered.items():
        manifests.write_documents(docs, tmp_path / stack)
    weak = copy.deepcopy(deployment(rendered["dev"][0]))
    weak["metadata"]["namespace"] = "weakened"
    pod = weak["spec"]["template"]["spec"]
    del pod["securityContext"]
    container = pod["containers"][0]
    container["securityContext"] = {"privileged": True, "allowPrivilegeEscalation": True}
    container["image"] = container["image"].split("@")[0] + ":latest"
    manifests.write_documents([weak], tmp_path / "weakened")

    report = manifests.run_checkov(tmp_path, checkov)

    weakened = [f for f in report.failed if "/weakened/" in f.file]
    ours = [f for f in report.failed if "/weakened/" not in f.file]
    assert ours == []
    failed_ids = {f.check_id for f in weakened}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_43"} <= failed_ids
    assert report.passed > 0
    for skipped in report.skipped:
        assert skipped.reason, f"{skipped.check_id} skipped without a reason"


def test_cli_renders_a_karpenter_stack_with_overrides(tmp_path: Path) -> None:
    """`make manifests STACK=staging SET="nodeProvisioner=karpenter gpuNodeMin="`."""
    argv = ["--stack", "staging", "--out", str(tmp_path), "--no-checkov"]
    argv += ["--set", "nodeProvisioner=karpenter", "--set", "gpuNodeMin="]
    assert manifests.main(argv) == 0
    files = {p.name for p in tmp_path.glob("*.yaml")}
    assert {"_cluster.nodepool.gpu.yaml", "_cluster.ec2nodeclass.gpu.yaml"} <= files
    # With gpuNodeMin set the config refuses the mix (one pool, one provisioner): exit 2.
    mixed = ["--stack", "staging", "--out", str(tmp_path), "--no-checkov"]
    assert (
        manifests.main([*mixed, "--set", "nodeProvisioner=karpenter", "--set", "gpuNodeMin=0"]) == 2
    )
