"""NVIDIA GPU instance types the AL2023 NVIDIA AMI runs: GPUs, vCPUs and accelerator per type.

Looked up per instance type, never guessed from the size suffix: a p5.4xlarge carries one H100,
a p5.48xlarge eight. Source: Amazon EC2 accelerated computing instance specifications,
https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html (read 2026-12-01).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class GpuInstance:
    """One GPU instance type: GPUs per instance, vCPUs (what the vCPU quotas count)."""

    gpus: int
    vcpus: int


#: The value of the ``k8s.amazonaws.com/accelerator`` label per family. cluster-autoscaler on AWS
#: reads this label to tell GPU nodes apart (cloudprovider/aws GPULabel), and an empty group
#: advertises it through a node-template tag.
ACCELERATOR_BY_FAMILY: Final = {
    "g4dn": "nvidia-tesla-t4",
    "g5": "nvidia-a10g",
    "g6": "nvidia-l4",
    "gr6": "nvidia-l4",
    "g6e": "nvidia-l40s",
    "p4d": "nvidia-a100",
    "p4de": "nvidia-a100",
    "p5": "nvidia-h100",
    "p5e": "nvidia-h200",
    "p5en": "nvidia-h200",
}

_G_SIZES: Final = {
    "xlarge": GpuInstance(1, 4),
    "2xlarge": GpuInstance(1, 8),
    "4xlarge": GpuInstance(1, 16),
    "8xlarge": GpuInstance(1, 32),
    "16xlarge": GpuInstance(1, 64),
    "12xlarge": GpuInstance(4, 48),
    "24xlarge": GpuInstance(4, 96),
    "48xlarge": GpuInstance(8, 192),
}

#: Every supported instance type.
GPU_INSTANCES: Final[dict[str, GpuInstance]] = {
    **{f"g4dn.{s}": i for s, i in _G_SIZES.items() if s not in ("24xlarge", "48xlarge")},
    "g4dn.metal": GpuInstance(8, 96),
    **{f"g5.{s}": i for s, i in _G_SIZES.items()},
    **{f"g6.{s}": i for s, i in _G_SIZES.items()},
    **{f"g6e.{s}": i for s, i in _G_SIZES.items()},
    "gr6.4xlarge": GpuInstance(1, 16),
    "gr6.8xlarge": GpuInstance(1, 32),
    "p4d.24xlarge": GpuInstance(8, 96),
    "p4de.24xlarge": GpuInstance(8, 96),
    "p5.4xlarge": GpuInstance(1, 16),
    "p5.48xlarge": GpuInstance(8, 192),
    "p5e.48xlarge": GpuInstance(8, 192),
    "p5en.48xlarge": GpuInstance(8, 192),
}


def family_of(instance_type: str) -> str:
    """``g5`` for ``g5.xlarge``."""
    return instance_type.split(".", 1)[0]


def gpus_of(instance_type: str) -> int:
    """GPUs one instance of a supported type carries (KeyError for an unknown type)."""
    return GPU_INSTANCES[instance_type].gpus


def group_by_family(instance_types: tuple[str, ...] | list[str]) -> dict[str, tuple[str, ...]]:
    """Instance types per family, families in the order they first appear."""
    groups: dict[str, list[str]] = {}
    for instance_type in instance_types:
        groups.setdefault(family_of(instance_type), []).append(instance_type)
    return {family: tuple(types) for family, types in groups.items()}
