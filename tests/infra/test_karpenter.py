"""``nodeProvisioner: karpenter``: the GPU pool, its interruption handling and the controller's IAM.

Sources: Karpenter v1 NodePool and EC2NodeClass (https://karpenter.sh/docs/concepts/nodepools/,
https://karpenter.sh/docs/concepts/nodeclasses/); the interruption queue, its four EventBridge
rules and the controller's permissions from aws/karpenter-provider-aws
website/content/en/docs/getting-started/getting-started-with-karpenter/cloudformation.yaml;
Karpenter's Kubernetes support per release from https://endoflife.date/karpenter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.aws.eks_versions import CLUSTER_AUTOSCALER
from infra.components.cluster import GPU_NODE_LABELS, GPU_TAINT_KEY
from infra.components.karpenter import KARPENTER_SERVICE_ACCOUNT, karpenter_chart_version
from infra.config import load_stack_config
from infra.k8s.karpenter_spec import INTERRUPTION_EVENTS
from tests.stack_inventory import Inventory, policy
from tools import manifests
from tools.plan import config_file, read_stack_config, run_program

P = "torch-eks-inference"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


def _karpenter(stack: str) -> Inventory:
    values, secret_keys = read_stack_config(config_file(stack))
    values = dict(values)
    values[f"{P}:nodeProvisioner"] = "karpenter"
    values.pop(f"{P}:gpuNodeMin", None)  # the environment default applies when unset
    return Inventory(run_program(stack, config=values, secret_keys=secret_keys), 0.0)


@pytest.fixture(scope="module")
def staging() -> Inventory:
    """staging (SPOT, g5/g6 xlarge) with Karpenter."""
    return _karpenter("staging")


@pytest.fixture(scope="module")
def prod() -> Inventory:
    """prod (ON_DEMAND) with Karpenter."""
    return _karpenter("prod")


def out(inv: Inventory, type_: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in inv.of_type(type_) if r.name == name]
    return dict(found.outputs)


def test_one_pool_one_provisioner(staging: Inventory) -> None:
    groups = [r.name for r in staging.of_type("aws:eks/nodeGroup:NodeGroup")]
    assert groups == ["cluster-system"]  # no managed GPU group for cluster-autoscaler to size
    assert not [r for r in staging.of_type("aws:autoscaling/tag:Tag") if "gpu" in r.name]
    labels = staging.one(NODE_POOL)["spec"]["template"]["metadata"]["labels"]
    system = staging.one("aws:eks/nodeGroup:NodeGroup")["labels"]
    assert labels == dict(GPU_NODE_LABELS)
    assert labels.items() != system.items()
    # The workload's nodeSelector lands on the NodePool's nodes.
    pod = staging.one("kubernetes:apps/v1:Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"].items() <= labels.items()


def test_node_pool_types_capacity_mix_consolidation_and_cap(
    staging: Inventory, prod: Inventory
) -> None:
    spec = staging.one(NODE_POOL)["spec"]
    requirements = {r["key"]: r for r in spec["template"]["spec"]["requirements"]}
    assert requirements["node.kubernetes.io/instance-type"]["values"] == ["g5.xlarge", "g6.xlarge"]
    assert requirements["karpenter.sh/capacity-type"]["values"] == ["spot", "on-demand"]
    assert requirements["kubernetes.io/arch"]["values"] == ["amd64"]
    assert spec["disruption"] == {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": "300s",
    }
    values, _ = read_stack_config(config_file("staging"))
    gpu_node_max = load_stack_config("staging", values).gpu_node_max
    assert spec["limits"] == {"nvidia.com/gpu": str(gpu_node_max)}  # gpuNodeMax x 1 GPU (xlarge)
    (taint,) = spec["template"]["spec"]["taints"]
    assert (taint["key"], taint["effect"]) == (GPU_TAINT_KEY, "NoSchedule")
    prod_types = {r["key"]: r for r in prod.one(NODE_POOL)["spec"]["template"]["spec"][
        "requirements"]}  # fmt: skip
    assert prod_types["karpenter.sh/capacity-type"]["values"] == ["on-demand"]


def test_node_class_is_al2023_imdsv2_with_an_encrypted_root(staging: Inventory) -> None:
    spec = staging.one(NODE_CLASS)["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (root,) = spec["blockDeviceMappings"]
    assert root["rootVolume"] is True
    assert root["ebs"]["encrypted"] is True
    assert root["ebs"]["volumeType"] == "gp3"
    assert root["ebs"]["kmsKeyID"] == out(staging, "aws:kms/key:Key", "cluster-secrets-key")["arn"]
    assert spec["role"] == out(staging, "aws:iam/role:Role", "karpenter-node-role")["name"]
    private = {r.id for r in staging.of_type("aws:ec2/subnet:Subnet") if "private" in r.name}
    assert {t["id"] for t in spec["subnetSelectorTerms"]} == private
    sg = out(staging, "aws:eks/cluster:Cluster", "cluster-eks")["vpcConfig"]
    assert spec["securityGroupSelectorTerms"] == [{"id": sg["clusterSecurityGroupId"]}]


def test_interruption_queue_gets_the_four_event_kinds(staging: Inventory) -> None:
    queue = staging.one("aws:sqs/queue:Queue")
    assert queue["sqsManagedSseEnabled"] is True
    assert queue["messageRetentionSeconds"] == 300
    queue_arn = out(staging, "aws:sqs/queue:Queue", "karpenter-interruptions")["arn"]
    patterns = {
        (p["source"][0], p["detail-type"][0])
        for p in (json.loads(r.inputs["eventPattern"]) for r in staging.of_type(
            "aws:cloudwatch/eventRule:EventRule"))
    }  # fmt: skip
    assert patterns == {(source, detail) for _, source, detail in INTERRUPTION_EVENTS}
    targets = staging.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 4
    assert {t.inputs["arn"] for t in targets} == {queue_arn}
    queue_policy = policy(staging.one("aws:sqs/queuePolicy:QueuePolicy"))
    allow, deny = queue_policy["Statement"]
    assert allow["Principal"]["Service"] == ["events.amazonaws.com", "sqs.amazonaws.com"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    release = staging.one("kubernetes:helm.sh/v3:Release", "karpenter-release")
    assert release["values"]["settings"]["interruptionQueue"] == queue["name"]


def test_controller_identity_is_pod_identity_with_scoped_permissions(staging: Inventory) -> None:
    association = staging.one(
        "aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-controller"
    )
    assert (association["namespace"], association["serviceAccount"]) == (
        "kube-system",
        KARPENTER_SERVICE_ACCOUNT,
    )
    release = staging.one("kubernetes:helm.sh/v3:Release", "karpenter-release")
    assert release["values"]["serviceAccount"]["name"] == KARPENTER_SERVICE_ACCOUNT
    statements = {
        s["Sid"]: s
        for s in policy(
            staging.one("aws:iam/rolePolicy:RolePolicy", "karpenter-controller-policy")
        )["Statement"]
    }
    node_role = out(staging, "aws:iam/role:Role", "karpenter-node-role")["arn"]
    assert statements["PassOnlyTheNodeRole"]["Resource"] == node_role
    assert (
        statements["InterruptionQueue"]["Resource"]
        == out(staging, "aws:sqs/queue:Queue", "karpenter-interruptions")["arn"]
    )
    owned = statements["EndOwnNodesOnly"]["Condition"]["StringEquals"]
    assert owned == {"aws:ResourceTag/kubernetes.io/cluster/torch-eks-inference-staging": "owned"}
    entry = staging.one("aws:eks/accessEntry:AccessEntry", "karpenter-node-access")
    assert entry["type"] == "EC2_LINUX"
    assert entry["principalArn"] == node_role


def test_karpenter_objects_pass_the_structural_checks(staging: Inventory) -> None:
    resources, version = manifests.program_resources("staging", staging.run)
    docs = manifests.documents(resources)
    assert {"NodePool", "EC2NodeClass"} <= {d["kind"] for d in docs}
    assert manifests.validate_documents(docs, version) == []


def test_karpenter_chart_pinned_per_supported_minor() -> None:
    # Every minor the program pins add-ons for (infra/aws/eks_versions.py) has a Karpenter pin too.
    for minor in CLUSTER_AUTOSCALER:
        assert karpenter_chart_version(minor)
    with pytest.raises(ValueError, match="no Karpenter chart pinned"):
        karpenter_chart_version("1.28")
