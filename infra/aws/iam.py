"""Small builders for IAM and KMS policy documents shared by the components.

Policies are plain JSON built here (not ``aws.iam.get_policy_document``) so the exact statements
are visible in the resource inputs that tests and the plan tool inspect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

#: Trust principal of EKS Pod Identity; the agent needs both actions to hand out session tags.
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ("sts:AssumeRole", "sts:TagSession")


def document(statements: Sequence[Mapping[str, Any]]) -> str:
    """A policy document (sorted keys, so the same statements always give the same text)."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def service_trust(service: str, actions: Sequence[str] = ("sts:AssumeRole",)) -> str:
    """Trust policy letting one AWS service principal assume a role."""
    return document(
        [{"Effect": "Allow", "Principal": {"Service": service}, "Action": list(actions)}]
    )


def pod_identity_trust(account_id: str, cluster_arn: str) -> str:
    """Trust policy for an EKS Pod Identity role, limited to one account and one cluster."""
    return document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
                "Action": list(POD_IDENTITY_ACTIONS),
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnEquals": {"aws:SourceArn": cluster_arn},
                },
            }
        ]
    )


def account_root_statement(partition: str, account_id: str) -> dict[str, Any]:
    """Key policy statement that delegates key access to the account's IAM policies."""
    return {
        "Sid": "AccountAdministration",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def logs_service_statement(
    sid: str, region: str, account_id: str, log_group_arns: str
) -> dict[str, Any]:
    """Key policy statement letting CloudWatch Logs use the key for matching log groups only.

    The encryption-context condition is what keeps one key from encrypting any log group:
    CloudWatch Logs passes the log group's ARN as ``kms:EncryptionContext:aws:logs:arn`` on every
    call (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html),
    and the ARN pattern names this account. ``aws:SourceAccount`` is the confused-deputy guard
    for service principals
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html); the Logs KMS page
    does not say Logs sends it on KMS calls, so it is tested only when present (``IfExists``):
    an absent key must not deny every log write.
    """
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.amazonaws.com"},
        "Action": [
            "kms:Encrypt*",
            "kms:Decrypt*",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:Describe*",
        ],
        "Resource": "*",
        "Condition": {
            "ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_group_arns},
            "StringEqualsIfExists": {"aws:SourceAccount": account_id},
        },
    }


def managed_policy_arn(partition: str, name: str) -> str:
    """ARN of an AWS managed IAM policy."""
    return f"arn:{partition}:iam::aws:policy/{name}"


def managed_policy_output(partition: pulumi.Output[str], name: str) -> pulumi.Output[str]:
    """ARN of an AWS managed IAM policy once the partition is known."""
    return partition.apply(lambda p: managed_policy_arn(p, name))


class AccountContext:
    """Account id, region and partition of the deployment, read once per component."""

    def __init__(self, parent: pulumi.Resource) -> None:
        opts = pulumi.InvokeOutputOptions(parent=parent)
        identity = aws.get_caller_identity_output(opts=opts)
        self.account_id: pulumi.Output[str] = identity.account_id
        self.caller_arn: pulumi.Output[str] = identity.arn
        self.region: pulumi.Output[str] = aws.get_region_output(opts=opts).region
        self.partition: pulumi.Output[str] = aws.get_partition_output(opts=opts).partition
