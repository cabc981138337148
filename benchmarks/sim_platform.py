"""Platform figures the scaling simulation runs on, each with where it comes from.

Measured here (``benchmarks/results.md``, *Container* section): the CUDA image size and the
container's cold start. Published elsewhere: control-loop defaults (Kubernetes, KEDA,
cluster-autoscaler, Karpenter), node provisioning times and image pull rates on EKS, and EC2
prices. Where a figure is our own choice rather than a default, it says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from benchmarks.service_curve import RESULTS

CapacityType = Literal["on-demand", "spot"]

# --- Pod start -----------------------------------------------------------------------------

#: Effective pull-and-unpack rate of a large ML image from a registry onto a fresh EKS node:
#: the EKS Blueprints "ML container cache" pattern measured nvcr.io/nvidia/pytorch:24.08-py3
#: (20.4 GB unpacked) starting in 334 s uncached vs < 5 s from a cached volume.
#: https://aws-ia.github.io/terraform-aws-eks-blueprints/patterns/machine-learning/ml-container-cache
PULL_REFERENCE_GB: Final = 20.4
PULL_REFERENCE_S: Final = 334.0
PULL_GB_PER_S: Final = PULL_REFERENCE_GB / PULL_REFERENCE_S  # ~0.061 GB/s (unpacked bytes)


def _container_figure(pattern: str, results: Path) -> float:
    match = re.search(pattern, results.read_text())
    if not match:
        raise ValueError(
            f"{results.name} has no container figure matching {pattern!r} "
            "(run `make bench-container`)"
        )
    return float(match.group(1))


def cuda_image_gb(results: Path = RESULTS) -> float:
    """Unpacked size of the CUDA image, from the container benchmark."""
    return _container_figure(r"\| CUDA image size[^|]*\| ([0-9.]+) GB", results)


def cold_start_s(results: Path = RESULTS) -> float:
    """Container start to ready (pod flags), median, from the container benchmark.

    Measured on the CPU image without a GPU; CUDA context creation on a GPU node comes on top
    and is not in this figure.
    """
    return _container_figure(r"\| cold start[^|]*\| ([0-9.]+) \(", results)


def image_pull_s(results: Path = RESULTS) -> float:
    """Seconds to pull and unpack the CUDA image onto a node that has never run it."""
    return cuda_image_gb(results) / PULL_GB_PER_S


# --- Node provisioning ---------------------------------------------------------------------

#: cluster-autoscaler looks for unschedulable pods every 10 s (``--scan-interval`` default), and
#: "end-to-end, that process takes 3 to 5 minutes on AWS EKS with standard AMIs" (pending pod
#: to node Ready); Karpenter, watching pods directly, "from pod-pending to node-Ready ... is
#: typically under 60 seconds". Both from
#: https://zop.dev/resources/blogs/kubernetes-cluster-autoscaler-vs-karpenter-production/
#: (2026-04-21). We take the middle of CA's range and the top of Karpenter's.
CA_SCAN_INTERVAL_S: Final = 10
CA_NODE_READY_S: Final = 240 - CA_SCAN_INTERVAL_S // 2
KARPENTER_NODE_READY_S: Final = 60
#: Karpenter batches pending pods: a window closes after 1 s without new pods, at most 10 s.
#: https://karpenter.sh/docs/reference/settings/ (BATCH_IDLE_DURATION, BATCH_MAX_DURATION)
KARPENTER_BATCH_IDLE_S: Final = 1
KARPENTER_BATCH_MAX_S: Final = 10
#: cluster-autoscaler removes a node unneeded for 10 min, and none within 10 min of a scale-up
#: (``--scale-down-unneeded-time``, ``--scale-down-delay-after-add`` defaults; see the
#: cluster-autoscaler FAQ, github.com/kubernetes/autoscaler cluster-autoscaler/FAQ.md).
CA_SCALE_DOWN_UNNEEDED_S: Final = 600
CA_SCALE_DOWN_DELAY_AFTER_ADD_S: Final = 600
#: Karpenter ``disruption.consolidateAfter`` for an empty GPU node: our choice (the NodePool
#: field has no universal default worth relying on); 5 min keeps a node through the gaps of a
#: bursty hour without paying for an idle one for long.
KARPENTER_CONSOLIDATE_AFTER_S: Final = 300

# --- Control loops -------------------------------------------------------------------------

#: HPA controller sync period (kube-controller-manager ``--horizontal-pod-autoscaler-sync-period``,
#: default 15 s) and tolerance (0.1): https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
HPA_SYNC_S: Final = 15
HPA_TOLERANCE: Final = 0.1
#: metrics-server scrapes the kubelets every 15 s (``--metric-resolution`` default).
METRICS_SERVER_RESOLUTION_S: Final = 15
#: The AMP managed scraper's scrape interval for the service's /metrics: our choice (the
#: scraper configuration sets it; AWS's example uses 60 s, which would add up to a minute of
#: lag to every scale-up decision).
#: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/managed-prometheus-collectors-scraper-configuration.html
SCRAPE_INTERVAL_S: Final = 15

# --- Prices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstancePrice:
    """Hourly Linux price of one single-GPU instance type in us-east-1 / us-west-2."""

    instance_type: str
    gpu: str
    on_demand_usd_h: float
    spot_usd_h: float

    def per_hour(self, capacity: CapacityType) -> float:
        """USD per hour for that capacity type."""
        return self.on_demand_usd_h if capacity == "on-demand" else self.spot_usd_h


#: On-demand, Linux, us-east-1: g5.xlarge's $1.006/h is quoted for 2026-06-17 by
#: https://www.factualminds.com/blog/amazon-ec2-on-demand-pricing-instance-families-2026/;
#: g6.xlarge and g6e.xlarge are AWS's list prices (https://aws.amazon.com/ec2/pricing/on-demand/)
#: as we know them, not confirmed by a stored source here: check before relying on them.
#: Spot: a snapshot, not a constant; Spot prices move with supply
#: (https://aws.amazon.com/ec2/spot/pricing/). The figures below assume 60 % off on-demand, a
#: typical level for these types; check yours with
#: ``aws ec2 describe-spot-price-history --instance-types g5.xlarge``. The simulation's choice
#: between policies does not depend on the level: every policy pays the same price per hour.
PRICES: Final[dict[str, InstancePrice]] = {
    p.instance_type: p
    for p in (
        InstancePrice("g5.xlarge", "A10G 24 GB", 1.006, 0.402),
        InstancePrice("g6.xlarge", "L4 24 GB", 0.8048, 0.322),
        InstancePrice("g6e.xlarge", "L40S 48 GB", 1.861, 0.744),
    )
}
PRICES_AS_OF: Final = "2026-06"  # the g5.xlarge quote's date
#: EC2 Linux bills per second with a 60 s minimum per instance launch (same source).
BILLING_MINIMUM_S: Final = 60
