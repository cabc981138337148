"""Who runs ``pulumi up``, and whether the cluster will let that identity in.

The cluster is created with ``bootstrapClusterCreatorAdminPermissions=false`` and access entries
only for the roles the stack configuration names, so the identity that runs the first ``up``
must be one of them: the program itself creates namespaces and Deployments through the
Kubernetes API right after the cluster, and an identity without an access entry is refused there
(https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from infra.config import StackConfig
from tools.preflight.report import Finding, Status

#: arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION (what GetCallerIdentity answers for a
#: role session; https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html)
_ASSUMED_ROLE: Final = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<name>[^/]+)/.+$"
)
#: arn:PARTITION:iam::ACCOUNT:role/PATH/NAME or user/PATH/NAME (a role name is unique in an
#: account whatever its path, so the name identifies it).
_IAM_PRINCIPAL: Final = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):(?P<kind>role|user)/(?:.*/)?(?P<name>[^/]+)$"
)

#: Config keys whose roles may run `pulumi up`, per kind of stack, and the attribute of each.
_UP_KEYS: Final = {"adminRoleArns": "admin_role_arns", "deployRoleArns": "deploy_role_arns"}
_EPHEMERAL_KEYS: Final = {**_UP_KEYS, "ephemeralRoleArns": "ephemeral_role_arns"}
_PREVIEW_KEYS: Final = {"previewRoleArns": "preview_role_arns"}


@dataclass(frozen=True)
class Principal:
    """An IAM principal reduced to what an access entry matches on."""

    partition: str
    account: str
    kind: str
    name: str

    @property
    def arn(self) -> str:
        """The IAM ARN (without a path, which the session ARN does not carry)."""
        return f"arn:{self.partition}:iam::{self.account}:{self.kind}/{self.name}"


def principal_of(arn: str) -> Principal | None:
    """The IAM role or user behind an ARN; an assumed-role session resolves to its role."""
    session = _ASSUMED_ROLE.match(arn)
    if session:
        return Principal(session["partition"], session["account"], "role", session["name"])
    iam = _IAM_PRINCIPAL.match(arn)
    if iam:
        return Principal(iam["partition"], iam["account"], iam["kind"], iam["name"])
    return None


def role_lists(config: StackConfig, keys: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """The configured ARNs under each config key."""
    return {key: tuple(getattr(config, attribute)) for key, attribute in keys.items()}


def _listed_in(caller: Principal, lists: Mapping[str, Sequence[str]]) -> list[str]:
    return [key for key, arns in lists.items() if caller in {principal_of(a) for a in arns}]


def check_caller_access(config: StackConfig, cluster_config: StackConfig, sts: Any) -> Finding:
    """The caller (GetCallerIdentity) against the access-entry roles of the cluster's stack.

    ``cluster_config`` is the stack that owns the cluster: the stack itself, or for a pr stack
    the one its ``clusterStack`` names, whose config lists the roles.
    """
    arn = str(sts.get_caller_identity()["Arn"])
    caller = principal_of(arn)
    name = "caller access"
    if caller is None:
        return Finding(
            name,
            Status.BLOCKER,
            f"caller {arn} is not an IAM role or user; EKS access entries cannot name it",
            "run preflight and `pulumi up` as the IAM role that deploys this stack",
        )
    keys = _EPHEMERAL_KEYS if config.is_ephemeral else _UP_KEYS
    lists = role_lists(cluster_config, keys)
    source = f"stacks/Pulumi.{cluster_config.stack}.yaml"
    listed = _listed_in(caller, lists)
    if listed:
        return Finding(
            name, Status.OK, f"{caller.arn} (from {arn}) is in {', '.join(listed)} of {source}"
        )
    preview_only = _listed_in(caller, role_lists(cluster_config, _PREVIEW_KEYS))
    # Least privilege: a pr stack's caller needs ephemeral scope, a cluster stack's a deployer.
    key = "ephemeralRoleArns" if config.is_ephemeral else "deployRoleArns"
    index = len(lists[key])
    why = (
        "it is only in previewRoleArns, which may preview but not deploy"
        if preview_only
        else f"it is in none of {', '.join(keys)}"
    )
    return Finding(
        name,
        Status.BLOCKER,
        f"{caller.arn} (from {arn}) has no access entry on the cluster: {why} of {source}; the "
        "program's Kubernetes resources would be refused",
        f"pulumi config set --path '{key}[{index}]' {caller.arn} -s {cluster_config.stack}",
    )
