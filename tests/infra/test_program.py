"""The whole Pulumi program under mocks, once per shipped stack file: the properties that matter."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.components.addons import AUTOSCALER_MUTATING_ACTIONS, NODE_ADDONS, NODELESS_ADDONS
from infra.components.cluster import (
    ACCELERATOR_LABEL,
    CONTROL_PLANE_LOG_TYPES,
    GPU_NODE_LABELS,
    NODE_TEMPLATE_PREFIX,
    WORKLOAD_DEPLOYERS_GROUP,
)
from infra.components.workload import EXPIRY_ANNOTATION
from tests.stack_inventory import Inventory, policy
from tools.mocks import ACCOUNT_ID, DEPLOYER_ROLE, runner
from tools.plan import SAMPLE_EXPIRES_AT

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
KMS_KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
REPOSITORY = "aws:ecr/repository:Repository"
IMAGE = "docker:index/image:Image"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
SECRET = "aws:secretsmanager/secret:Secret"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
ASG_TAG = "aws:autoscaling/tag:Tag"
ADDON = "aws:eks/addon:Addon"
RELEASE = "kubernetes:helm.sh/v3:Release"

RETENTION = {"dev": 7, "staging": 30, "prod": 365, "pr-123": 3}
HPA_BOUNDS = {"dev": (1, 2), "staging": (1, 3), "prod": (2, 6), "pr-123": (1, 1)}
CAPACITY = {"dev": "SPOT", "staging": "SPOT", "prod": "ON_DEMAND"}
#: (min, desired, max) of the first GPU family's group: desired = min, so `up` never waits on
#: spot capacity or quota for nodes no pod asked for.
GPU_SCALING = {"dev": (0, 0, 5), "staging": (0, 0, 4), "prod": (2, 2, 7)}
GPU_FAMILIES = {"dev": ("g5", "g6", "g4dn"), "staging": ("g5", "g6"), "prod": ("g5",)}
ACCELERATORS = {"g5": "nvidia-a10g", "g6": "nvidia-l4", "g4dn": "nvidia-tesla-t4"}
SUPPORT_TYPE = {"dev": "STANDARD", "staging": "STANDARD", "prod": "EXTENDED"}
AZS = {"dev": 2, "staging": 2, "prod": 3}
NATS = {"dev": 1, "staging": 1, "prod": 3}


def stack_of(inv: Inventory) -> str:
    return inv.run.stack


def outputs_of(inv: Inventory, type_: str, name: str) -> dict[str, Any]:
    found = [r for r in inv.of_type(type_) if r.name == name]
    assert len(found) == 1
    return dict(found[0].outputs)


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any, bool]]:
    """Every leaf of ``value`` with its path and whether it sits inside a secret."""

    def go(node: Any, where: str, secret: bool) -> Iterator[tuple[str, Any, bool]]:
        if runner.is_secret(node):
            yield from go(node["value"], where, True)
        elif isinstance(node, dict):
            for key, child in node.items():
                yield from go(child, f"{where}.{key}", secret)
        elif isinstance(node, list | tuple):
            for index, child in enumerate(node):
                yield from go(child, f"{where}[{index}]", secret)
        else:
            yield where, node, secret

    yield from go(value, path, False)


# ------------------------------------------------------------------ cluster


def test_kubernetes_secrets_are_envelope_encrypted_with_a_rotating_key(
    long_lived: Inventory,
) -> None:
    cluster = long_lived.one(CLUSTER)
    key_arn = outputs_of(long_lived, KMS_KEY, "cluster-secrets-key")["arn"]
    assert cluster["encryptionConfig"] == {
        "provider": {"keyArn": key_arn},
        "resources": ["secrets"],
    }
    assert key_arn.startswith(f"arn:aws:kms:us-west-2:{ACCOUNT_ID}:key/")
    assert long_lived.one(KMS_KEY, "cluster-secrets-key")["enableKeyRotation"] is True


def test_cluster_role_may_use_only_the_secrets_key(long_lived: Inventory) -> None:
    key_arn = outputs_of(long_lived, KMS_KEY, "cluster-secrets-key")["arn"]
    document = policy(long_lived.one(ROLE_POLICY, "cluster-cluster-kms"))
    assert document["Statement"] == [
        {
            "Sid": "EnvelopeEncryptionOfSecrets",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
            "Resource": key_arn,
        }
    ]
    cluster = next(r for r in long_lived.of_type(CLUSTER))
    grant = next(r for r in long_lived.of_type(ROLE_POLICY) if r.name == "cluster-cluster-kms")
    assert grant.urn in cluster.dependencies


def test_every_control_plane_log_type_goes_to_a_group_created_first(long_lived: Inventory) -> None:
    cluster = next(r for r in long_lived.registrations if r.type == CLUSTER)
    assert cluster.inputs["enabledClusterLogTypes"] == list(CONTROL_PLANE_LOG_TYPES)
    assert set(CONTROL_PLANE_LOG_TYPES) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    group = next(r for r in long_lived.registrations if r.name == "cluster-control-plane-logs")
    assert group.inputs["name"] == f"/aws/eks/torch-eks-inference-{stack_of(long_lived)}/cluster"
    assert group.inputs["retentionInDays"] == RETENTION[stack_of(long_lived)]
    assert group.inputs["kmsKeyId"] == outputs_of(long_lived, KMS_KEY, "cluster-logs-key")["arn"]
    # EKS would create the group itself (no retention, no KMS) if the cluster came first.
    assert group.urn in cluster.dependencies


def test_api_endpoint_is_private_plus_an_allow_list(long_lived: Inventory) -> None:
    vpc = long_lived.one(CLUSTER)["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is True
    expected = ["0.0.0.0/0"] if stack_of(long_lived) == "dev" else ["198.51.100.0/24"]
    assert vpc["publicAccessCidrs"] == expected
    if stack_of(long_lived) in ("staging", "prod"):
        assert "0.0.0.0/0" not in vpc["publicAccessCidrs"]


def test_access_entries_come_only_from_config_each_with_its_least_scope(
    long_lived: Inventory,
) -> None:
    stack = stack_of(long_lived)
    access = long_lived.one(CLUSTER)["accessConfig"]
    assert access == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/"
    entries = {
        r.inputs["principalArn"]: r.inputs
        for r in long_lived.of_type("aws:eks/accessEntry:AccessEntry")
        # The AMP collector's own entry (tests/infra/test_autoscaling.py) is not a person's.
        if r.parent_name != "metrics"
    }
    policies: dict[str, set[str]] = {}
    for r in long_lived.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        assert r.inputs["accessScope"] == {"type": "cluster"}
        assert r.inputs["policyArn"].startswith("arn:aws:eks::aws:cluster-access-policy/")
        policies.setdefault(r.inputs["principalArn"], set()).add(
            r.inputs["policyArn"].rsplit("/")[-1]
        )
    expected = {
        role + "platform-admin": ({"AmazonEKSClusterAdminPolicy"}, None),
        role + DEPLOYER_ROLE: ({"AmazonEKSClusterAdminPolicy"}, None),
        # A server-side dry run needs write verbs: view + the workload-deployer group.
        role + f"github-preview-{stack}": ({"AmazonEKSViewPolicy"}, [WORKLOAD_DEPLOYERS_GROUP]),
    }
    if stack == "dev":
        # pr stacks create namespaces and their workload: the group only, no access policy.
        expected[role + "github-ephemeral"] = (set(), [WORKLOAD_DEPLOYERS_GROUP])
    assert set(entries) == set(expected)
    for principal, (wanted, groups) in expected.items():
        assert policies.get(principal, set()) == wanted, principal
        assert entries[principal].get("kubernetesGroups") == groups, principal
        assert entries[principal]["type"] == "STANDARD"


def test_whoever_runs_up_gets_no_implicit_access() -> None:
    """A laptop `up` then a CI `up` must not swap the cluster's admin: no caller-derived entry."""
    from tools.plan import config_file, read_stack_config, run_program

    values, secret_keys = read_stack_config(config_file("staging"))
    values["torch-eks-inference:deployRoleArns"] = json.dumps(
        [f"arn:aws:iam::{ACCOUNT_ID}:role/ci-deploy"]
    )
    run = Inventory(run_program("staging", config=values, secret_keys=secret_keys), 0.0)
    principals = {r.inputs["principalArn"] for r in run.of_type("aws:eks/accessEntry:AccessEntry")}
    # The mocks' caller is PulumiDeployer; it is no longer listed, so it has no entry.
    assert f"arn:aws:iam::{ACCOUNT_ID}:role/{DEPLOYER_ROLE}" not in principals
    assert f"arn:aws:iam::{ACCOUNT_ID}:role/ci-deploy" in principals


