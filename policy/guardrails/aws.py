"""Mandatory policies on AWS resources: encryption, retention, IMDSv2, endpoint exposure, scans."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .props import ECR_REPOSITORY, EKS_CLUSTER, LAUNCH_TEMPLATE, get, items, stack_of

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SECRETS_MANAGER_SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a type token
#: The AWS-managed key of Secrets Manager: encryption, but not under this project's control.
AWS_MANAGED_SECRETS_KEY = "alias/aws/secretsmanager"
_OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
DEFAULT_PROD_STACKS = ("prod",)

Validate = Callable[[ResourceValidationArgs, ReportViolation], None]


def _only(resource_type: str, check: Validate) -> Validate:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type == resource_type:
            check(args, report)

    return validate


def _is_set(value: Any) -> bool:
    return value is not None and value != ""


def _log_group(args: ResourceValidationArgs, report: ReportViolation) -> None:
    retention = get(args.props, "retentionInDays")
    # The engine sends numbers as floats (protobuf Struct); bool is an int subclass, refuse it.
    if isinstance(retention, bool) or not isinstance(retention, int | float) or retention <= 0:
        report(f"retentionInDays is {retention!r}; set a positive number of days", None)
    if not _is_set(get(args.props, "kmsKeyId")):
        report("kmsKeyId is not set; encrypt the log group with a customer KMS key", None)


def _secret(args: ResourceValidationArgs, report: ReportViolation) -> None:
    key = get(args.props, "kmsKeyId")
    if not _is_set(key) or key == AWS_MANAGED_SECRETS_KEY:
        report(f"kmsKeyId is {key!r}; use a customer-managed KMS key", None)


def _launch_template(args: ResourceValidationArgs, report: ReportViolation) -> None:
    tokens = get(args.props, "metadataOptions", "httpTokens")
    if tokens != "required":
        report(f"metadataOptions.httpTokens is {tokens!r}; IMDSv2 requires 'required'", None)


def prod_stacks(config: Any) -> frozenset[str]:
    """The stacks treated as production (policy config ``prodStacks``, default ``prod``)."""
    names = get(config, "prodStacks")
    return (
        frozenset(str(n) for n in items(names))
        if names is not None
        else frozenset(DEFAULT_PROD_STACKS)
    )


def _cluster_endpoint(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if stack_of(args.urn) not in prod_stacks(args.get_config()):
        return
    vpc = get(args.props, "vpcConfig")
    # EKS defaults: public endpoint on, open to 0.0.0.0/0 unless CIDRs are listed.
    if get(vpc, "endpointPublicAccess") is False:
        return
    cidrs = [str(c) for c in items(get(vpc, "publicAccessCidrs"))]
    open_cidrs = sorted(_OPEN_CIDRS.intersection(cidrs))
    if not cidrs or open_cidrs:
        shown = ", ".join(open_cidrs) or "0.0.0.0/0 (the default when none are listed)"
        report(f"the public cluster endpoint is open to {shown} in a production stack", None)


def _ecr_scan(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if get(args.props, "imageScanningConfiguration", "scanOnPush") is not True:
        report("imageScanningConfiguration.scanOnPush must be true", None)


log_group_retention_and_kms = ResourceValidationPolicy(
    name="log-group-retention-and-kms",
    description="CloudWatch log groups have a retention period and a customer KMS key.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_only(LOG_GROUP, _log_group),
)

secret_customer_kms = ResourceValidationPolicy(
    name="secret-customer-kms",
    description="Secrets Manager secrets are encrypted with a customer-managed KMS key.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_only(SECRETS_MANAGER_SECRET, _secret),
)

launch_template_imdsv2 = ResourceValidationPolicy(
    name="launch-template-imdsv2",
    description="EC2 launch templates require IMDSv2 session tokens.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_only(LAUNCH_TEMPLATE, _launch_template),
)

no_open_prod_endpoint = ResourceValidationPolicy(
    name="no-open-prod-cluster-endpoint",
    description="A production EKS cluster's public endpoint is not open to 0.0.0.0/0.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_only(EKS_CLUSTER, _cluster_endpoint),
    config_schema=PolicyConfigSchema(
        properties={"prodStacks": {"type": "array", "items": {"type": "string"}}}
    ),
)

ecr_scan_on_push = ResourceValidationPolicy(
    name="ecr-scan-on-push",
    description="ECR repositories scan every pushed image.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_only(ECR_REPOSITORY, _ecr_scan),
)

POLICIES = [
    log_group_retention_and_kms,
    secret_customer_kms,
    launch_template_imdsv2,
    no_open_prod_endpoint,
    ecr_scan_on_push,
]
