"""The value types of a stack's configuration: choices, the error, secrets and node bounds."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import pulumi

from infra.environments import Environment

__all__ = [
    "PROJECT",
    "CapacityType",
    "CiRunner",
    "ConfigError",
    "Environment",
    "ImageVariant",
    "NatPolicy",
    "NodeScaling",
    "SecretStr",
    "ServiceType",
]

#: The Pulumi project name; config keys of this program live in its namespace.
PROJECT: Final = "torch-eks-inference"


class NatPolicy(StrEnum):
    """How private subnets reach the internet: one shared NAT gateway or one per AZ."""

    SINGLE = "single"
    PER_AZ = "per-az"


class CapacityType(StrEnum):
    """EC2 purchasing option of the GPU node group."""

    SPOT = "SPOT"
    ON_DEMAND = "ON_DEMAND"


class ImageVariant(StrEnum):
    """Which torch build the image carries (``TORCH_VARIANT`` build argument)."""

    CPU = "cpu"
    CUDA = "cuda"


class CiRunner(StrEnum):
    """Where the CI jobs that run ``pulumi`` against this stack's cluster execute.

    github-hosted runners have no fixed egress addresses, so they need a public endpoint open to
    0.0.0.0/0; a self-hosted runner or a Pulumi Deployments customer-managed agent inside the VPC
    reaches the private endpoint (see docs/cluster-access.md).
    """

    GITHUB_HOSTED = "github-hosted"
    SELF_HOSTED_VPC = "self-hosted-vpc"
    PULUMI_DEPLOYMENTS_AGENT = "pulumi-deployments-agent"


class ServiceType(StrEnum):
    """How the inference Service is exposed inside the VPC."""

    INTERNAL_NLB = "internal-nlb"
    CLUSTER_IP = "cluster-ip"


class ConfigError(pulumi.RunError):
    """Every problem found in a stack's configuration, reported together."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"invalid configuration for stack '{stack}' ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n{lines}"
        )


class SecretStr:
    """A secret config value that never shows itself in ``repr``, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plain value; only for wrapping it in ``pulumi.Output.secret``."""
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('[secret]')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class NodeScaling:
    """Size bounds of a managed node group."""

    min_size: int
    desired_size: int
    max_size: int
