"""The policies that close issue 10's gaps, each against a passing and a failing resource.

Sources are cited next to each rule in policy/guardrails/ (registry, hardening, workloads,
promotion).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from policy.guardrails.hardening import (
    eks_secrets_encrypted,
    kms_key_rotation,
    launch_template_hop_limit,
    no_world_open_ingress,
    node_groups_use_launch_template,
)
from policy.guardrails.promotion import prod_image_promoted_from_staging
from policy.guardrails.registry import ecr_customer_kms, ecr_tags_immutable, registry_not_exposed
from policy.guardrails.workloads import (
    helm_releases_pinned,
    no_world_open_load_balancer,
    pods_no_host_access,
)
from tests.policy.runtime import validation_args, violations
from tests.policy.test_policies import DEPLOYMENT, DIGEST, deployment

ECR = "aws:ecr/repository:Repository"
KEY = "arn:aws:kms:us-west-2:123456789012:key/k"
STAGING = "sha256:" + "ab" * 32


def check(policy: Any, resource_type: str, inputs: dict[str, Any], **kw: Any) -> list[str]:
    return violations(policy, validation_args(resource_type, inputs, **kw))


# --- registry -----------------------------------------------------------------------------------


def _policy_doc(principal: Any, condition: Any = None) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": "ecr:*"}
    if condition is not None:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.mark.parametrize(
    "resource_type",
    ["aws:ecr/repositoryPolicy:RepositoryPolicy", "aws:ecr/registryPolicy:RegistryPolicy"],
)
def test_registry_policies_open_to_everyone_are_refused(resource_type: str) -> None:
    named = _policy_doc({"AWS": "arn:aws:iam::210987654321:root"})
    assert check(registry_not_exposed, resource_type, {"policy": named}) == []
    org_only = _policy_doc("*", {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}})
    assert check(registry_not_exposed, resource_type, {"policy": org_only}) == []
    for everyone in ("*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::1:root", "*"]}):
        (message,) = check(registry_not_exposed, resource_type, {"policy": _policy_doc(everyone)})
        assert "Principal '*'" in message


def test_public_ecr_is_refused() -> None:
    assert check(
        registry_not_exposed, "aws:ecrpublic/repository:Repository", {"repositoryName": "x"}
    )


@pytest.mark.parametrize(
    ("inputs", "ok"),
    [
        ({"imageTagMutability": "IMMUTABLE"}, True),
        (
            {
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [
                    {"filter": "pr-*", "filterType": "WILDCARD"}
                ],
            },
            True,
        ),
        ({}, False),  # ECR defaults to MUTABLE
        ({"imageTagMutability": "MUTABLE"}, False),
        ({"imageTagMutability": "MUTABLE_WITH_EXCLUSION"}, False),
        (
            {
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filter": "*", "filterType": "WILDCARD"}],
            },
            False,
        ),
        ({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"}, False),
    ],
)
def test_ecr_tags_immutable_outside_pr_prefix(inputs: dict[str, Any], ok: bool) -> None:
    assert (check(ecr_tags_immutable, ECR, inputs) == []) is ok


def test_ecr_needs_a_customer_kms_key() -> None:
    good = {"encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY}]}
    assert check(ecr_customer_kms, ECR, good) == []
    assert check(ecr_customer_kms, ECR, {})
    assert check(
        ecr_customer_kms, ECR, {"encryptionConfigurations": [{"encryptionType": "AES256"}]}
    )
    assert check(ecr_customer_kms, ECR, {"encryptionConfigurations": [{"encryptionType": "KMS"}]})


# --- AWS hardening ------------------------------------------------------------------------------


def test_eks_encrypts_secrets() -> None:
    eks = "aws:eks/cluster:Cluster"
    good = {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY}}}
    assert check(eks_secrets_encrypted, eks, good) == []
    assert check(eks_secrets_encrypted, eks, {})
    assert check(eks_secrets_encrypted, eks, {"encryptionConfig": {"resources": ["secrets"]}})


def test_kms_keys_rotate() -> None:
    kms = "aws:kms/key:Key"
    assert check(kms_key_rotation, kms, {"enableKeyRotation": True}) == []
    assert check(kms_key_rotation, kms, {"enableKeyRotation": False})
    assert check(kms_key_rotation, kms, {})
    # Asymmetric keys cannot rotate automatically; not this policy's business.
    assert check(kms_key_rotation, kms, {"customerMasterKeySpec": "RSA_2048"}) == []


def test_node_groups_launch_from_a_template_without_ssh() -> None:
    ng = "aws:eks/nodeGroup:NodeGroup"
    good = {"launchTemplate": {"id": "lt-0123", "version": "1"}}
    assert check(node_groups_use_launch_template, ng, good) == []
    assert check(node_groups_use_launch_template, ng, {"amiType": "AL2023_x86_64_NVIDIA"})
    assert check(node_groups_use_launch_template, ng, {"launchTemplate": {"id": "lt-0123"}})
    ssh = {**good, "remoteAccess": {"ec2SshKey": "ops"}}
    assert any("remoteAccess" in m for m in check(node_groups_use_launch_template, ng, ssh))


def test_launch_template_hop_limit_is_one() -> None:
    lt = "aws:ec2/launchTemplate:LaunchTemplate"
    good = {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}}
    assert check(launch_template_hop_limit, lt, good) == []
    two = {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}
    assert check(launch_template_hop_limit, lt, two)
    assert check(launch_template_hop_limit, lt, {"metadataOptions": {"httpTokens": "required"}})
    off = {"metadataOptions": {"httpEndpoint": "disabled"}}
    assert check(launch_template_hop_limit, lt, off) == []


@pytest.mark.parametrize(
    ("resource_type", "inputs", "ok"),
    [
        (
            "aws:ec2/securityGroup:SecurityGroup",
            {"ingress": [{"cidrBlocks": ["10.0.0.0/16"]}]},
            True,
        ),
        (
            "aws:ec2/securityGroup:SecurityGroup",
            {"ingress": [{"cidrBlocks": ["0.0.0.0/0"]}]},
            False,
        ),
        ("aws:ec2/securityGroup:SecurityGroup", {"ingress": [{"ipv6CidrBlocks": ["::/0"]}]}, False),
        ("aws:ec2/securityGroup:SecurityGroup", {"egress": [{"cidrBlocks": ["0.0.0.0/0"]}]}, True),
        (
            "aws:ec2/securityGroupRule:SecurityGroupRule",
            {"type": "ingress", "cidrBlocks": ["0.0.0.0/0"]},
            False,
        ),
        (
            "aws:ec2/securityGroupRule:SecurityGroupRule",
            {"type": "egress", "cidrBlocks": ["0.0.0.0/0"]},
            True,
        ),
        (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            {"cidrIpv4": "0.0.0.0/0"},
            False,
        ),
        (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            {"cidrIpv4": "10.1.0.0/16"},
            True,
        ),
    ],
)
def test_security_groups_not_open_to_the_world(
    resource_type: str, inputs: dict[str, Any], ok: bool
) -> None:
    assert (check(no_world_open_ingress, resource_type, inputs) == []) is ok


# --- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["hostNetwork", "hostPID", "hostIPC"])
def test_host_namespaces_are_refused(field: str) -> None:
    assert check(pods_no_host_access, DEPLOYMENT, deployment()) == []
    inputs = deployment()
    inputs["spec"]["template"]["spec"][field] = True
    (message,) = check(pods_no_host_access, DEPLOYMENT, inputs)
    assert field in message


def test_host_path_and_added_capabilities_are_refused() -> None:
    inputs = deployment()
    inputs["spec"]["template"]["spec"]["volumes"] = [
        {"name": "docker", "hostPath": {"path": "/var/run"}}
    ]
    assert "hostPath" in check(pods_no_host_access, DEPLOYMENT, inputs)[0]
    caps = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
    }
    (message,) = check(pods_no_host_access, DEPLOYMENT, deployment(securityContext=caps))
    assert "NET_ADMIN" in message
    # The restricted profile allows NET_BIND_SERVICE alone.
    caps["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert check(pods_no_host_access, DEPLOYMENT, deployment(securityContext=caps)) == []


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("9.46.6", True),
        ("v0.17.1", True),
        ("1.2.3-rc.1", True),
        (None, False),
        ("", False),
        ("^1.2.0", False),
        ("~1.2", False),
        ("1.x", False),
        ("*", False),
        (">=1.0.0", False),
    ],
)
def test_helm_releases_pin_an_exact_version(version: str | None, ok: bool) -> None:
    inputs: dict[str, Any] = {"chart": "cluster-autoscaler"}
    if version is not None:
        inputs["version"] = version
    assert (check(helm_releases_pinned, "kubernetes:helm.sh/v3:Release", inputs) == []) is ok
    assert (check(helm_releases_pinned, "kubernetes:helm.sh/v4:Chart", inputs) == []) is ok


SCHEME = "service.beta.kubernetes.io/aws-load-balancer-scheme"


@pytest.mark.parametrize(
    ("annotations", "spec", "ok"),
    [
        ({SCHEME: "internal"}, {"type": "LoadBalancer"}, True),
        (
            {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"},
            {"type": "LoadBalancer"},
            True,
        ),
        ({}, {"type": "LoadBalancer"}, False),  # the in-tree controller makes it internet-facing
        ({SCHEME: "internet-facing"}, {"type": "LoadBalancer"}, False),
        (
            {SCHEME: "internet-facing"},
            {"type": "LoadBalancer", "loadBalancerSourceRanges": ["0.0.0.0/0"]},
            False,
        ),
        (
            {SCHEME: "internet-facing"},
            {"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"]},
            True,
        ),
        ({}, {"type": "ClusterIP"}, True),
    ],
)
def test_load_balancers_are_internal_or_allow_listed(
    annotations: dict[str, str], spec: dict[str, Any], ok: bool
) -> None:
    inputs = {"metadata": {"name": "svc", "annotations": annotations}, "spec": spec}
    assert (check(no_world_open_load_balancer, "kubernetes:core/v1:Service", inputs) == []) is ok


def test_internet_facing_ingress_needs_inbound_cidrs() -> None:
    ingress = "kubernetes:networking.k8s.io/v1:Ingress"
    scheme = {"alb.ingress.kubernetes.io/scheme": "internet-facing"}
    assert check(no_world_open_load_balancer, ingress, {"metadata": {"annotations": scheme}})
    limited = {**scheme, "alb.ingress.kubernetes.io/inbound-cidrs": "203.0.113.0/24"}
    assert check(no_world_open_load_balancer, ingress, {"metadata": {"annotations": limited}}) == []


# --- promotion ----------------------------------------------------------------------------------


def test_prod_runs_only_the_digest_staging_runs() -> None:
    config = {"stagingImageDigest": STAGING}
    promoted = deployment(image=f"123456789012.dkr.ecr.us-west-2.amazonaws.com/svc@{STAGING}")
    assert (
        check(prod_image_promoted_from_staging, DEPLOYMENT, promoted, stack="prod", config=config)
        == []
    )
    # A replicated copy (another registry host, same digest) is the same image.
    replica = deployment(image=f"210987654321.dkr.ecr.eu-west-1.amazonaws.com/svc@{STAGING}")
    assert (
        check(prod_image_promoted_from_staging, DEPLOYMENT, replica, stack="prod", config=config)
        == []
    )
    moved = deployment(image=DIGEST.replace("ab" * 32, "cd" * 32))
    (message,) = check(
        prod_image_promoted_from_staging, DEPLOYMENT, moved, stack="prod", config=config
    )
    assert "not the digest staging runs" in message


def test_prod_without_a_staging_digest_is_refused_and_other_stacks_are_not_concerned() -> None:
    (message,) = check(prod_image_promoted_from_staging, DEPLOYMENT, deployment(), stack="prod")
    assert "stagingImageDigest" in message
    assert check(prod_image_promoted_from_staging, DEPLOYMENT, deployment(), stack="staging") == []


def test_the_rollback_digest_is_admitted_only_when_configured() -> None:
    previous = "sha256:" + "12" * 32
    image = deployment(image=f"123456789012.dkr.ecr.us-west-2.amazonaws.com/svc@{previous}")
    staging_only = {"stagingImageDigest": STAGING}
    assert check(
        prod_image_promoted_from_staging, DEPLOYMENT, image, stack="prod", config=staging_only
    )
    rollback = {**staging_only, "rollbackImageDigest": previous}
    assert (
        check(prod_image_promoted_from_staging, DEPLOYMENT, image, stack="prod", config=rollback)
        == []
    )
