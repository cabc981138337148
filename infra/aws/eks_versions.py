"""The EKS Kubernetes release calendar, and what each minor version needs from its add-ons.

EKS gives a minor version 14 months of standard support, then 12 months of extended support at
an extra cost per cluster hour; after that, clusters are auto-upgraded and creation is refused.
Sources, read 2026-12-01:
- https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html (lifecycle rules)
- https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions-standard.html and
  https://endoflife.date/amazon-eks (release, end of standard and end of extended support dates)
- https://docs.aws.amazon.com/eks/latest/userguide/disable-extended-support.html (a cluster
  already in extended support cannot be switched to STANDARD)
- https://aws.amazon.com/eks/pricing/ (USD 0.10 per cluster hour in standard support, 0.60 in
  extended support)

Add a row here when EKS releases a minor version, and the matching cluster-autoscaler row below:
the validation, the default and the add-on pins all follow from these two tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final


class SupportPhase(StrEnum):
    """Where a Kubernetes minor version stands in the EKS lifecycle on a given day."""

    STANDARD = "standard"
    EXTENDED = "extended"
    ENDED = "ended"
    UNRELEASED = "unreleased"


class SupportType(StrEnum):
    """The cluster's ``upgradePolicy.supportType``: what happens at the end of standard support."""

    STANDARD = "STANDARD"
    EXTENDED = "EXTENDED"


@dataclass(frozen=True)
class Release:
    """One Kubernetes minor version on EKS and its support dates (all inclusive, UTC)."""

    version: str
    released: date
    end_of_standard: date
    end_of_extended: date

    def phase(self, on: date) -> SupportPhase:
        """Support phase on ``on``."""
        if on < self.released:
            return SupportPhase.UNRELEASED
        if on <= self.end_of_standard:
            return SupportPhase.STANDARD
        if on <= self.end_of_extended:
            return SupportPhase.EXTENDED
        return SupportPhase.ENDED


#: Every minor version EKS has offered recently, oldest first.
CALENDAR: Final = (
    Release("1.30", date(2024, 5, 23), date(2025, 7, 23), date(2026, 7, 23)),
    Release("1.31", date(2024, 9, 26), date(2025, 11, 26), date(2026, 11, 26)),
    Release("1.32", date(2025, 1, 25), date(2026, 3, 23), date(2027, 3, 23)),
    Release("1.33", date(2025, 5, 28), date(2026, 7, 29), date(2027, 7, 29)),
    Release("1.34", date(2025, 10, 6), date(2026, 12, 2), date(2027, 12, 2)),
    Release("1.35", date(2026, 1, 28), date(2027, 3, 27), date(2028, 3, 27)),
)

#: Control-plane price per cluster hour in each phase (USD, us-east-1 list price).
PRICE_PER_CLUSTER_HOUR: Final = {SupportPhase.STANDARD: 0.10, SupportPhase.EXTENDED: 0.60}

#: The version new stacks get. Keep it the newest release in standard support.
DEFAULT_VERSION: Final = "1.35"

#: cluster-autoscaler must run the minor version of the cluster it scales
#: (https://github.com/kubernetes/autoscaler/tree/master/cluster-autoscaler#releases).
#: Per minor: (Helm chart version of https://kubernetes.github.io/autoscaler, image tag). The image
#: tag is set explicitly, so the chart's own appVersion never decides what runs. Image tags are
#: the kubernetes/autoscaler release tags cluster-autoscaler-1.3x.y
#: (https://github.com/kubernetes/autoscaler/releases); chart 9.54.x carries appVersion 1.35.0.
CLUSTER_AUTOSCALER: Final = {
    "1.32": ("9.46.6", "v1.32.1"),
    "1.33": ("9.50.1", "v1.33.0"),
    "1.34": ("9.53.0", "v1.34.5"),
    "1.35": ("9.54.0", "v1.35.0"),
}


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def chart_for_minor(
    component: str,
    kubernetes_version: str,
    by_minor: Mapping[str, str],
    supported: Mapping[str, tuple[str, str]],
    where: str,
    verb: str = "supports",
) -> str:
    """The chart pinned for a cluster's minor in ``by_minor``, checked against its range.

    ``supported`` maps each chart version to the (lowest, highest) Kubernetes minor its project
    says it works with; a pin outside that range, or no pin at all, is a clear error.
    """
    version = by_minor.get(kubernetes_version)
    if version is None:
        raise ValueError(
            f"no {component} chart pinned for Kubernetes {kubernetes_version}; pinned: "
            f"{', '.join(sorted(by_minor))} ({where})"
        )
    low, high = supported[version]
    if not _minor(low) <= _minor(kubernetes_version) <= _minor(high):
        raise ValueError(
            f"{component} {version} {verb} Kubernetes {low}-{high}, not {kubernetes_version}"
        )
    return version


