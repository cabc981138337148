"""The Karpenter objects and AWS documents of the GPU pool, as plain data (no resources here).

Field names follow Karpenter's v1 APIs (https://karpenter.sh/docs/concepts/nodepools/ and
https://karpenter.sh/docs/concepts/nodeclasses/); the interruption rules and the controller's
permissions follow Karpenter's getting-started CloudFormation template
(aws/karpenter-provider-aws website/content/en/docs/getting-started/getting-started-with-karpenter/
cloudformation.yaml).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from infra.aws.iam import document
from infra.components.cluster import GPU_NODE_LABELS
from infra.config import CapacityType
from infra.k8s.labels import GPU_RESOURCE, GPU_TAINT_EFFECT, GPU_TAINT_KEY, GPU_TAINT_VALUE

NODE_POOL_NAME: Final = "gpu"
NODE_CLASS_NAME: Final = "gpu"
#: AL2023 through an alias: Karpenter picks the EKS-optimized AL2023 image of the cluster's
#: version, its NVIDIA variant for NVIDIA instance types (same AMI family as the managed GPU group).
AMI_ALIAS: Final = "al2023@latest"
#: EventBridge rules Karpenter's interruption handling reads: (suffix, source, detail-type).
INTERRUPTION_EVENTS: Final = (
    ("health", "aws.health", "AWS Health Event"),
    ("spot-interruption", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    ("rebalance", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    ("state-change", "aws.ec2", "EC2 Instance State-change Notification"),
)
#: Karpenter drops interruption messages older than this anyway; the template keeps 300 s.
INTERRUPTION_MESSAGE_RETENTION_SECONDS: Final = 300
#: Managed policies of the node role (the managed node groups' set plus SSM, as in the template).
NODE_MANAGED_POLICIES: Final = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)


def capacity_types(capacity: CapacityType) -> list[str]:
    """Karpenter capacity types: SPOT stacks mix spot with on-demand fallback, ON_DEMAND never spot.

    With both allowed Karpenter launches spot when it is offered and falls back to on-demand,
    so a SPOT stack keeps serving through a spot shortage.
    """
    return ["spot", "on-demand"] if capacity is CapacityType.SPOT else ["on-demand"]


def event_pattern(source: str, detail_type: str) -> str:
    """An EventBridge event pattern matching one source and detail type."""
    return json.dumps({"source": [source], "detail-type": [detail_type]}, sort_keys=True)


def queue_policy(queue_arn: str) -> str:
    """Only EventBridge (and SQS itself) may send to the interruption queue, only over TLS."""
    return document(
        [
            {
                "Sid": "EventBridgeSendsInterruptions",
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ]
    )


#: Read-only calls Karpenter makes to pick instance types, images, subnets and prices.
_DISCOVER_ACTIONS: Final = (
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets",
    "pricing:GetProducts",
    "ssm:GetParameter",
    "iam:GetInstanceProfile",
)
_LAUNCH_ACTIONS: Final = (
    "ec2:CreateFleet",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateTags",
    "ec2:RunInstances",
)
_INSTANCE_PROFILE_ACTIONS: Final = (
    "iam:CreateInstanceProfile",
    "iam:TagInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:DeleteInstanceProfile",
)
_QUEUE_ACTIONS: Final = (
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
)
_VOLUME_KEY_ACTIONS: Final = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncrypt*",
)


def _ec2_statements(cluster_name: str) -> list[dict[str, Any]]:
    """Discover and launch anywhere; terminate only the instances tagged as this cluster's."""
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}
    return [
        {"Sid": "Discover", "Effect": "Allow", "Action": list(_DISCOVER_ACTIONS), "Resource": "*"},
        {"Sid": "Launch", "Effect": "Allow", "Action": list(_LAUNCH_ACTIONS), "Resource": "*"},
        {
            "Sid": "EndOwnNodesOnly",
            "Effect": "Allow",
            "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            "Resource": "*",
            "Condition": {"StringEquals": owned},
        },
    ]


def _iam_statements(partition: str, account: str, node_role_arn: str) -> list[dict[str, Any]]:
    """Instance profiles in this account, and passing the node role (to EC2) only."""
    return [
        {
            "Sid": "InstanceProfilesOfThisCluster",
            "Effect": "Allow",
            "Action": list(_INSTANCE_PROFILE_ACTIONS),
            "Resource": f"arn:{partition}:iam::{account}:instance-profile/*",
        },
        {
            "Sid": "PassOnlyTheNodeRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": node_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
    ]


def controller_policy(
    *,
    partition: str,
    region: str,
    account: str,
    cluster_name: str,
    queue_arn: str,
    node_role_arn: str,
    volume_key_arn: str,
) -> str:
    """What the Karpenter controller may do: launch and end this cluster's nodes, nothing more."""
    cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cluster_name}"
    return document(
        [
            *_ec2_statements(cluster_name),
            *_iam_statements(partition, account, node_role_arn),
            {
                "Sid": "InterruptionQueue",
                "Effect": "Allow",
                "Action": list(_QUEUE_ACTIONS),
                "Resource": queue_arn,
            },
            {
                "Sid": "DescribeThisCluster",
                "Effect": "Allow",
                "Action": "eks:DescribeCluster",
                "Resource": cluster_arn,
            },
            {
                "Sid": "EncryptedRootVolumes",
                "Effect": "Allow",
                "Action": list(_VOLUME_KEY_ACTIONS),
                "Resource": volume_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"ec2.{region}.amazonaws.com"}},
            },
        ]
    )


def node_class_spec(
    *,
    node_role_name: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
    root_volume_gib: int,
    volume_key_arn: str,
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """EC2NodeClass spec: AL2023 (NVIDIA), IMDSv2 only with hop limit 1, encrypted gp3 root."""
    return {
        "amiSelectorTerms": [{"alias": AMI_ALIAS}],
        "role": node_role_name,
        "subnetSelectorTerms": [{"id": subnet} for subnet in subnet_ids],
        "securityGroupSelectorTerms": [{"id": group} for group in security_group_ids],
        # Same rules as the managed groups' launch template: pods cannot reach the node's role.
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": "/dev/xvda",
                "rootVolume": True,
                "ebs": {
                    "volumeSize": f"{root_volume_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "kmsKeyID": volume_key_arn,
                    "deleteOnTermination": True,
                },
            }
        ],
        "tags": dict(tags),
    }


def node_pool_spec(
    *,
    instance_types: Sequence[str],
    capacity: CapacityType,
    gpu_limit: int,
    consolidate_after_seconds: int,
) -> dict[str, Any]:
    """NodePool spec: the GPU nodes' labels and taint, types, capacity mix, consolidation, cap."""
    return {
        "template": {
            "metadata": {"labels": dict(GPU_NODE_LABELS)},
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": NODE_CLASS_NAME,
                },
                "taints": [
                    {"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": GPU_TAINT_EFFECT}
                ],
                "requirements": [
                    {
                        "key": "node.kubernetes.io/instance-type",
                        "operator": "In",
                        "values": list(instance_types),
                    },
                    {
                        "key": "karpenter.sh/capacity-type",
                        "operator": "In",
                        "values": capacity_types(capacity),
                    },
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                ],
                # Replace nodes monthly so they pick up new AMIs (30 days).
                "expireAfter": "720h",
            },
        },
        "disruption": {
            "consolidationPolicy": "WhenEmptyOrUnderutilized",
            "consolidateAfter": f"{consolidate_after_seconds}s",
        },
        # The bill's ceiling: never more GPUs than gpuNodeMax nodes of the smallest type carry.
        "limits": {GPU_RESOURCE: str(gpu_limit)},
    }
