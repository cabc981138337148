"""ARNs carry the deployment's partition, and the CloudWatch Logs key grants are account-bound.

Sources:
- ARN format and partitions (aws, aws-cn, aws-us-gov):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html
- EKS access policy ARNs, ``arn:<partition>:eks::aws:cluster-access-policy/<name>`` (no region,
  account ``aws``): https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html
- CloudWatch Logs passes ``kms:EncryptionContext:aws:logs:arn`` (the log group ARN) on its KMS
  calls: https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
- ``aws:SourceAccount`` against confused deputies:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack_inventory import Inventory
from tools.mocks import ACCOUNT_ID
from tools.plan import ProgramRun, config_file, read_stack_config, run_program

ARN = re.compile(r"arn:[a-z-]*:[a-z0-9-]*:")
ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"


def _strings(node: Any) -> Iterator[str]:
    """Every string in ``node``, including those inside JSON policy documents."""
    if isinstance(node, dict):
        for child in node.values():
            yield from _strings(child)
    elif isinstance(node, list | tuple):
        for child in node:
            yield from _strings(child)
    elif isinstance(node, str):
        yield node
        if node.startswith("{"):
            with contextlib.suppress(ValueError):
                yield from _strings(json.loads(node))


@pytest.fixture(scope="module")
def govcloud() -> ProgramRun:
    """The dev stack deployed to us-gov-west-1 (partition aws-us-gov)."""
    values, secret_keys = read_stack_config(config_file("dev"))
    # The roles a GovCloud user configures are GovCloud roles; everything else is the program's.
    values = {k: v.replace("arn:aws:", "arn:aws-us-gov:") for k, v in values.items()}
    values["aws:region"] = "us-gov-west-1"
    return run_program("dev", config=values, secret_keys=secret_keys)


def test_every_arn_the_program_sends_names_the_regions_partition(govcloud: ProgramRun) -> None:
    arns = [
        match.group(0) + text[match.end() :]
        for r in govcloud.registrations
        for text in _strings(dict(r.inputs))
        for match in ARN.finditer(text)
    ]
    assert len(arns) > 20
    wrong = sorted({a for a in arns if not a.startswith("arn:aws-us-gov:")})
    assert wrong == []


def test_access_policy_arn_is_the_partitions(govcloud: ProgramRun) -> None:
    associations = [r.inputs for r in govcloud.registrations if r.type == ACCESS_POLICY]
    assert associations
    assert {a["policyArn"] for a in associations} == {
        "arn:aws-us-gov:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        "arn:aws-us-gov:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
    }


def _logs_statements(inv: Inventory) -> list[dict[str, Any]]:
    statements = []
    for key in inv.of_type("aws:kms/key:Key"):
        # Keys without a policy get the default one: account root only, no service grants.
        for statement in json.loads(key.inputs.get("policy") or '{"Statement": []}')["Statement"]:
            service = statement.get("Principal", {}).get("Service", "")
            if service.startswith("logs."):
                statements.append(statement)
    return statements


def test_cloudwatch_logs_may_use_a_key_only_for_this_accounts_log_groups(
    long_lived: Inventory,
) -> None:
    statements = _logs_statements(long_lived)
    # The control-plane key and the Container Insights key.
    assert len(statements) == 2
    for statement in statements:
        assert statement["Principal"] == {"Service": "logs.us-west-2.amazonaws.com"}
        condition = statement["Condition"]
        pattern = condition["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        assert pattern.startswith(f"arn:aws:logs:us-west-2:{ACCOUNT_ID}:log-group:/aws/")
        assert condition["StringEqualsIfExists"] == {"aws:SourceAccount": ACCOUNT_ID}