def release(version: str) -> Release | None:
    """The calendar row of ``version`` (``None`` when EKS never offered it)."""
    return next((r for r in CALENDAR if r.version == version), None)


def creatable(on: date) -> tuple[str, ...]:
    """Versions a cluster can be created or kept at on ``on``: released, extended support not over.

    Only versions this program also has add-on pins for are offered.
    """
    return tuple(
        r.version
        for r in CALENDAR
        if r.phase(on) in (SupportPhase.STANDARD, SupportPhase.EXTENDED)
        and r.version in CLUSTER_AUTOSCALER
    )


def support_problem(version: str, support_type: SupportType, on: date) -> str | None:
    """Why ``version`` cannot be deployed on ``on``: EKS refuses it, or the add-ons lack a pin."""
    refusal = eks_refusal(version, support_type, on)
    if refusal is None and version not in CLUSTER_AUTOSCALER:
        allowed = ", ".join(creatable(on))
        return f"no cluster-autoscaler pin for Kubernetes {version}; use one of {allowed}"
    return refusal


def eks_refusal(version: str, support_type: SupportType, on: date) -> str | None:
    """Why EKS itself would refuse ``version`` with ``support_type`` on ``on`` (``None``: no)."""
    row = release(version)
    allowed = ", ".join(creatable(on))
    if row is None:
        return f"EKS has no Kubernetes {version}; versions offered on {on}: {allowed}"
    phase = row.phase(on)
    if phase is SupportPhase.UNRELEASED:
        return f"Kubernetes {version} is released on EKS on {row.released}; offered: {allowed}"
    if phase is SupportPhase.ENDED:
        return (
            f"extended support for Kubernetes {version} ended on {row.end_of_extended}: EKS "
            f"refuses to create it and auto-upgrades existing clusters; use one of {allowed}"
        )
    if phase is SupportPhase.EXTENDED and support_type is SupportType.STANDARD:
        return (
            f"Kubernetes {version} has been in extended support since {row.end_of_standard}, and "
            "EKS does not allow upgradeSupportType STANDARD for a cluster already in extended "
            "support; set it to EXTENDED, or upgrade one minor version at a time"
        )
    return None


def support_warning(version: str, on: date) -> str | None:
    """A cost or deadline warning for a valid version on ``on`` (``None`` when there is none)."""
    row = release(version)
    if row is None:
        return None
    phase = row.phase(on)
    if phase is SupportPhase.EXTENDED:
        extra = (
            PRICE_PER_CLUSTER_HOUR[SupportPhase.EXTENDED]
            - PRICE_PER_CLUSTER_HOUR[SupportPhase.STANDARD]
        )
        return (
            f"Kubernetes {version} is in EKS extended support until {row.end_of_extended}: the "
            f"control plane costs USD {PRICE_PER_CLUSTER_HOUR[SupportPhase.EXTENDED]:.2f} per "
            f"cluster hour instead of {PRICE_PER_CLUSTER_HOUR[SupportPhase.STANDARD]:.2f} "
            f"(about USD {extra * 730:.0f} more a month); upgrade to {DEFAULT_VERSION}"
        )
    if phase is SupportPhase.STANDARD and (row.end_of_standard - on).days <= 60:
        return (
            f"standard support for Kubernetes {version} ends on {row.end_of_standard}; after that "
            "the cluster enters extended support (extra cost) or, with upgradeSupportType "
            f"STANDARD, is upgraded automatically; plan the upgrade to {DEFAULT_VERSION}"
        )
    return None