def test_cluster_version_is_pinned(long_lived: Inventory) -> None:
    cluster = long_lived.one(CLUSTER)
    assert cluster["version"] == "1.35"
    assert cluster["upgradePolicy"] == {"supportType": SUPPORT_TYPE[stack_of(long_lived)]}
    gpu = long_lived.one(NODE_GROUP, "cluster-gpu-g5")
    assert gpu["version"] == "1.35"


@pytest.mark.parametrize("template", ["cluster-gpu-g5-lt", "cluster-system-lt"])
def test_nodes_require_imdsv2_one_hop_and_an_encrypted_gp3_root(
    long_lived: Inventory, template: str
) -> None:
    lt = long_lived.one(LAUNCH_TEMPLATE, template)
    assert lt["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
    }
    (device,) = lt["blockDeviceMappings"]
    ebs = device["ebs"]
    assert device["deviceName"] == "/dev/xvda"
    assert ebs["volumeType"] == "gp3"
    assert ebs["encrypted"] == "true"
    assert ebs["kmsKeyId"] == outputs_of(long_lived, KMS_KEY, "cluster-secrets-key")["arn"]


def test_one_gpu_node_group_per_family_tainted_labelled_and_sized(long_lived: Inventory) -> None:
    stack = stack_of(long_lived)
    groups = {r.name: r for r in long_lived.of_type(NODE_GROUP) if r.name.startswith("cluster-gpu")}
    assert sorted(groups) == sorted(f"cluster-gpu-{f}" for f in GPU_FAMILIES[stack])
    for index, family in enumerate(GPU_FAMILIES[stack]):
        record = groups[f"cluster-gpu-{family}"]
        gpu = record.inputs
        assert gpu["amiType"] == "AL2023_x86_64_NVIDIA"
        assert gpu["taints"] == [
            {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
        ]
        assert gpu["labels"] == {**GPU_NODE_LABELS, ACCELERATOR_LABEL: ACCELERATORS[family]}
        assert gpu["capacityType"] == CAPACITY[stack]
        assert {t.split(".")[0] for t in gpu["instanceTypes"]} == {family}
        scaling = gpu["scalingConfig"]
        got = (scaling["minSize"], scaling["desiredSize"], scaling["maxSize"])
        low, _, high = GPU_SCALING[stack]
        # The minimum belongs to the preferred (first) family; the others scale from zero.
        assert got == (GPU_SCALING[stack] if index == 0 else (0, 0, high)), family
        assert scaling["desiredSize"] == scaling["minSize"] <= low
        (template,) = [
            r for r in long_lived.of_type(LAUNCH_TEMPLATE) if r.name == f"cluster-gpu-{family}-lt"
        ]
        assert gpu["launchTemplate"] == {"id": template.id, "version": "1"}


def test_system_node_group_is_on_demand_and_untainted(long_lived: Inventory) -> None:
    system = long_lived.one(NODE_GROUP, "cluster-system")
    assert system["capacityType"] == "ON_DEMAND"
    assert system["amiType"] == "AL2023_x86_64_STANDARD"
    assert not system.get("taints")
    assert system["scalingConfig"]["minSize"] >= 1


def test_empty_gpu_groups_advertise_their_nodes_to_the_autoscaler(long_lived: Inventory) -> None:
    tags_by_asg: dict[str, dict[str, str]] = {}
    for r in long_lived.of_type(ASG_TAG):
        assert r.inputs["tag"]["propagateAtLaunch"] is False
        tags_by_asg.setdefault(r.inputs["autoscalingGroupName"], {})[r.inputs["tag"]["key"]] = (
            r.inputs["tag"]["value"]
        )
    for family in GPU_FAMILIES[stack_of(long_lived)]:
        outputs = outputs_of(long_lived, NODE_GROUP, f"cluster-gpu-{family}")
        asg = outputs["resources"][0]["autoscalingGroups"][0]["name"]
        assert tags_by_asg[asg] == {
            f"{NODE_TEMPLATE_PREFIX}/label/workload-class": "gpu",
            f"{NODE_TEMPLATE_PREFIX}/label/nvidia.com/gpu.present": "true",
            f"{NODE_TEMPLATE_PREFIX}/label/{ACCELERATOR_LABEL}": ACCELERATORS[family],
            f"{NODE_TEMPLATE_PREFIX}/taint/nvidia.com/gpu": "true:NoSchedule",
            f"{NODE_TEMPLATE_PREFIX}/resources/nvidia.com/gpu": "1",
        }


def test_node_role_has_only_the_three_node_policies(long_lived: Inventory) -> None:
    attached = sorted(
        r.inputs["policyArn"]
        for r in long_lived.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.name.startswith("cluster-node-")
    )
    assert attached == [
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    ]
    trust = policy(long_lived.one(ROLE, "cluster-node-role"), "assumeRolePolicy")
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


# ------------------------------------------------------------------ network


def test_network_spans_the_stack_azs_with_its_nat_policy(long_lived: Inventory) -> None:
    stack = stack_of(long_lived)
    subnets = [r.inputs for r in long_lived.of_type("aws:ec2/subnet:Subnet")]
    public = [s for s in subnets if "kubernetes.io/role/elb" in s["tags"]]
    private = [s for s in subnets if "kubernetes.io/role/internal-elb" in s["tags"]]
    assert len(public) == len(private) == AZS[stack]
    assert len({s["availabilityZone"] for s in private}) == AZS[stack]
    cluster_tag = f"kubernetes.io/cluster/torch-eks-inference-{stack}"
    assert all(s["tags"][cluster_tag] == "shared" for s in subnets)
    assert all(s["mapPublicIpOnLaunch"] is False for s in subnets)
    nats = long_lived.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == NATS[stack]
    nat_ids = {r.id for r in nats}
    private_routes = [
        r.inputs["routes"][0]
        for r in long_lived.of_type("aws:ec2/routeTable:RouteTable")
        if "private" in r.name
    ]
    assert len(private_routes) == AZS[stack]
    assert {route["natGatewayId"] for route in private_routes} == nat_ids
    assert all(route["cidrBlock"] == "0.0.0.0/0" for route in private_routes)
    assert long_lived.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")["ingress"] == []


# ------------------------------------------------------------------ add-ons


def test_managed_addons_and_helm_releases(long_lived: Inventory) -> None:
    addons = {r.inputs["addonName"]: r for r in long_lived.of_type(ADDON)}
    assert set(addons) == set(NODELESS_ADDONS) | set(NODE_ADDONS)
    assert all(a.inputs["addonVersion"].startswith("v") for a in addons.values())
    cni = json.loads(addons["vpc-cni"].inputs["configurationValues"])
    assert cni == {"enableNetworkPolicy": "true"}
    cloudwatch = addons["amazon-cloudwatch-observability"]
    insights_groups = [
        r.urn for r in long_lived.of_type(LOG_GROUP) if "containerinsights" in r.inputs["name"]
    ]
    assert len(insights_groups) == 4
    assert set(insights_groups) <= set(cloudwatch.dependencies)
    (association,) = cloudwatch.inputs["podIdentityAssociations"]
    assert association["serviceAccount"] == "cloudwatch-agent"
    releases = {r.inputs["chart"]: r.inputs for r in long_lived.of_type(RELEASE)}
    assert set(releases) == {
        "nvidia-device-plugin",
        "cluster-autoscaler",
        "aws-load-balancer-controller",
        "keda",
    }
    autoscaler = releases["cluster-autoscaler"]["values"]
    assert (
        autoscaler["autoDiscovery"]["clusterName"] == f"torch-eks-inference-{stack_of(long_lived)}"
    )
    # cluster-autoscaler runs the cluster's minor version; 1.35 -> release cluster-autoscaler-1.35.0
    # (https://github.com/kubernetes/autoscaler/releases), chart 9.54.0 carries appVersion 1.35.0.
    assert autoscaler["image"]["tag"] == "v1.35.0"
    assert releases["cluster-autoscaler"]["version"] == "9.54.0"
    plugin = releases["nvidia-device-plugin"]["values"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in plugin[
        "tolerations"
    ]


def test_cluster_autoscaler_may_only_scale_this_clusters_groups(long_lived: Inventory) -> None:
    stack = stack_of(long_lived)
    document = policy(long_lived.one(ROLE_POLICY, "addons-cluster-autoscaler-policy"))
    mutating = [
        s
        for s in document["Statement"]
        if set(AUTOSCALER_MUTATING_ACTIONS)
        & set(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert len(mutating) == 1
    assert mutating[0]["Condition"] == {
        "StringEquals": {
            f"aws:ResourceTag/k8s.io/cluster-autoscaler/torch-eks-inference-{stack}": "owned"
        }
    }
    for statement in document["Statement"]:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all("*" not in action for action in actions)
    association = long_lived.one(POD_IDENTITY, "addons-cluster-autoscaler")
    assert (association["namespace"], association["serviceAccount"]) == (
        "kube-system",
        "cluster-autoscaler",
    )
    role = long_lived.one(ROLE, "addons-cluster-autoscaler-role")
    assert (
        association["roleArn"]
        == outputs_of(long_lived, ROLE, "addons-cluster-autoscaler-role")["arn"]
    )
    assert policy(role, "assumeRolePolicy")["Statement"][0]["Principal"] == {
        "Service": "pods.eks.amazonaws.com"
    }


# ------------------------------------------------------------------ registry and image


def test_only_dev_holds_the_delivery_registry(long_lived: Inventory) -> None:
    # One registry for every environment: CI pushes there once, staging and prod run its digests.
    has_registry = bool(long_lived.of_type(REPOSITORY))
    assert has_registry is (stack_of(long_lived) == "dev")
    assert ("ecrRepositoryUrl" in long_lived.run.outputs) is has_registry


def test_registry_scans_on_push_is_immutable_and_kms_encrypted(
    stack_run: Callable[[str], Inventory],
) -> None:
    long_lived = stack_run("dev")
    repo = long_lived.one(REPOSITORY)
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    # Immutable, except pr-* tags a reopened pull request or a retried `up` pushes again.
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [
        {"filter": "pr-*", "filterType": "WILDCARD"}
    ]
    key_arn = outputs_of(long_lived, KMS_KEY, "registry-key")["arn"]
    assert repo["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": key_arn}]
    # The images staging and prod run live here: destroying dev must not delete them.
    assert repo["forceDelete"] is False
    rules = json.loads(long_lived.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")["policy"])["rules"]
    assert [r["selection"]["tagStatus"] for r in rules] == ["untagged", "tagged"]
    assert rules[1]["selection"]["tagPrefixList"] == ["pr-"]


def test_pr_image_is_built_for_amd64_with_the_stack_variant_and_pushed_to_ecr(
    stack_run: Callable[[str], Inventory],
) -> None:
    pr = stack_run("pr-123")
    image = pr.one(IMAGE)
    build = image["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == "service/Dockerfile"
    assert build["platform"] == "linux/amd64"
    assert build["args"] == {"TORCH_VARIANT": "cuda"}
    repo_url = f"{ACCOUNT_ID}.dkr.ecr.us-west-2.amazonaws.com/torch-eks-inference/dev"
    repository, tag = image["imageName"].rsplit(":", 1)
    assert repository == repo_url
    assert tag.startswith("pr-123-cuda-")
    # The password makes the whole registry block secret.
    assert runner.is_secret(image["registry"])
    registry = runner.reveal(image["registry"])
    assert registry["server"] == f"https://{ACCOUNT_ID}.dkr.ecr.us-west-2.amazonaws.com"
    assert registry["username"] == "AWS"


def test_long_lived_stacks_never_build_and_run_the_configured_digest(
    long_lived: Inventory,
) -> None:
    from tools.plan import SAMPLE_IMAGE_REF

    assert long_lived.of_type(IMAGE) == []
    (container,) = long_lived.one(DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == SAMPLE_IMAGE_REF
    assert long_lived.run.outputs["imageRef"] == SAMPLE_IMAGE_REF
    assert long_lived.run.outputs["imageDigest"] == "sha256:" + "0" * 64


def test_pr_deployment_runs_the_pushed_digest(stack_run: Callable[[str], Inventory]) -> None:
    pr = stack_run("pr-123")
    digest = outputs_of(pr, IMAGE, "image-image")["repoDigest"]
    assert "@sha256:" in digest
    assert len(digest.rsplit(":", 1)[1]) == 64
    (container,) = pr.one(DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == digest
    assert pr.run.outputs["imageRef"] == digest


def test_a_long_lived_stack_without_image_ref_names_the_key_and_the_command() -> None:
    from infra.config import ConfigError
    from tools.plan import config_file, read_stack_config, run_program

    values, secret_keys = read_stack_config(config_file("staging"))
    values["torch-eks-inference:imageRef"] = ""
    with pytest.raises(ConfigError, match=r"imageRef is not set.*tools\.delivery\.deploy"):
        run_program("staging", config=values, secret_keys=secret_keys)
    values["torch-eks-inference:imageRef"] = "repo/torch:latest"
    with pytest.raises(ConfigError, match="an image by digest"):
        run_program("staging", config=values, secret_keys=secret_keys)


# ------------------------------------------------------------------ secrets


def test_pod_identity_role_reads_exactly_one_secret_with_one_key(any_stack: Inventory) -> None:
    secret_arn = outputs_of(any_stack, SECRET, "api-key-secret")["arn"]
    key_arn = outputs_of(any_stack, KMS_KEY, "api-key-key")["arn"]
    document = policy(any_stack.one(ROLE_POLICY, "api-key-reader-policy"))
    assert document["Statement"] == [
        {
            "Sid": "ReadTheApiKey",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arn,
        },
        {
            "Sid": "DecryptThroughSecretsManager",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key_arn,
            "Condition": {
                "StringEquals": {"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com"}
            },
        },
    ]
    # The reader role has nothing else attached.
    assert not [
        r
        for r in any_stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.name.startswith("api-key")
    ]
    assert [r.name for r in any_stack.of_type(ROLE_POLICY) if r.name.startswith("api-key")] == [
        "api-key-reader-policy"
    ]
    trust = policy(any_stack.one(ROLE, "api-key-reader-role"), "assumeRolePolicy")
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT_ID}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"].startswith(
        f"arn:aws:eks:us-west-2:{ACCOUNT_ID}:cluster/torch-eks-inference-"
    )


def test_pod_identity_binds_the_deployments_service_account(any_stack: Inventory) -> None:
    association = any_stack.one(POD_IDENTITY, "api-key-pod-identity")
    pod = any_stack.one(DEPLOYMENT)["spec"]["template"]
    namespace = any_stack.one("kubernetes:core/v1:Namespace")["metadata"]["name"]
    assert association["namespace"] == namespace
    assert association["serviceAccount"] == pod["spec"]["serviceAccountName"]
    assert association["roleArn"] == outputs_of(any_stack, ROLE, "api-key-reader-role")["arn"]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["API_KEY_SECRET_ARN"] == outputs_of(any_stack, SECRET, "api-key-secret")["arn"]
    # A pod created before its association exists never gets credentials: it must wait.
    (deployment,) = any_stack.of_type(DEPLOYMENT)
    (bound,) = [r for r in any_stack.of_type(POD_IDENTITY) if r.name == "api-key-pod-identity"]
    assert bound.urn in deployment.dependencies


def test_secret_is_kms_encrypted_and_its_value_always_secret(any_stack: Inventory) -> None:
    secret = any_stack.one(SECRET)
    assert secret["kmsKeyId"] == outputs_of(any_stack, KMS_KEY, "api-key-key")["arn"]
    version = any_stack.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert runner.is_secret(version["secretString"])


def test_no_secret_value_appears_in_plain_text_in_any_input(any_stack: Inventory) -> None:
    generated = outputs_of(any_stack, "random:index/randomPassword:RandomPassword", "api-key-value")
    secrets = {runner.reveal(generated["result"])}
    kubeconfig_inputs = any_stack.one("pulumi:providers:kubernetes")["kubeconfig"]
    assert runner.is_secret(kubeconfig_inputs)
    for image in any_stack.of_type(IMAGE):  # pr stacks only: they push with ECR credentials
        secrets.add(runner.reveal(image.inputs["registry"])["password"])
    assert all(len(s) >= 24 for s in secrets)
    leaks = [
        (r.type, r.name, path)
        for r in any_stack.registrations
        for path, leaf, inside_secret in walk(dict(r.inputs))
        if not inside_secret and isinstance(leaf, str) and any(s in leaf for s in secrets)
    ]
    assert leaks == []


def test_a_configured_api_key_never_appears_in_plain_text() -> None:
    from tools.plan import config_file, read_stack_config, run_program

    key = "configured-api-key-0123456789-abcdef"
    values, secret_keys = read_stack_config(config_file("dev"))
    values["torch-eks-inference:apiKey"] = key
    run = run_program(
        "dev", config=values, secret_keys=[*secret_keys, "torch-eks-inference:apiKey"]
    )
    assert not [r for r in run.registrations if r.type.startswith("random:")]
    version = next(r for r in run.registrations if r.type.endswith("secretVersion:SecretVersion"))
    assert version.inputs["secretString"] == runner.secret(key)
    leaks = [
        (r.type, r.name, path)
        for r in run.registrations
        for path, leaf, inside_secret in walk(dict(r.inputs))
        if not inside_secret and isinstance(leaf, str) and key in leaf
    ]
    assert leaks == []


# ------------------------------------------------------------------ per-stack settings


def test_every_log_group_has_the_stack_retention_and_a_kms_key(long_lived: Inventory) -> None:
    groups = long_lived.of_type(LOG_GROUP)
    assert len(groups) == 5  # control plane + four Container Insights groups
    for group in groups:
        assert group.inputs["retentionInDays"] == RETENTION[stack_of(long_lived)], group.name
        assert group.inputs["kmsKeyId"].startswith("arn:aws:kms:"), group.name


def test_scaling_bounds_per_stack(any_stack: Inventory) -> None:
    assert not any_stack.of_type(HPA)  # KEDA creates the HPA from the ScaledObject
    spec = any_stack.one(SCALED_OBJECT)["spec"]
    low, high = HPA_BOUNDS[stack_of(any_stack)]
    assert spec["maxReplicaCount"] == high
    cron = [t for t in spec["triggers"] if t["type"] == "cron"]
    if stack_of(any_stack) in ("dev", "pr-123"):  # scaleToZero: off-hours
        assert spec["minReplicaCount"] == 0
        assert cron[0]["metadata"]["desiredReplicas"] == str(low)
    else:
        assert (spec["minReplicaCount"], cron) == (low, [])


def test_prod_is_deletion_protected_and_dev_is_not(stack_run: Callable[[str], Inventory]) -> None:
    stateful = (CLUSTER, KMS_KEY, REPOSITORY, SECRET)
    prod, dev = stack_run("prod"), stack_run("dev")
    assert prod.one(CLUSTER)["deletionProtection"] is True
    assert dev.one(CLUSTER)["deletionProtection"] is False
    for type_ in stateful:
        assert all(r.protect for r in prod.of_type(type_) if "container-insights" not in r.name), (
            type_
        )
        assert not any(r.protect for r in dev.of_type(type_)), type_
    assert prod.one(SECRET)["recoveryWindowInDays"] == 30


def test_service_type_per_stack(any_stack: Inventory) -> None:
    service = any_stack.one("kubernetes:core/v1:Service")
    expected = "LoadBalancer" if stack_of(any_stack) in ("staging", "prod") else "ClusterIP"
    assert service["spec"]["type"] == expected


def test_every_taggable_aws_resource_carries_the_stack_tags(any_stack: Inventory) -> None:
    checked = 0
    for r in any_stack.registrations:
        if not r.type.startswith("aws:") or r.read:
            continue
        module, cls = r.type.split(":")[1].split("/")[0], r.type.rsplit(":", 1)[1]
        resource_class = getattr(importlib.import_module(f"pulumi_aws.{module}"), cls)
        if "tags" not in inspect.signature(resource_class._internal_init).parameters:
            continue
        tags = r.inputs.get("tags") or {}
        assert tags.get("stack") == stack_of(any_stack), (r.type, r.name)
        assert tags.get("managed-by") == "pulumi", (r.type, r.name)
        checked += 1
    assert checked >= 4


# ------------------------------------------------------------------ ephemeral stacks


def test_pr_stack_borrows_the_dev_cluster_and_owns_no_infrastructure(
    stack_run: Callable[[str], Inventory],
) -> None:
    pr = stack_run("pr-123")
    owned_elsewhere = {
        CLUSTER,
        NODE_GROUP,
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        REPOSITORY,
        ADDON,
        RELEASE,
        LOG_GROUP,
    }
    assert not owned_elsewhere & pr.types()
    (reference,) = pr.of_type("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "organization/torch-eks-inference/dev"
    dev_cluster = stack_run("dev").run.outputs["clusterName"]
    assert pr.one(POD_IDENTITY)["clusterName"] == dev_cluster
    assert pr.one("kubernetes:core/v1:Namespace")["metadata"]["name"] == "inference-pr-123"
    # A prefix, never a fixed name: a deleted secret holds its name for its recovery window.
    assert "name" not in pr.one(SECRET)
    assert pr.one(SECRET)["namePrefix"] == "torch-eks-inference/pr-123/api-key-"
    assert pr.one(SECRET)["recoveryWindowInDays"] == 0


def test_everything_a_pr_stack_owns_carries_its_expiry(
    stack_run: Callable[[str], Inventory],
) -> None:
    pr = stack_run("pr-123")
    tagged = [r for r in pr.registrations if r.type.startswith("aws:") and "tags" in r.inputs]
    assert len(tagged) >= 4
    assert all(r.inputs["tags"]["expires-at"] == SAMPLE_EXPIRES_AT for r in tagged)
    kubernetes_objects = [r for r in pr.registrations if r.type.startswith("kubernetes:")]
    assert kubernetes_objects
    assert all(
        r.inputs["metadata"]["annotations"][EXPIRY_ANNOTATION] == SAMPLE_EXPIRES_AT
        for r in kubernetes_objects
    )
    assert pr.run.outputs["expiresAt"] == SAMPLE_EXPIRES_AT


def test_long_lived_stacks_do_not_expire(long_lived: Inventory) -> None:
    assert all("expires-at" not in (r.inputs.get("tags") or {}) for r in long_lived.registrations)


# ------------------------------------------------------------------ outputs


def test_dev_exports_what_pr_stacks_and_people_need(stack_run: Callable[[str], Inventory]) -> None:
    run = stack_run("dev").run
    for name in (
        "clusterName",
        "clusterArn",
        "kubeconfig",
        "ecrRepositoryUrl",
        "ecrRegistryId",
        "imageDigest",
        "secretArn",
        "serviceUrl",
        "logGroupNames",
    ):
        assert name in run.outputs, name
    assert run.secret_outputs == {"kubeconfig"}
    kubeconfig = json.loads(runner.reveal(run.outputs["kubeconfig"]))
    user = kubeconfig["users"][0]["user"]
    assert "token" not in user
    assert user["exec"]["command"] == "aws"
    assert user["exec"]["args"][:4] == [
        "eks",
        "get-token",
        "--cluster-name",
        run.outputs["clusterName"],
    ]
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://")
    assert server.endswith(".gr7.us-west-2.eks.amazonaws.com")
    assert run.outputs["serviceUrl"] == "http://inference.inference.svc.cluster.local"
    assert run.outputs["portForwardCommand"] == (
        "kubectl -n inference port-forward svc/inference 8080:80"
    )
    assert set(run.outputs["logGroupNames"]) == {
        "controlPlane",
        "application",
        "dataplane",
        "host",
        "performance",
    }


def test_each_stack_runs_under_mocks_in_seconds(any_stack: Inventory) -> None:
    # The whole program per stack; generous bound for a loaded 2-core CI machine.
    assert any_stack.seconds < 60


# ------------------------------------------------------------------ other settings


CUSTOM_IMAGE_REF = f"{ACCOUNT_ID}.dkr.ecr.eu-west-1.amazonaws.com/team/svc@sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def customised() -> Inventory:
    """dev with the CPU image, its own image ref, an extra admin, extra tags and Kubernetes 1.32."""
    from tools.plan import config_file, read_stack_config, run_program

    values, secret_keys = read_stack_config(config_file("dev"))
    values.update(
        {
            "torch-eks-inference:imageVariant": "cpu",
            "torch-eks-inference:imageRef": CUSTOM_IMAGE_REF,
            "torch-eks-inference:adminRoleArns": json.dumps(
                [f"arn:aws:iam::{ACCOUNT_ID}:role/platform-admins"]
            ),
            "torch-eks-inference:tags": json.dumps(["team=ml"]),
            "torch-eks-inference:kubernetesVersion": "1.32",
            # 1.32 is in extended support: EKS refuses STANDARD for it.
            "torch-eks-inference:upgradeSupportType": "EXTENDED",
        }
    )
    return Inventory(run_program("dev", config=values, secret_keys=secret_keys), 0.0)


def test_cpu_variant_runs_on_system_nodes_without_a_gpu(customised: Inventory) -> None:
    pod = customised.one(DEPLOYMENT)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"workload-class": "system"}
    limits = pod["containers"][0]["resources"].get("limits", {})
    assert "nvidia.com/gpu" not in limits


def test_image_ref_extra_admin_tags_and_version(customised: Inventory) -> None:
    (container,) = customised.one(DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == CUSTOM_IMAGE_REF
    principals = sorted(
        r.inputs["principalArn"]
        for r in customised.of_type("aws:eks/accessEntry:AccessEntry")
        if r.parent_name == "cluster"
    )
    assert principals == [
        f"arn:aws:iam::{ACCOUNT_ID}:role/{DEPLOYER_ROLE}",
        f"arn:aws:iam::{ACCOUNT_ID}:role/github-ephemeral",
        f"arn:aws:iam::{ACCOUNT_ID}:role/github-preview-dev",
        f"arn:aws:iam::{ACCOUNT_ID}:role/platform-admins",
    ]
    assert customised.one(CLUSTER)["tags"]["team"] == "ml"
    assert customised.one(CLUSTER)["version"] == "1.32"
    autoscaler = next(
        r for r in customised.of_type(RELEASE) if r.inputs["chart"] == "cluster-autoscaler"
    )
    assert autoscaler.inputs["values"]["image"]["tag"] == "v1.32.1"
