"""Mandatory policies on image registries: nothing exposes images, tags stay immutable, KMS.

Sources: ECR tag mutability and its exclusion filters (WILDCARD only), AWS ECR API reference
``ImageTagMutabilityExclusionFilter``
(https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageTagMutabilityExclusionFilter.html);
ECR repository and registry policies are IAM resource policies, where ``"Principal": "*"``
without a condition grants every AWS account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .props import ECR_REPOSITORY, get, items

ECR_REPOSITORY_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
ECR_REGISTRY_POLICY = "aws:ecr/registryPolicy:RegistryPolicy"
ECR_PUBLIC_REPOSITORY = "aws:ecrpublic/repository:Repository"
ECR_PUBLIC_POLICY = "aws:ecrpublic/repositoryPolicy:RepositoryPolicy"
#: The only tags that may stay mutable: pull-request images (re-pushed on every PR update).
ALLOWED_MUTABLE_TAG_FILTERS = frozenset({"pr-*"})


def _statements(document: Any) -> list[Any]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    statements = get(document, "Statement")
    if isinstance(statements, Mapping):
        return [statements]
    return items(statements)


def _is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    aws = get(principal, "AWS")
    return aws == "*" or "*" in [str(p) for p in items(aws)]


def _policy_exposes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for statement in _statements(get(args.props, "policy")):
        if get(statement, "Effect") != "Allow" or not _is_everyone(get(statement, "Principal")):
            continue
        if get(statement, "Condition") is None:
            report(
                "an Allow statement grants Principal '*' without a Condition: every AWS "
                "account could pull (or push) images; name the accounts or roles",
                None,
            )


def _not_exposed(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type in (ECR_PUBLIC_REPOSITORY, ECR_PUBLIC_POLICY):
        report("ECR Public repositories serve their images to anyone; use a private ECR", None)
    elif args.resource_type in (ECR_REPOSITORY_POLICY, ECR_REGISTRY_POLICY):
        _policy_exposes(args, report)


def _immutable_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != ECR_REPOSITORY:
        return
    mutability = get(args.props, "imageTagMutability") or "MUTABLE"  # ECR's default
    if mutability == "IMMUTABLE":
        return
    if mutability != "IMMUTABLE_WITH_EXCLUSION":
        report(f"imageTagMutability is {mutability!r}; tags must be IMMUTABLE", None)
        return
    filters = items(get(args.props, "imageTagMutabilityExclusionFilters"))
    wrong = [
        f"{get(f, 'filterType')}:{get(f, 'filter')}"
        for f in filters
        if get(f, "filterType") != "WILDCARD" or get(f, "filter") not in ALLOWED_MUTABLE_TAG_FILTERS
    ]
    if wrong or not filters:
        report(
            f"mutable tag exclusions {wrong or '(none listed)'} go beyond the pull-request "
            f"images; only {sorted(ALLOWED_MUTABLE_TAG_FILTERS)} may stay mutable",
            None,
        )


def _kms(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != ECR_REPOSITORY:
        return
    configs = items(get(args.props, "encryptionConfigurations"))
    kms = [c for c in configs if get(c, "encryptionType") == "KMS" and get(c, "kmsKey")]
    if not kms:
        report(
            "encryptionConfigurations lacks KMS with a customer key (ECR defaults to AES256 "
            "under an AWS-owned key); set encryptionType KMS and kmsKey",
            None,
        )


registry_not_exposed = ResourceValidationPolicy(
    name="registry-not-exposed",
    description="No public ECR repository, and no registry/repository policy open to '*'.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_not_exposed,
)

ecr_tags_immutable = ResourceValidationPolicy(
    name="ecr-tags-immutable",
    description="ECR tags are immutable, except the pull-request exclusion pr-*.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_immutable_tags,
)

ecr_customer_kms = ResourceValidationPolicy(
    name="ecr-customer-kms",
    description="ECR repositories are encrypted with a customer-managed KMS key.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_kms,
)

POLICIES = [registry_not_exposed, ecr_tags_immutable, ecr_customer_kms]
