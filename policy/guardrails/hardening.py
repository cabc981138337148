"""Mandatory AWS hardening: EKS secrets encryption, KMS rotation, node groups on the IMDSv2
launch template, and no security group rule open to the whole internet.

Sources: EKS ``encryptionConfig`` with ``resources: ["secrets"]``
(https://docs.aws.amazon.com/eks/latest/userguide/envelope-encryption.html); managed node groups
take instance settings only from a launch template, ``remoteAccess`` cannot be combined with one
(https://docs.aws.amazon.com/eks/latest/userguide/launch-templates.html); IMDSv2 with hop limit 1
keeps pods from the node role's credentials
(https://docs.aws.amazon.com/eks/latest/best-practices/identity-and-access-management.html).
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .props import EKS_CLUSTER, LAUNCH_TEMPLATE, NODE_GROUP, get, items

KMS_KEY = "aws:kms/key:Key"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
#: Only symmetric encryption keys support automatic rotation (KMS developer guide).
_ROTATABLE_SPECS = frozenset({None, "", "SYMMETRIC_DEFAULT"})


def _eks_secrets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != EKS_CLUSTER:
        return
    config = get(args.props, "encryptionConfig")
    resources = [str(r) for r in items(get(config, "resources"))]
    if "secrets" not in resources or not get(config, "provider", "keyArn"):
        report(
            "encryptionConfig must encrypt resources ['secrets'] with provider.keyArn "
            "(KMS envelope encryption of Kubernetes secrets)",
            None,
        )


def _kms_rotation(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != KMS_KEY:
        return
    spec = get(args.props, "customerMasterKeySpec") or get(args.props, "keySpec")
    if spec in _ROTATABLE_SPECS and get(args.props, "enableKeyRotation") is not True:
        report("enableKeyRotation must be true (yearly automatic rotation)", None)


def _node_group_template(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != NODE_GROUP:
        return
    template = get(args.props, "launchTemplate")
    if not (get(template, "id") or get(template, "name")) or not get(template, "version"):
        report(
            "no launchTemplate (id or name, and version): the node group would escape the "
            "IMDSv2 launch-template rules and take EKS's defaults",
            None,
        )
    if get(args.props, "remoteAccess") is not None:
        report("remoteAccess (SSH to nodes) is refused; use SSM if you must reach a node", None)


def _launch_template_hops(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != LAUNCH_TEMPLATE:
        return
    options = get(args.props, "metadataOptions")
    hops = get(options, "httpPutResponseHopLimit")
    if get(options, "httpEndpoint") != "disabled" and (hops is None or hops > 1):
        report(
            f"metadataOptions.httpPutResponseHopLimit is {hops!r}; 1 keeps pods from reaching "
            "the instance metadata service (and the node role's credentials)",
            None,
        )


def _open_cidrs(rule: Any, *keys: str) -> list[str]:
    found: list[str] = []
    for key in keys:
        value = get(rule, key)
        values = [value] if isinstance(value, str) else items(value)
        found += [str(v) for v in values if str(v) in OPEN_CIDRS]
    return found


def _world_open(args: ResourceValidationArgs, report: ReportViolation) -> None:
    open_to: list[str] = []
    if args.resource_type == SECURITY_GROUP:
        for rule in items(get(args.props, "ingress")):
            open_to += _open_cidrs(rule, "cidrBlocks", "ipv6CidrBlocks")
    elif args.resource_type == SECURITY_GROUP_RULE and get(args.props, "type") == "ingress":
        open_to += _open_cidrs(args.props, "cidrBlocks", "ipv6CidrBlocks")
    elif args.resource_type == INGRESS_RULE:
        open_to += _open_cidrs(args.props, "cidrIpv4", "cidrIpv6")
    if open_to:
        report(f"ingress open to {', '.join(sorted(set(open_to)))}; allow-list sources", None)


eks_secrets_encrypted = ResourceValidationPolicy(
    name="eks-secrets-encrypted",
    description="EKS clusters encrypt Kubernetes secrets with a KMS key.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_eks_secrets,
)

kms_key_rotation = ResourceValidationPolicy(
    name="kms-key-rotation",
    description="Symmetric KMS keys rotate automatically.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_kms_rotation,
)

node_groups_use_launch_template = ResourceValidationPolicy(
    name="node-groups-use-launch-template",
    description="Managed node groups launch from a launch template, without SSH remote access.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_node_group_template,
)

launch_template_hop_limit = ResourceValidationPolicy(
    name="launch-template-hop-limit",
    description="Launch templates keep the IMDS hop limit at 1.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_launch_template_hops,
)

no_world_open_ingress = ResourceValidationPolicy(
    name="no-world-open-security-group-ingress",
    description="No security group accepts traffic from 0.0.0.0/0 or ::/0.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_world_open,
)

POLICIES = [
    eks_secrets_encrypted,
    kms_key_rotation,
    node_groups_use_launch_template,
    launch_template_hop_limit,
    no_world_open_ingress,
]
