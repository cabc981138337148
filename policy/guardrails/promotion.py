"""Prod runs only the image staging runs: the promotion rule, enforced by the pack.

The pack learns staging's digest from its policy configuration: the deploy step reads staging's
``imageDigest`` stack output and passes ``--policy-pack-config`` with
``{"prod-image-promoted-from-staging": {"stagingImageDigest": "sha256:..."}}`` (see
tools/delivery/promotion.py). Digests are compared, not whole references, so a copy replicated
to another region or account (same digest, another registry host) passes. Without the setting a
production deployment is refused: an unknown staging digest must never mean "anything goes".
Only the deploy step's automatic rollback adds ``rollbackImageDigest``: the digest prod ran just
before, which the pack admitted then.
"""

from __future__ import annotations

import re

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .aws import prod_stacks
from .props import WORKLOAD_TYPES, containers, get, pod_spec, stack_of

POLICY_NAME = "prod-image-promoted-from-staging"
CONFIG_KEY = "stagingImageDigest"
#: Set only by the deploy step's rollback: the digest prod ran before, admitted back.
ROLLBACK_KEY = "rollbackImageDigest"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _promoted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in WORKLOAD_TYPES:
        return
    config = args.get_config()
    if stack_of(args.urn) not in prod_stacks(config):
        return
    expected = get(config, CONFIG_KEY)
    if not isinstance(expected, str) or not _DIGEST.match(expected):
        report(
            f"{CONFIG_KEY} is {expected!r}: the digest staging runs is unknown, so no image can "
            "be deployed to production (python -m tools.delivery.deploy passes it)",
            None,
        )
        return
    allowed = {expected, get(config, ROLLBACK_KEY)}
    for label, container in containers(pod_spec(args.resource_type, args.props)):
        image = get(container, "image")
        digest = image.rpartition("@")[2] if isinstance(image, str) else None
        if digest not in allowed:
            report(
                f"{label}: image {image!r} is not the digest staging runs ({expected}); "
                "promote the staging-verified image",
                None,
            )


prod_image_promoted_from_staging = ResourceValidationPolicy(
    name=POLICY_NAME,
    description="Production workloads run exactly the image digest staging runs.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_promoted,
    config_schema=PolicyConfigSchema(
        properties={
            CONFIG_KEY: {"type": "string"},
            ROLLBACK_KEY: {"type": "string"},
            "prodStacks": {"type": "array", "items": {"type": "string"}},
        }
    ),
)

POLICIES = [prod_image_promoted_from_staging]
