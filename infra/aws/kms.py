"""The cluster's KMS keys: key policies and a key-with-alias helper.

Two customer managed keys per cluster: one for EKS secret envelope encryption and the nodes'
root volumes, one for the control-plane log group. Both rotate yearly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.aws.iam import account_root_statement, document, logs_service_statement

#: The Auto Scaling service-linked role: EC2 Auto Scaling launches the nodes with it, so it must
#: use the key of their root volumes. It exists only after an account's first Auto Scaling group.
AUTOSCALING_SERVICE_ROLE_PATH: Final = (
    "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
)
#: What EC2 Auto Scaling needs on the key of encrypted EBS volumes it launches.
_VOLUME_ACTIONS: Final = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
)


def secrets_key_document(partition: str, account: str) -> str:
    """Policy of the secrets key: the account's IAM, and Auto Scaling for node volumes.

    EC2 Auto Scaling launches the nodes and must use the key for their root volumes
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html).
    Naming its service-linked role as Principal fails with MalformedPolicyDocumentException in an
    account that has never had an Auto Scaling group (the role does not exist yet, and KMS
    validates principals). A wildcard principal pinned by aws:PrincipalArn + aws:PrincipalAccount
    admits exactly that role once it exists, and KMS does not validate condition values
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn).
    """
    asg_role = f"arn:{partition}:iam::{account}:{AUTOSCALING_SERVICE_ROLE_PATH}"
    only_that_role = {
        "StringEquals": {"aws:PrincipalAccount": account},
        "ArnEquals": {"aws:PrincipalArn": asg_role},
    }
    return document(
        [
            account_root_statement(partition, account),
            {
                "Sid": "AutoScalingUseForNodeVolumes",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": list(_VOLUME_ACTIONS),
                "Resource": "*",
                "Condition": only_that_role,
            },
            {
                "Sid": "AutoScalingGrantsForNodeVolumes",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {**only_that_role, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
        ]
    )


def logs_key_document(partition: str, account: str, region: str, cluster_name: str) -> str:
    """Policy of the logs key: the account's IAM, and CloudWatch Logs for this cluster's groups."""
    groups = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/eks/{cluster_name}/*"
    return document(
        [
            account_root_statement(partition, account),
            logs_service_statement("CloudWatchLogsOfThisCluster", region, account, groups),
        ]
    )


def key_with_alias(
    name: str,
    *,
    alias: str,
    description: str,
    policy: pulumi.Input[str],
    long_deletion_window: bool,
    tags: Mapping[str, str],
    opts: pulumi.ResourceOptions,
    alias_opts: pulumi.ResourceOptions,
) -> aws.kms.Key:
    """A rotating customer managed key and its ``alias/...`` name.

    The deletion window is 30 days where the stack is protected (prod), 7 elsewhere.
    """
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30 if long_deletion_window else 7,
        policy=policy,
        tags=dict(tags),
        opts=opts,
    )
    aws.kms.Alias(f"{name}-alias", name=alias, target_key_id=key.key_id, opts=alias_opts)
    return key
