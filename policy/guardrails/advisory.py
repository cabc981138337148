"""Advisory policies: cost allocation tags, and spot capacity for GPUs outside production."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .aws import prod_stacks
from .props import (
    ECR_REPOSITORY,
    EKS_CLUSTER,
    GPU_RESOURCE,
    LAUNCH_TEMPLATE,
    NODE_GROUP,
    get,
    items,
    stack_of,
)

#: Tags that attribute a resource's cost; the program puts them on every AWS resource.
DEFAULT_COST_TAGS = ("project", "stack", "environment")
#: AWS resource types of this program that bill and accept tags.
TAGGED_TYPES = frozenset(
    {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/eip:Eip",
        LAUNCH_TEMPLATE,
        EKS_CLUSTER,
        NODE_GROUP,
        ECR_REPOSITORY,
        "aws:secretsmanager/secret:Secret",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:kms/key:Key",
    }
)
_GPU_INSTANCE_FAMILIES = ("g", "p")


def _provider_default_tags(args: ResourceValidationArgs) -> Mapping[str, Any]:
    """``defaultTags.tags`` of the resource's AWS provider (object, or JSON text in state)."""
    provider = args.provider
    default_tags = get(getattr(provider, "props", None), "defaultTags")
    if isinstance(default_tags, str):
        try:
            default_tags = json.loads(default_tags)
        except ValueError:
            return {}
    tags = get(default_tags, "tags")
    return tags if isinstance(tags, Mapping) else {}


def _required_tags(config: Any) -> tuple[str, ...]:
    names = get(config, "requiredTags")
    return tuple(str(n) for n in items(names)) if names is not None else DEFAULT_COST_TAGS


def _cost_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in TAGGED_TYPES:
        return
    tags = get(args.props, "tags")
    present = set(tags.keys()) if isinstance(tags, Mapping) else set()
    present |= set(_provider_default_tags(args).keys())
    missing = [name for name in _required_tags(args.get_config()) if name not in present]
    if missing:
        report(f"missing cost allocation tags: {', '.join(missing)}", None)


def is_gpu_node_group(props: Any) -> bool:
    """A node group is a GPU group by its AMI type, instance types, GPU taint or GPU labels."""
    ami = str(get(props, "amiType") or "")
    if "NVIDIA" in ami or "GPU" in ami:
        return True
    for instance_type in items(get(props, "instanceTypes")):
        family = str(instance_type).split(".", 1)[0]
        if family[:1] in _GPU_INSTANCE_FAMILIES and family[1:2].isdigit():
            return True
    if any(get(taint, "key") == GPU_RESOURCE for taint in items(get(props, "taints"))):
        return True
    labels = get(props, "labels")
    return isinstance(labels, Mapping) and any("gpu" in str(key).lower() for key in labels)


def _spot_gpus(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != NODE_GROUP or stack_of(args.urn) in prod_stacks(args.get_config()):
        return
    if is_gpu_node_group(args.props) and get(args.props, "capacityType") != "SPOT":
        report(
            f"GPU node group in non-production stack {stack_of(args.urn)!r} uses "
            f"{get(args.props, 'capacityType') or 'ON_DEMAND'!r} capacity; SPOT costs far less",
            None,
        )


cost_tags_present = ResourceValidationPolicy(
    name="cost-tags-present",
    description="Billable AWS resources carry the cost allocation tags.",
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=_cost_tags,
    config_schema=PolicyConfigSchema(
        properties={"requiredTags": {"type": "array", "items": {"type": "string"}}}
    ),
)

spot_gpus_outside_prod = ResourceValidationPolicy(
    name="spot-gpus-outside-prod",
    description="GPU node groups of non-production stacks use SPOT capacity.",
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=_spot_gpus,
    config_schema=PolicyConfigSchema(
        properties={"prodStacks": {"type": "array", "items": {"type": "string"}}}
    ),
)

POLICIES = [cost_tags_present, spot_gpus_outside_prod]
