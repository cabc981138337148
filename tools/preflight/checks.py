"""The account checks of ``make preflight``: what makes a first ``pulumi up`` fail in AWS.

Each function takes boto3 clients and the validated stack configuration and returns findings; none
changes anything in the account. The orchestration and the table live in ``preflight``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from infra.aws.eks_versions import SupportType
from infra.config import CapacityType, StackConfig
from tools.preflight.report import Finding, Status

#: Standard support ending sooner than this is worth a warning: the cluster then bills extended
#: support (EKS: 14 months standard, then 12 months extended at extra cost per cluster hour,
#: https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html). The same notice
#: as the config's own warning (infra/aws/eks_versions.py).
STANDARD_SUPPORT_NOTICE: Final = timedelta(days=60)

#: The vCPU quotas G and VT instances draw on, per purchasing option (Service Quotas, service
#: code ec2). Names: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html
#: ("All G and VT Spot Instance Requests"); codes as listed by ListServiceQuotas
#: (geyang/jaynes-starter-kit 02_ec2_docker_guide/setup/spot_limit.md for L-3819A6DF; the
#: on-demand code L-DB2E81BA as used with `aws service-quotas get-service-quota` in
#: tomomano/learn-aws-by-coding-source-code#1 and many GPU set-up guides). The quota's name in
#: the answer is checked too, so a renamed or moved code shows up as a warning, not a wrong verdict.
GPU_VCPU_QUOTAS: Final[Mapping[CapacityType, tuple[str, str]]] = {
    CapacityType.ON_DEMAND: ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    CapacityType.SPOT: ("L-3819A6DF", "All G and VT Spot Instance Requests"),
}
#: Families counted against the G and VT quotas (g4dn, g5, g6, g6e, gr6, vt1 ...).
_G_AND_VT: Final = re.compile(r"^(g|gr|vt)\d")


@dataclass(frozen=True)
class ServiceLinkedRole:
    """A service-linked role the first deploy relies on, and what its absence costs."""

    name: str
    service: str
    missing: Status
    why: str


#: https://docs.aws.amazon.com/eks/latest/userguide/using-service-linked-roles-eks.html,
#: .../using-service-linked-roles-eks-nodegroups.html, and for Spot
#: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/service-linked-roles-spot-instance-requests.html
SERVICE_LINKED_ROLES: Final = (
    ServiceLinkedRole(
        "AWSServiceRoleForAutoScaling",
        "autoscaling.amazonaws.com",
        Status.WARN,
        "Auto Scaling creates it with the account's first group (the node groups'); the "
        "cluster's KMS key admits it by aws:PrincipalArn once it exists",
    ),
    ServiceLinkedRole(
        "AWSServiceRoleForAmazonEKS",
        "eks.amazonaws.com",
        Status.WARN,
        "EKS creates it with the first cluster, but only if the deploying role may "
        "iam:CreateServiceLinkedRole",
    ),
    ServiceLinkedRole(
        "AWSServiceRoleForAmazonEKSNodegroup",
        "eks-nodegroup.amazonaws.com",
        Status.WARN,
        "EKS creates it with the first managed node group, but only if the deploying role may "
        "iam:CreateServiceLinkedRole",
    ),
)
#: A Spot launch by a principal that may not create this role fails with
#: AuthFailure.ServiceLinkedRoleCreationNotPermitted and the node never comes (seen with EC2
#: Fleet: eksctl-io/eksctl#6064, aws/karpenter-provider-aws#7998), so the GPU pods of a SPOT
#: stack would stay Pending.
SPOT_SERVICE_LINKED_ROLE: Final = ServiceLinkedRole(
    "AWSServiceRoleForEC2Spot",
    "spot.amazonaws.com",
    Status.BLOCKER,
    "EC2 creates it only for a first Spot request made in the console; Spot launches through "
    "an API expect it to exist and fail with AuthFailure.ServiceLinkedRoleCreationNotPermitted",
)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _cluster_versions(eks: Any) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"includeAll": True}
    while True:
        page = eks.describe_cluster_versions(**kwargs)
        versions.extend(page.get("clusterVersions", []))
        if not page.get("nextToken"):
            return versions
        kwargs["nextToken"] = page["nextToken"]


def _support_status(info: Mapping[str, Any]) -> str:
    """STANDARD_SUPPORT / EXTENDED_SUPPORT / UNSUPPORTED (``status`` is the deprecated spelling)."""
    if info.get("versionStatus"):
        return str(info["versionStatus"])
    return str(info.get("status", "")).upper().replace("-", "_")


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else "unknown"


def _upgrade_target(offered: Mapping[str, Mapping[str, Any]], now: datetime) -> str | None:
    """The newest offered version in standard support, else the newest still supported."""
    for wanted in ("STANDARD_SUPPORT", "EXTENDED_SUPPORT"):
        candidates = [
            version
            for version, info in offered.items()
            if _support_status(info) == wanted
            and not (
                isinstance(info.get("endOfExtendedSupportDate"), datetime)
                and info["endOfExtendedSupportDate"] <= now
            )
        ]
        if candidates:
            return max(candidates, key=_version_key)
    return None


def check_kubernetes_version(config: StackConfig, eks: Any, now: datetime) -> Finding:
    """The stack's ``kubernetesVersion`` against what EKS offers in the region, and its support.

    DescribeClusterVersions: https://docs.aws.amazon.com/eks/latest/APIReference/API_DescribeClusterVersions.html
    (versionStatus UNSUPPORTED | STANDARD_SUPPORT | EXTENDED_SUPPORT, end dates per version).
    """
    version, name = config.kubernetes_version, "eks version"
    offered = {str(v["clusterVersion"]): v for v in _cluster_versions(eks)}
    target = _upgrade_target(offered, now)
    choice = target or "<a version EKS offers>"
    fix = f"pulumi config set kubernetesVersion {choice} -s {config.stack}"
    info = offered.get(version)
    if info is None:
        listed = ", ".join(sorted(offered, key=_version_key)) or "none"
        return Finding(
            name,
            Status.BLOCKER,
            f"{version} is not offered in {config.region} (offered: {listed})",
            fix,
        )
    status = _support_status(info)
    standard_end = info.get("endOfStandardSupportDate")
    extended_end = info.get("endOfExtendedSupportDate")
    if status == "UNSUPPORTED" or (isinstance(extended_end, datetime) and extended_end <= now):
        return Finding(
            name,
            Status.BLOCKER,
            f"{version}: extended support ended {_day(extended_end)}; EKS creates no new "
            "clusters on it and upgrades existing ones",
            fix,
        )
    in_extended = status == "EXTENDED_SUPPORT" or (
        isinstance(standard_end, datetime) and standard_end <= now
    )
    if in_extended and config.upgrade_support_type is SupportType.STANDARD:
        return Finding(
            name,
            Status.BLOCKER,
            f"{version} is in extended support in {config.region}, and EKS does not allow "
            "upgradePolicy.supportType STANDARD for a cluster already in extended support",
            f"{fix}, or pulumi config set upgradeSupportType EXTENDED -s {config.stack}",
        )
    if in_extended:
        return Finding(
            name,
            Status.WARN,
            f"{version} is in extended support until {_day(extended_end)}: billed extra per "
            "cluster hour",
            fix,
        )
    if isinstance(standard_end, datetime) and standard_end - now <= STANDARD_SUPPORT_NOTICE:
        return Finding(
            name,
            Status.WARN,
            f"{version}: standard support ends {_day(standard_end)}, then extended support "
            "bills extra per cluster hour",
            fix if target != version else "plan the upgrade to the next minor version",
        )
    return Finding(
        name,
        Status.OK,
        f"{version}: standard support until {_day(standard_end)} in {config.region}",
    )


def stack_zones(config: StackConfig, ec2: Any) -> list[str]:
    """The AZs the stack's nodes land in: those of its existing subnets, or the first N the
    program's ``get_availability_zones(state=available, opt-in-not-required)`` returns. The
    provider sorts those by name (hashicorp/terraform-provider-aws, internal/service/ec2,
    TestAvailabilityZonesSort), so the first N are the first N names."""
    if config.existing_private_subnet_ids:
        subnets = ec2.describe_subnets(SubnetIds=list(config.existing_private_subnet_ids))
        return sorted({s["AvailabilityZone"] for s in subnets["Subnets"]})
    answer = ec2.describe_availability_zones(
        Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "opt-in-status", "Values": ["opt-in-not-required"]},
        ]
    )
    return sorted(z["ZoneName"] for z in answer["AvailabilityZones"])[: config.az_count]


def _offerings(ec2: Any, types: Sequence[str], zones: Sequence[str]) -> dict[str, set[str]]:
    offered: dict[str, set[str]] = {t: set() for t in types}
    kwargs: dict[str, Any] = {
        "LocationType": "availability-zone",
        "Filters": [
            {"Name": "instance-type", "Values": list(types)},
            {"Name": "location", "Values": list(zones)},
        ],
    }
    while True:
        page = ec2.describe_instance_type_offerings(**kwargs)
        for offer in page.get("InstanceTypeOfferings", []):
            offered.setdefault(offer["InstanceType"], set()).add(offer["Location"])
        if not page.get("NextToken"):
            return offered
        kwargs["NextToken"] = page["NextToken"]


def check_gpu_offerings(config: StackConfig, ec2: Any) -> list[Finding]:
    """Each ``gpuInstanceTypes`` entry against the AZs of the stack (DescribeInstanceTypeOfferings,
    location type availability-zone). A type offered in none of them gives a node group that can
    never start a node; one missing in some AZs starts nodes only in the others."""
    zones = stack_zones(config, ec2)
    offered = _offerings(ec2, config.gpu_instance_types, zones)
    findings = []
    for instance_type in config.gpu_instance_types:
        have = sorted(offered.get(instance_type, set()) & set(zones))
        missing = [z for z in zones if z not in have]
        lookup = (
            f"aws ec2 describe-instance-type-offerings --location-type availability-zone "
            f"--filters Name=instance-type,Values={instance_type} --region {config.region}"
        )
        check = f"gpu {instance_type}"
        if not have:
            findings.append(
                Finding(
                    check,
                    Status.BLOCKER,
                    f"not offered in any of the stack's AZs ({', '.join(zones)})",
                    f"drop it from gpuInstanceTypes or use AZs that offer it: {lookup}",
                )
            )
        elif missing:
            findings.append(
                Finding(
                    check,
                    Status.WARN,
                    f"offered in {', '.join(have)} but not in {', '.join(missing)}: its nodes "
                    "start only where it is offered",
                    lookup,
                )
            )
        else:
            findings.append(Finding(check, Status.OK, f"offered in {', '.join(zones)}"))
    return findings


def _quota_value(quotas: Any, code: str) -> tuple[float, str]:
    """(value, name) of an EC2 quota: the applied value, else AWS's default (GetServiceQuota
    answers NoSuchResourceException when no applied value exists)."""
    try:
        quota = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]
    except Exception as exc:
        if getattr(exc, "response", {}).get("Error", {}).get("Code") != "NoSuchResourceException":
            raise
        quota = quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]
    return float(quota["Value"]), str(quota.get("QuotaName", ""))


def check_gpu_quota(config: StackConfig, ec2: Any, quotas: Any) -> list[Finding]:
    """The G and VT vCPU quota of the stack's purchasing option against what the GPU node groups
    may reach together: one group per family, each up to gpuNodeMax nodes of its largest type
    (vCPUs from DescribeInstanceTypes). The quota is per region and shared by every G/VT
    instance, and cluster-autoscaler may grow every family's group at once."""
    g_types = [t for t in config.gpu_instance_types if _G_AND_VT.match(t)]
    others = [t for t in config.gpu_instance_types if t not in g_types]
    findings = []
    if others:
        findings.append(
            Finding(
                "gpu quota (P)",
                Status.WARN,
                f"{', '.join(others)} draw on the P-instance vCPU quotas, which this check does "
                "not read",
                f"check them in the Service Quotas console (ec2) for {config.region}",
            )
        )
    if not g_types:
        return findings
    answer = ec2.describe_instance_types(InstanceTypes=g_types)
    vcpus = {t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"]) for t in answer["InstanceTypes"]}
    largest_per_family: dict[str, str] = {}
    for instance_type in g_types:
        family = instance_type.split(".", 1)[0]
        current = largest_per_family.get(family)
        if current is None or vcpus.get(instance_type, 0) > vcpus.get(current, 0):
            largest_per_family[family] = instance_type
    per_node = sum(vcpus.get(t, 0) for t in largest_per_family.values())
    needed = config.gpu_nodes.max_size * per_node
    code, expected_name = GPU_VCPU_QUOTAS[config.gpu_capacity_type]
    value, quota_name = _quota_value(quotas, code)
    check = f"gpu quota ({config.gpu_capacity_type.value})"
    groups = " + ".join(f"{t} {vcpus.get(t, 0)}" for t in largest_per_family.values())
    sizing = (
        f"gpuNodeMax {config.gpu_nodes.max_size} per family group x ({groups} vCPUs) "
        f"= {needed} vCPUs"
    )
    increase = (
        f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code "
        f"{code} --desired-value {needed} --region {config.region}"
    )
    if quota_name and quota_name != expected_name:
        findings.append(
            Finding(
                check,
                Status.WARN,
                f"quota {code} is named {quota_name!r}, not {expected_name!r}; not compared",
                f"find the {expected_name!r} quota in the Service Quotas console",
            )
        )
    elif value < needed:
        findings.append(
            Finding(
                check,
                Status.BLOCKER,
                f"{expected_name} ({code}) is {value:g} vCPUs; {sizing}",
                increase,
            )
        )
    else:
        findings.append(
            Finding(
                check,
                Status.OK,
                f"{expected_name} ({code}) is {value:g} vCPUs >= {sizing} (shared with every "
                "G/VT instance already running in the region)",
            )
        )
    return findings


def check_service_linked_roles(config: StackConfig, iam: Any) -> list[Finding]:
    """The service-linked roles a first deploy relies on (IAM GetRole on each name)."""
    roles: Iterable[ServiceLinkedRole] = SERVICE_LINKED_ROLES
    if config.gpu_capacity_type is CapacityType.SPOT:
        roles = (*SERVICE_LINKED_ROLES, SPOT_SERVICE_LINKED_ROLE)
    findings = []
    for role in roles:
        check = f"role {role.name.removeprefix('AWSServiceRoleFor')}"
        try:
            iam.get_role(RoleName=role.name)
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != "NoSuchEntity":
                raise
            findings.append(
                Finding(
                    check,
                    role.missing,
                    f"{role.name} is missing: {role.why}",
                    f"aws iam create-service-linked-role --aws-service-name {role.service}",
                )
            )
            continue
        findings.append(Finding(check, Status.OK, f"{role.name} exists"))
    return findings
