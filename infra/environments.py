"""Every default of a stack's configuration, per environment kind: the one place they live.

Why here, and not in ``Pulumi.yaml`` or the stack files:

- A stack's environment kind is not always its name (``eu-prod`` with ``environment: prod``),
  so the defaults must follow the kind, not a file; only code can do that.
- ``Pulumi.yaml`` has one default per key for every stack, so it cannot say "3 on prod, 2
  elsewhere"; it declares those keys with a sentinel default (``""``, ``-1`` or ``[]``) that
  means "the environment's default", and its descriptions point here instead of quoting numbers.
- The shipped ``stacks/Pulumi.<stack>.yaml`` files state only what that stack decides for itself
  (region, role ARNs, endpoint allow-list, version pin, a deliberate deviation); a value equal to
  its environment's default there would be a second copy that silently stops agreeing.
- The offline tools, the benchmarks and the tests import this table, so they cannot drift.

``tests/infra/test_config.py`` fails when a description quotes a per-environment default or a
stack file repeats one. ``python -m infra.environments`` prints the table (every key, each
environment), so a reader still sees each environment whole.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from infra.aws import eks_versions


class Environment(StrEnum):
    """Kind of stack: long-lived environments, or an ephemeral stack for one pull request."""

    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"
    PR = "pr"


#: Autoscaling targets for a 100 ms and a 250 ms p99 SLO: what ``make simulate`` favours
#: (``benchmarks/scaling_targets.py`` ``RECOMMENDED``; see ``infra/scaling_config.py``).
_SLO_100_MS: Final = {
    "latencySloMs": 100,
    "scalingTargetInFlight": 28,
    "scalingTargetRequestRate": 639,
    "scalingTargetQueueMs": 50,
}
_SLO_250_MS: Final = {
    "latencySloMs": 250,
    "scalingTargetInFlight": 64,
    "scalingTargetRequestRate": 769,
    "scalingTargetQueueMs": 125,
}

#: Per-environment defaults. pr stacks borrow dev's cluster, so they have no cluster keys.
ENVIRONMENT_DEFAULTS: Final[Mapping[Environment, Mapping[str, Any]]] = {
    Environment.DEV: {
        "availabilityZoneCount": 2,
        "natGateways": "single",
        "gpuInstanceTypes": ["g5.xlarge", "g6.xlarge", "g4dn.xlarge"],
        "gpuCapacityType": "SPOT",
        "gpuNodeMin": 0,
        "gpuNodeMax": 5,
        "prGpuSlots": 2,
        "upgradeSupportType": "STANDARD",
        "ciRunner": "self-hosted-vpc",
        "systemNodeMin": 1,
        "systemNodeDesired": 2,
        "systemNodeMax": 3,
        "logRetentionDays": 7,
        "hpaMinReplicas": 1,
        "hpaMaxReplicas": 2,
        "imageVariant": "cuda",
        "serviceType": "cluster-ip",
        "deletionProtection": False,
        "secretRecoveryDays": 7,
        "smokeP99Ms": 500,
        **_SLO_250_MS,
        "scaleToZero": "off-hours",
    },
    Environment.STAGING: {
        "availabilityZoneCount": 2,
        "natGateways": "single",
        "gpuInstanceTypes": ["g5.xlarge", "g6.xlarge"],
        "gpuCapacityType": "SPOT",
        "gpuNodeMin": 0,
        "gpuNodeMax": 4,
        "prGpuSlots": 0,
        "upgradeSupportType": "STANDARD",
        "ciRunner": "self-hosted-vpc",
        "systemNodeMin": 2,
        "systemNodeDesired": 2,
        "systemNodeMax": 3,
        "logRetentionDays": 30,
        "hpaMinReplicas": 1,
        "hpaMaxReplicas": 3,
        "imageVariant": "cuda",
        "serviceType": "internal-nlb",
        "deletionProtection": False,
        "secretRecoveryDays": 7,
        "smokeP99Ms": 300,
        **_SLO_100_MS,
        "scaleToZero": "never",
    },
    Environment.PROD: {
        "availabilityZoneCount": 3,
        "natGateways": "per-az",
        "gpuInstanceTypes": ["g5.xlarge"],
        "gpuCapacityType": "ON_DEMAND",
        "gpuNodeMin": 2,
        "gpuNodeMax": 7,
        "prGpuSlots": 0,
        # EXTENDED keeps prod on its version past standard support (at extended-support prices)
        # rather than being upgraded by EKS on a date of its choosing.
        "upgradeSupportType": "EXTENDED",
        "ciRunner": "self-hosted-vpc",
        "systemNodeMin": 3,
        "systemNodeDesired": 3,
        "systemNodeMax": 4,
        "logRetentionDays": 365,
        "hpaMinReplicas": 2,
        "hpaMaxReplicas": 6,
        "imageVariant": "cuda",
        "serviceType": "internal-nlb",
        "deletionProtection": True,
        "secretRecoveryDays": 30,
        "smokeP99Ms": 250,
        **_SLO_100_MS,
        "scaleToZero": "never",
    },
    Environment.PR: {
        "logRetentionDays": 3,
        "hpaMinReplicas": 1,
        "hpaMaxReplicas": 1,
        "imageVariant": "cuda",
        "serviceType": "cluster-ip",
        "deletionProtection": False,
        "secretRecoveryDays": 0,
        "smokeP99Ms": 500,
        **_SLO_250_MS,
        "scaleToZero": "off-hours",
    },
}

#: Defaults that do not depend on the environment (Pulumi.yaml declares these very values, and a
#: test holds it to them, because the Pulumi CLI injects its defaults into every stack).
COMMON_DEFAULTS: Final[Mapping[str, Any]] = {
    "kubernetesVersion": eks_versions.DEFAULT_VERSION,
    "clusterName": "",
    "vpcCidr": "10.0.0.0/16",
    "existingVpcId": "",
    "existingPrivateSubnetIds": [],
    "existingPublicSubnetIds": [],
    "endpointPublicAccessCidrs": [],
    "adminRoleArns": [],
    "deployRoleArns": [],
    "previewRoleArns": [],
    "ephemeralRoleArns": [],
    "allowWorldOpenEndpoint": False,
    "gpuRootVolumeGiB": 100,
    "systemInstanceType": "t3.large",
    "hpaTargetCpuUtilization": 70,
    "imageTag": "",
    "imageRef": "",
    "imageReplicas": [],
    "expiryHours": 72,
    "expiresAt": "",
    "clusterStack": "",
    "tags": [],
    "nodeProvisioner": "cluster-autoscaler",
    "workingHoursStart": "0 8 * * 1-5",
    "workingHoursEnd": "0 19 * * 1-5",
    "workingHoursTimezone": "UTC",
    "scaleDownStabilizationSeconds": 300,
}

#: Keys whose default depends on the environment (Pulumi.yaml gives them a sentinel default).
PER_ENVIRONMENT_KEYS: Final = frozenset(
    key for defaults in ENVIRONMENT_DEFAULTS.values() for key in defaults
)


def defaults_for(environment: Environment) -> dict[str, Any]:
    """Every default of one environment kind: the common ones, then its own."""
    return {**COMMON_DEFAULTS, **ENVIRONMENT_DEFAULTS[environment]}


def table() -> str:
    """The per-environment defaults as a Markdown table (``python -m infra.environments``)."""
    envs = list(Environment)
    lines = [
        "| key | " + " | ".join(e.value for e in envs) + " |",
        "|---|" + "---|" * len(envs),
    ]
    for key in sorted(PER_ENVIRONMENT_KEYS):
        cells = [_cell(ENVIRONMENT_DEFAULTS[e].get(key)) for e in envs]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "(dev's cluster)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
