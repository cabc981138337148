"""Every policy of the pack against a passing and a failing resource, built as the runtime does."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UnknownValueError

from policy.guardrails import POLICIES
from policy.guardrails.advisory import cost_tags_present, spot_gpus_outside_prod
from policy.guardrails.aws import (
    ecr_scan_on_push,
    launch_template_imdsv2,
    log_group_retention_and_kms,
    no_open_prod_endpoint,
    secret_customer_kms,
)
from policy.guardrails.kubernetes import (
    containers_not_root,
    gpu_requests_equal_limits,
    image_pinned_by_digest,
)
from tests.policy.runtime import UNKNOWN, validation_args, violations

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DIGEST = "123456789012.dkr.ecr.us-east-1.amazonaws.com/svc@sha256:" + "ab" * 32


def deployment(**container: Any) -> dict[str, Any]:
    base = {
        "name": "server",
        "image": DIGEST,
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False},
        "resources": {
            "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
            "limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"},
        },
    }
    base.update(container)
    return {
        "metadata": {"name": "svc"},
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [base],
                }
            }
        },
    }


def check(policy: Any, resource_type: str, inputs: dict[str, Any], **kw: Any) -> list[str]:
    return violations(policy, validation_args(resource_type, inputs, **kw))


def test_pack_shape() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names)) == 24
    levels = {p.name: p.enforcement_level for p in POLICIES}
    assert levels.pop("cost-tags-present") is EnforcementLevel.ADVISORY
    assert levels.pop("spot-gpus-outside-prod") is EnforcementLevel.ADVISORY
    assert set(levels.values()) == {EnforcementLevel.MANDATORY}


# --- images -------------------------------------------------------------------------------------


def test_image_by_digest_passes_and_tags_fail() -> None:
    assert check(image_pinned_by_digest, DEPLOYMENT, deployment()) == []
    for image in ["svc:latest", "svc:v1", "svc", "svc@sha256:abc", f"{DIGEST} "]:
        (message,) = check(image_pinned_by_digest, DEPLOYMENT, deployment(image=image))
        assert "not pinned by digest" in message


def test_init_containers_and_other_workload_kinds_are_checked() -> None:
    inputs = deployment()
    init = {"name": "fetch", "image": "busybox:1.36"}
    inputs["spec"]["template"]["spec"]["initContainers"] = [init]
    (message,) = check(image_pinned_by_digest, DEPLOYMENT, inputs)
    assert message.startswith("initContainers/fetch")
    cron = {"spec": {"jobTemplate": {"spec": {"template": inputs["spec"]["template"]}}}}
    assert len(check(image_pinned_by_digest, "kubernetes:batch/v1:CronJob", cron)) == 1
    # A Service has no containers: nothing to say.
    assert check(image_pinned_by_digest, "kubernetes:core/v1:Service", {"spec": {}}) == []


def test_unknown_image_at_preview_raises_for_the_runtime_to_report() -> None:
    with pytest.raises(UnknownValueError):
        check(image_pinned_by_digest, DEPLOYMENT, deployment(image=UNKNOWN))


# --- non-root -----------------------------------------------------------------------------------


def test_non_root_passes_with_pod_level_settings() -> None:
    assert check(containers_not_root, DEPLOYMENT, deployment()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"securityContext": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation"),
        ({"securityContext": {}}, "allowPrivilegeEscalation"),
        (
            {"securityContext": {"allowPrivilegeEscalation": False, "privileged": True}},
            "privileged",
        ),
        (
            {"securityContext": {"allowPrivilegeEscalation": False, "runAsUser": 0}},
            "runAsUser is 0",
        ),
        (
            {"securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": False}},
            "runAsNonRoot",
        ),
    ],
)
def test_root_or_escalation_fails(change: dict[str, Any], expected: str) -> None:
    found = check(containers_not_root, DEPLOYMENT, deployment(**change))
    assert any(expected in message for message in found), found


def test_missing_pod_security_context_fails() -> None:
    inputs = deployment()
    del inputs["spec"]["template"]["spec"]["securityContext"]
    assert any("runAsNonRoot" in m for m in check(containers_not_root, DEPLOYMENT, inputs))


# --- GPUs ---------------------------------------------------------------------------------------


def test_gpu_request_equal_to_limit_passes_also_across_number_and_text() -> None:
    assert check(gpu_requests_equal_limits, DEPLOYMENT, deployment()) == []
    numeric = deployment(
        resources={"requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": "2"}}
    )
    assert check(gpu_requests_equal_limits, DEPLOYMENT, numeric) == []
    cpu_only = deployment(resources={"requests": {"cpu": "1"}, "limits": {"cpu": "2"}})
    assert check(gpu_requests_equal_limits, DEPLOYMENT, cpu_only) == []


@pytest.mark.parametrize(
    "resources",
    [
        {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}},
        {"limits": {"nvidia.com/gpu": "1"}},
        {"requests": {"nvidia.com/gpu": "1"}},
    ],
)
def test_gpu_request_differing_from_limit_fails(resources: dict[str, Any]) -> None:
    (message,) = check(gpu_requests_equal_limits, DEPLOYMENT, deployment(resources=resources))
    assert "must equal its limit" in message


# --- AWS ----------------------------------------------------------------------------------------

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def test_log_group_needs_retention_and_kms() -> None:
    good = {"name": "/aws/eks/x", "retentionInDays": 30, "kmsKeyId": "arn:aws:kms:r:1:key/k"}
    assert check(log_group_retention_and_kms, LOG_GROUP, good) == []
    assert len(check(log_group_retention_and_kms, LOG_GROUP, {"name": "x"})) == 2
    no_retention = {**good, "retentionInDays": 0}
    assert "retentionInDays is 0" in check(log_group_retention_and_kms, LOG_GROUP, no_retention)[0]
    no_kms = {k: v for k, v in good.items() if k != "kmsKeyId"}
    assert "kmsKeyId" in check(log_group_retention_and_kms, LOG_GROUP, no_kms)[0]


def test_secret_needs_a_customer_key() -> None:
    secret = "aws:secretsmanager/secret:Secret"
    assert check(secret_customer_kms, secret, {"kmsKeyId": "arn:aws:kms:r:1:key/k"}) == []
    assert check(secret_customer_kms, secret, {"name": "s"}) != []
    assert check(secret_customer_kms, secret, {"kmsKeyId": "alias/aws/secretsmanager"}) != []


def test_launch_template_requires_imdsv2() -> None:
    lt = "aws:ec2/launchTemplate:LaunchTemplate"
    good = {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}}
    assert check(launch_template_imdsv2, lt, good) == []
    assert check(launch_template_imdsv2, lt, {"metadataOptions": {"httpTokens": "optional"}})
    assert check(launch_template_imdsv2, lt, {})


EKS = "aws:eks/cluster:Cluster"


@pytest.mark.parametrize(
    ("vpc", "ok"),
    [
        ({"endpointPublicAccess": False, "endpointPrivateAccess": True}, True),
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}, True),
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}, False),
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["10.0.0.0/8", "::/0"]}, False),
        ({"endpointPublicAccess": True}, False),  # EKS defaults to 0.0.0.0/0
        ({}, False),  # and to a public endpoint
    ],
)
def test_prod_cluster_endpoint_not_open_to_the_world(vpc: dict[str, Any], ok: bool) -> None:
    found = check(no_open_prod_endpoint, EKS, {"vpcConfig": vpc}, stack="prod")
    assert (found == []) is ok
    # The same cluster in dev is not this policy's business.
    assert check(no_open_prod_endpoint, EKS, {"vpcConfig": vpc}, stack="dev") == []


def test_prod_stacks_come_from_policy_config() -> None:
    vpc = {"vpcConfig": {"publicAccessCidrs": ["0.0.0.0/0"]}}
    config = {"prodStacks": ["production"]}
    assert check(no_open_prod_endpoint, EKS, vpc, stack="prod", config=config) == []
    assert check(no_open_prod_endpoint, EKS, vpc, stack="production", config=config) != []


def test_ecr_scans_on_push() -> None:
    ecr = "aws:ecr/repository:Repository"
    assert check(ecr_scan_on_push, ecr, {"imageScanningConfiguration": {"scanOnPush": True}}) == []
    assert check(ecr_scan_on_push, ecr, {"imageScanningConfiguration": {"scanOnPush": False}})
    assert check(ecr_scan_on_push, ecr, {})


# --- advisory -----------------------------------------------------------------------------------

TAGS = {"project": "torch-eks-inference", "stack": "dev", "environment": "dev"}


def test_cost_tags_from_resource_or_provider_default_tags() -> None:
    assert check(cost_tags_present, EKS, {"tags": TAGS}) == []
    (message,) = check(cost_tags_present, EKS, {"tags": {"project": "p"}})
    assert message == "missing cost allocation tags: stack, environment"
    # Provider default tags count; in state the provider keeps them as JSON text.
    provider = {"defaultTags": json.dumps({"tags": TAGS})}
    assert check(cost_tags_present, EKS, {}, provider_inputs=provider) == []
    assert check(cost_tags_present, EKS, {}, provider_inputs={"defaultTags": {"tags": TAGS}}) == []
    config = {"requiredTags": ["cost-center"]}
    assert check(cost_tags_present, EKS, {"tags": TAGS}, config=config) != []
    assert check(cost_tags_present, "aws:iam/rolePolicy:RolePolicy", {}) == []


GPU_GROUP = {
    "amiType": "AL2023_x86_64_NVIDIA",
    "instanceTypes": ["g5.xlarge"],
    "capacityType": "SPOT",
    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
}
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def test_spot_gpus_outside_prod() -> None:
    assert check(spot_gpus_outside_prod, NODE_GROUP, GPU_GROUP, stack="dev") == []
    on_demand = {**GPU_GROUP, "capacityType": "ON_DEMAND"}
    (message,) = check(spot_gpus_outside_prod, NODE_GROUP, on_demand, stack="staging")
    assert "SPOT" in message
    assert check(spot_gpus_outside_prod, NODE_GROUP, on_demand, stack="prod") == []
    # Detected by instance family or taint alone, too; a CPU group is not concerned.
    by_type = {"instanceTypes": ["p4d.24xlarge"]}
    assert check(spot_gpus_outside_prod, NODE_GROUP, by_type, stack="dev") != []
    by_taint = {"taints": copy.deepcopy(GPU_GROUP["taints"]), "amiType": "CUSTOM"}
    assert check(spot_gpus_outside_prod, NODE_GROUP, by_taint, stack="dev") != []
    cpu = {"amiType": "AL2023_x86_64_STANDARD", "instanceTypes": ["t3.large", "m5.xlarge"]}
    assert check(spot_gpus_outside_prod, NODE_GROUP, cpu, stack="dev") == []
