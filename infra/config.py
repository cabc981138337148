"""One typed, validated view of a stack's configuration.

``load_stack_config`` turns the raw strings Pulumi hands the program into a frozen
``StackConfig``. Every key is checked; all problems are collected and raised together as one
``ConfigError`` naming each key, the value it had and what is allowed, so a bad stack file fails
``pulumi preview`` before a single resource is declared.

Environment-dependent values (NAT policy, GPU capacity type, node counts, retention, HPA
bounds ...) have one table of defaults per environment kind below. The Pulumi CLI injects the
project defaults of Pulumi.yaml into every stack, which would hide this table, so Pulumi.yaml
declares those keys with a sentinel default (``""`` for strings, ``-1`` for integers, ``[]`` for
lists) that means "the environment's default". The shipped stack files still spell every value
out, so a reader sees each environment whole.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

import pulumi

from infra import scaling_config
from infra.aws import eks_versions, gpu_instances
from infra.aws.eks_versions import SupportType
from infra.scaling_config import ScalingConfig
from service import contract

#: The Pulumi project name; config keys of this program live in its namespace.
PROJECT: Final = "torch-eks-inference"

#: Values CloudWatch Logs accepts for a log group's retention, in days.
CLOUDWATCH_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip

#: x86_64 NVIDIA instance families the AL2023_x86_64_NVIDIA AMI supports.
GPU_FAMILIES: Final = tuple(gpu_instances.ACCELERATOR_BY_FAMILY)
#: Extra pods a rolling update runs next to the old ones (the Deployment's maxSurge); each CUDA
#: pod holds a whole GPU, so the GPU capacity check counts them.
ROLLOUT_MAX_SURGE: Final = 1

_INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9]+)$")
_REGION = re.compile(contract.AWS_REGION_PATTERN)
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8}([0-9a-f]{9})?$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$")
_STACK_REF = re.compile(r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")
_PR_STACK = re.compile(r"^pr-(?P<number>[1-9]\d{0,8})$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: ``imageRef`` of dev's very first ``up``: the platform and its registry, no service yet.
IMAGE_REF_NONE: Final = "none"
#: An image by digest: ``<registry host>[:port]/<repository>@sha256:<64 hex>`` (OCI distribution
#: spec digest form; repository path components are lowercase per the same spec).
IMAGE_REF = re.compile(
    r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"@sha256:[0-9a-f]{64}$"
)
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w .:/=+@-]{0,256}$")
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")

#: The longest a pr stack may live (expiryHours); the registry's lifecycle rules rely on it.
MAX_EXPIRY_HOURS: Final = 720

#: Minimum length of an API key given through config (a generated one has 48 characters).
MIN_API_KEY_LENGTH: Final = 24


class Environment(StrEnum):
    """Kind of stack: long-lived environments, or an ephemeral stack for one pull request."""

    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"
    PR = "pr"


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


@dataclass(frozen=True)
class StackConfig:
    """The validated configuration of one stack; built only by ``load_stack_config``."""

    project: str
    stack: str
    environment: Environment
    region: str
    kubernetes_version: str
    cluster_name: str
    vpc_cidr: str
    existing_vpc_id: str | None
    existing_private_subnet_ids: tuple[str, ...]
    existing_public_subnet_ids: tuple[str, ...]
    az_count: int
    nat_policy: NatPolicy
    public_access_cidrs: tuple[str, ...]
    upgrade_support_type: SupportType
    ci_runner: CiRunner
    #: Cluster administrators (AmazonEKSClusterAdminPolicy).
    admin_role_arns: tuple[str, ...]
    #: Roles that run `pulumi up` on this stack (cluster admin: add-ons install cluster RBAC).
    deploy_role_arns: tuple[str, ...]
    #: Roles that run `pulumi preview` (view, plus dry-run writes of the workload's objects).
    preview_role_arns: tuple[str, ...]
    #: Roles that run pr-* stacks on this cluster (their namespaces and workloads only).
    ephemeral_role_arns: tuple[str, ...]
    gpu_instance_types: tuple[str, ...]
    gpu_capacity_type: CapacityType
    gpu_nodes: NodeScaling
    #: GPUs kept free for pr-* stacks on this (dev) cluster; pr stacks are refused without them.
    pr_gpu_slots: int
    gpu_root_volume_gib: int
    system_instance_type: str
    system_nodes: NodeScaling
    log_retention_days: int
    hpa_min_replicas: int
    hpa_max_replicas: int
    hpa_target_cpu_utilization: int
    image_variant: ImageVariant
    image_tag: str | None
    service_type: ServiceType
    deletion_protection: bool
    secret_recovery_days: int
    expires_at: datetime | None
    cluster_stack: str | None
    namespace: str
    service_account: str
    api_key: SecretStr | None = field(repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Valid but costly or soon-due choices, printed as warnings by the program.
    warnings: tuple[str, ...] = ()
    #: Long-lived stacks: the image CI built once, by digest (pr stacks build their own).
    image_ref: str | None = None
    #: Highest p99 latency (ms) the post-deploy smoke test accepts under its short load.
    smoke_p99_ms: int = 500
    #: (account id or "" for this account, region) the delivery registry replicates images to.
    image_replicas: tuple[tuple[str, str], ...] = ()
    #: Autoscaling: targets, scale to zero, node provisioner (``infra.scaling_config``).
    scaling: ScalingConfig = field(default_factory=ScalingConfig)

    @property
    def is_ephemeral(self) -> bool:
        """True for pr-* stacks: they borrow the dev cluster and own only their workload."""
        return self.environment is Environment.PR

    @property
    def partition(self) -> str:
        """The AWS partition of the region (aws, aws-us-gov or aws-cn)."""
        return partition_of(self.region)

    @property
    def gpus_per_node(self) -> int:
        """GPUs on the smallest configured GPU instance type (what scale-from-zero may assume)."""
        return min((gpus_of(t) for t in self.gpu_instance_types), default=1)

    @property
    def gpus_needed(self) -> int:
        """GPUs this stack's own workload needs at its peak, rollout surge included."""
        if self.image_variant is not ImageVariant.CUDA:
            return 0
        return self.hpa_max_replicas + ROLLOUT_MAX_SURGE

    @property
    def access_principals(self) -> tuple[str, ...]:
        """Every IAM role that gets an access entry on this stack's cluster."""
        seen: dict[str, None] = {}
        for arn in (
            *self.admin_role_arns,
            *self.deploy_role_arns,
            *self.preview_role_arns,
            *self.ephemeral_role_arns,
        ):
            seen.setdefault(arn, None)
        return tuple(seen)

    @property
    def expires_at_iso(self) -> str | None:
        """The expiry time as an ISO-8601 UTC timestamp (``2026-11-28T21:00:00Z``)."""
        if self.expires_at is None:
            return None
        return self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def resource_tags(self) -> dict[str, str]:
        """Tags every AWS resource of this stack carries (expiry included on pr stacks)."""
        tags = {
            "project": self.project,
            "stack": self.stack,
            "environment": self.environment.value,
            "managed-by": "pulumi",
            **self.tags,
        }
        if self.expires_at_iso is not None:
            tags["expires-at"] = self.expires_at_iso
        return tags


#: Per-environment defaults; the long-lived stack files spell these out too.
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
    },
    Environment.PROD: {
        "availabilityZoneCount": 3,
        "natGateways": "per-az",
        "gpuInstanceTypes": ["g5.xlarge"],
        "gpuCapacityType": "ON_DEMAND",
        "gpuNodeMin": 2,
        "gpuNodeMax": 7,
        "prGpuSlots": 0,
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
    },
    Environment.PR: {
        "logRetentionDays": 3,
        "hpaMinReplicas": 1,
        "hpaMaxReplicas": 1,
        "imageVariant": "cuda",
        "serviceType": "cluster-ip",
        "deletionProtection": False,
        "secretRecoveryDays": 0,
    },
}

#: Defaults that do not depend on the environment.
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
    "smokeP99Ms": 500,
    "imageReplicas": [],
    "expiryHours": 72,
    "expiresAt": "",
    "clusterStack": "",
    "tags": [],
}

#: Every key this program reads from its own namespace (anything else is a typo).
KNOWN_KEYS: Final = frozenset(
    {"environment", "apiKey", *COMMON_DEFAULTS}
    | {key for defaults in ENVIRONMENT_DEFAULTS.values() for key in defaults}
    | scaling_config.keys()
)
#: Keys that only make sense on long-lived stacks; pr stacks borrow dev's cluster.
_CLUSTER_ONLY_KEYS: Final = frozenset(
    {
        "availabilityZoneCount",
        "natGateways",
        "gpuInstanceTypes",
        "gpuCapacityType",
        "gpuNodeMin",
        "gpuNodeMax",
        "prGpuSlots",
        "upgradeSupportType",
        "ciRunner",
        "allowWorldOpenEndpoint",
        "deployRoleArns",
        "previewRoleArns",
        "ephemeralRoleArns",
        "systemNodeMin",
        "systemNodeDesired",
        "systemNodeMax",
        "vpcCidr",
        "existingVpcId",
        "existingPrivateSubnetIds",
        "existingPublicSubnetIds",
        "endpointPublicAccessCidrs",
        "adminRoleArns",
        "gpuRootVolumeGiB",
        "systemInstanceType",
        "kubernetesVersion",
        "clusterName",
    }
)

_T = TypeVar("_T")


#: Keys this program used to read, with what replaced them.
RETIRED_KEYS: Final = {
    "gpuNodeDesired": "GPU node groups start at gpuNodeMin and cluster-autoscaler sizes them "
    "(a desired size above the minimum made `pulumi up` wait on spot capacity and quota); "
    "remove it: `pulumi config rm gpuNodeDesired`",
}


def gpus_of(instance_type: str) -> int:
    """GPUs one instance of a validated GPU instance type carries."""
    return gpu_instances.gpus_of(instance_type)


class _Reader:
    """Reads raw config strings, parses them and records every problem instead of raising."""

    def __init__(
        self,
        project: str,
        raw: Mapping[str, str],
        defaults: Mapping[str, Any],
    ) -> None:
        self.project = project
        self.raw = raw
        self.defaults = defaults
        self.problems: list[str] = []

    def key(self, name: str) -> str:
        return f"{self.project}:{name}"

    def fail(self, name: str, value: object, allowed: str) -> None:
        self.problems.append(f"{self.key(name)} = {value!r}: {allowed}")

    def _value(self, name: str) -> tuple[bool, Any]:
        """(given, value): the raw string if set, else the default (already typed).

        A sentinel (see ``is_unset``) counts as not set: Pulumi.yaml declares it as the project
        default of every environment-dependent key, so the environment's default applies.
        """
        full = self.key(name)
        if full in self.raw and not is_unset(self.raw[full]):
            return True, self.raw[full]
        return False, self.defaults.get(name)

    def string(
        self, name: str, check: Callable[[str], bool] | None = None, allowed: str = ""
    ) -> str:
        _, value = self._value(name)
        text = "" if value is None else str(value)
        if check is not None and text and not check(text):
            self.fail(name, text, allowed)
        return text

    def choice(self, name: str, enum: type[_T], fallback: _T) -> _T:
        _given, value = self._value(name)
        if value is None:
            self.fail(name, None, f"required; one of {', '.join(_members(enum))}")
            return fallback
        try:
            return enum(str(value))  # type: ignore[call-arg]
        except ValueError:
            self.fail(name, value, f"must be one of {', '.join(_members(enum))}")
            return fallback

    def integer(self, name: str, low: int, high: int) -> int:
        given, value = self._value(name)
        if value is None:
            self.fail(name, None, f"required; an integer from {low} to {high}")
            return low
        try:
            number = int(str(value).strip()) if given else int(value)
        except ValueError:
            self.fail(name, value, f"must be an integer from {low} to {high}")
            return low
        if not low <= number <= high:
            self.fail(name, value, f"must be an integer from {low} to {high}")
        return number

    def boolean(self, name: str) -> bool:
        _given, value = self._value(name)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        self.fail(name, value, "must be true or false")
        return False

    def string_list(self, name: str) -> list[str]:
        given, value = self._value(name)
        if not given:
            return list(value or [])
        try:
            parsed = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            self.fail(
                name,
                value,
                f'must be a list of strings (pulumi config set --path "{name}[0]" VALUE)',
            )
            return []
        return list(parsed)


#: Project defaults in Pulumi.yaml that mean "the environment's default" (see module docstring).
UNSET_SENTINELS: Final = ("", "-1", "[]")


def is_unset(raw_value: str) -> bool:
    """True for a config value that asks for the environment's default."""
    return raw_value.strip() in UNSET_SENTINELS


def _members(enum: type[Any]) -> list[str]:
    return [str(member.value) for member in enum]


def environment_of(stack: str, raw: Mapping[str, str], project: str = PROJECT) -> Environment:
    """The environment kind: the ``environment`` key, or the stack name (dev, staging, prod, pr-N).

    Raises ConfigError when neither says which one it is.
    """
    value = raw.get(f"{project}:environment", "")
    allowed = ", ".join(_members(Environment))
    if value:
        try:
            return Environment(value)
        except ValueError:
            raise ConfigError(
                stack, [f"{project}:environment = {value!r}: must be one of {allowed}"]
            ) from None
    if _PR_STACK.match(stack):
        return Environment.PR
    try:
        return Environment(stack)
    except ValueError:
        raise ConfigError(
            stack,
            [
                f"{project}:environment is not set and stack name {stack!r} is not one of "
                f"dev, staging, prod, pr-<number>; run `pulumi config set environment <{allowed}>`"
            ],
        ) from None


def load_stack_config(
    stack: str,
    raw: Mapping[str, str],
    *,
    project: str = PROJECT,
    secret_keys: frozenset[str] = frozenset(),
    now: datetime | None = None,
) -> StackConfig:
    """Validate raw config (``namespace:key`` -> string, objects JSON-encoded) into a StackConfig.

    Raises ConfigError listing every problem found.
    """
    environment = environment_of(stack, raw, project)
    defaults = {
        **COMMON_DEFAULTS,
        **ENVIRONMENT_DEFAULTS[environment],
        **scaling_config.defaults_for(environment.value),
    }
    r = _Reader(project, raw, defaults)
    ephemeral = environment is Environment.PR

    for full_key in sorted(raw):
        namespace, _, name = full_key.partition(":")
        if namespace == project and name in RETIRED_KEYS:
            r.fail(name, raw[full_key], RETIRED_KEYS[name])
        elif namespace == project and name not in KNOWN_KEYS:
            r.fail(name, raw[full_key], f"unknown key; known keys: {', '.join(sorted(KNOWN_KEYS))}")
        elif (
            namespace == project
            and ephemeral
            and name in _CLUSTER_ONLY_KEYS | scaling_config.SCALING_CLUSTER_ONLY_KEYS
            and not is_unset(raw[full_key])
            and raw[full_key] != json.dumps(COMMON_DEFAULTS.get(name))
            and raw[full_key] != str(COMMON_DEFAULTS.get(name))
        ):
            r.fail(
                name,
                raw[full_key],
                "not allowed on pr stacks: they reuse the cluster of clusterStack",
            )

    region = raw.get("aws:region", "")
    if not region:
        r.problems.append("aws:region is not set: run `pulumi config set aws:region us-west-2`")
    elif not _REGION.match(region):
        r.problems.append(f"aws:region = {region!r}: not an AWS region name such as us-west-2")

    today = (now or datetime.now(UTC)).date()
    warnings: list[str] = []
    kubernetes_version = r.string("kubernetesVersion")
    support_type = SupportType.STANDARD
    if not ephemeral:
        support_type = r.choice("upgradeSupportType", SupportType, SupportType.STANDARD)
        problem = eks_versions.support_problem(kubernetes_version, support_type, today)
        if problem is not None:
            r.fail("kubernetesVersion", kubernetes_version, problem)
        elif (warning := eks_versions.support_warning(kubernetes_version, today)) is not None:
            warnings.append(f"{r.key('kubernetesVersion')} = {kubernetes_version!r}: {warning}")
    cluster_name = (
        r.string(
            "clusterName",
            lambda v: bool(_CLUSTER_NAME.match(v)),
            "1-100 letters, digits, - or _, starting with a letter or digit",
        )
        or f"{project}-{stack}"
    )

    vpc_cidr = r.string("vpcCidr")
    _check_vpc_cidr(r, vpc_cidr)
    existing_vpc_id = r.string(
        "existingVpcId", lambda v: bool(_VPC_ID.match(v)), "must look like vpc-0123456789abcdef0"
    )
    private_ids = r.string_list("existingPrivateSubnetIds")
    public_ids = r.string_list("existingPublicSubnetIds")
    _check_existing_network(r, existing_vpc_id, private_ids, public_ids)

    az_count = 0 if ephemeral else r.integer("availabilityZoneCount", 2, 3)
    nat_policy = (
        r.choice("natGateways", NatPolicy, NatPolicy.SINGLE)
        if not ephemeral
        else (NatPolicy.SINGLE)
    )
    public_cidrs = r.string_list("endpointPublicAccessCidrs")
    _check_public_cidrs(r, environment, public_cidrs)
    ci_runner = CiRunner.GITHUB_HOSTED
    access: dict[str, list[str]] = {key: [] for key in ACCESS_ROLE_KEYS}
    if not ephemeral:
        ci_runner = r.choice("ciRunner", CiRunner, CiRunner.SELF_HOSTED_VPC)
        world_open_allowed = r.boolean("allowWorldOpenEndpoint")
        access = {key: _role_arns(r, key) for key in ACCESS_ROLE_KEYS}
        _check_endpoint_reach(r, public_cidrs, ci_runner, world_open_allowed, access)

    gpu_types: list[str] = []
    pr_slots = 0
    capacity = CapacityType.ON_DEMAND
    gpu_nodes = system_nodes = NodeScaling(0, 0, 0)
    if not ephemeral:
        gpu_types = r.string_list("gpuInstanceTypes")
        _check_gpu_types(r, gpu_types)
        capacity = r.choice("gpuCapacityType", CapacityType, CapacityType.ON_DEMAND)
        gpu_low = r.integer("gpuNodeMin", 0, 100)
        gpu_high = r.integer("gpuNodeMax", 1, 100)
        if gpu_low > gpu_high:
            r.fail("gpuNodeMin", gpu_low, f"must not exceed gpuNodeMax ({gpu_high})")
        # The groups start at their minimum: a larger desired size makes `up` wait for capacity.
        gpu_nodes = NodeScaling(gpu_low, gpu_low, gpu_high)
        system_nodes = _scaling(r, "systemNode", minimum=1)
        pr_slots = r.integer("prGpuSlots", 0, 64)
    gpu_root = r.integer("gpuRootVolumeGiB", 50, 2000)
    system_type = r.string(
        "systemInstanceType", lambda v: _is_cpu_instance_type(v), "a non-GPU instance type"
    )

    retention = r.integer("logRetentionDays", 1, 3653)
    if retention not in CLOUDWATCH_RETENTION_DAYS:
        r.fail(
            "logRetentionDays",
            retention,
            "CloudWatch allows " + ", ".join(map(str, CLOUDWATCH_RETENTION_DAYS)),
        )
    hpa_min = r.integer("hpaMinReplicas", 1, 100)
    hpa_max = r.integer("hpaMaxReplicas", 1, 100)
    if hpa_min > hpa_max:
        r.fail("hpaMinReplicas", hpa_min, f"must not exceed hpaMaxReplicas ({hpa_max})")
    hpa_target = r.integer("hpaTargetCpuUtilization", 10, 95)

    variant = r.choice("imageVariant", ImageVariant, ImageVariant.CUDA)
    if gpu_types and all(map(_is_known_gpu_type, gpu_types)):
        _check_gpu_capacity(r, variant, hpa_max, gpu_nodes, gpu_types, pr_slots)
    image_tag = r.string(
        "imageTag",
        lambda v: bool(_IMAGE_TAG.match(v)),
        "a Docker tag: letters, digits, _ . -, at most 128 characters",
    )
    image_ref = _image_ref(r, ephemeral, environment)
    smoke_p99_ms = r.integer("smokeP99Ms", 1, 60_000)
    image_replicas = _image_replicas(r, environment)
    service_type = r.choice("serviceType", ServiceType, ServiceType.CLUSTER_IP)
    deletion_protection = r.boolean("deletionProtection")
    if environment is Environment.PROD and not deletion_protection:
        r.fail("deletionProtection", False, "prod stacks must keep deletion protection on (true)")
    recovery_days = r.integer("secretRecoveryDays", 0, 30)
    if 0 < recovery_days < 7:
        r.fail("secretRecoveryDays", recovery_days, "Secrets Manager allows 0 or 7-30 days")

    expires_at = _expiry(r, ephemeral, now)
    cluster_stack = r.string(
        "clusterStack",
        lambda v: bool(_STACK_REF.match(v)),
        "a stack reference: <stack>, <project>/<stack> or <org>/<project>/<stack>",
    )
    if ephemeral and not cluster_stack:
        r.fail(
            "clusterStack",
            None,
            "required on pr stacks: the stack whose cluster they borrow, e.g. "
            f"`pulumi config set clusterStack <org>/{project}/dev`",
        )
    elif not ephemeral and cluster_stack:
        r.fail("clusterStack", cluster_stack, "only pr stacks borrow another stack's cluster")

    namespace = f"inference-{stack}" if ephemeral else "inference"
    if not _DNS_LABEL.match(namespace):
        r.problems.append(
            f"stack name {stack!r} gives namespace {namespace!r}, not a DNS-1123 label "
            "(lowercase letters, digits and -, at most 63 characters)"
        )

    scaling = scaling_config.read_scaling(
        r, environment, gpu_nodes, gpu_stack=variant is ImageVariant.CUDA
    )
    api_key = _api_key(r, secret_keys)
    tags = _tags(r)

    if r.problems:
        raise ConfigError(stack, r.problems)
    return StackConfig(
        project=project,
        stack=stack,
        environment=environment,
        region=region,
        kubernetes_version=kubernetes_version,
        cluster_name=cluster_name,
        vpc_cidr=vpc_cidr,
        existing_vpc_id=existing_vpc_id or None,
        existing_private_subnet_ids=tuple(private_ids),
        existing_public_subnet_ids=tuple(public_ids),
        az_count=az_count,
        nat_policy=nat_policy,
        public_access_cidrs=tuple(public_cidrs),
        upgrade_support_type=support_type,
        ci_runner=ci_runner,
        admin_role_arns=tuple(access["adminRoleArns"]),
        deploy_role_arns=tuple(access["deployRoleArns"]),
        preview_role_arns=tuple(access["previewRoleArns"]),
        ephemeral_role_arns=tuple(access["ephemeralRoleArns"]),
        gpu_instance_types=tuple(gpu_types),
        gpu_capacity_type=capacity,
        gpu_nodes=gpu_nodes,
        pr_gpu_slots=pr_slots,
        gpu_root_volume_gib=gpu_root,
        system_instance_type=system_type,
        system_nodes=system_nodes,
        log_retention_days=retention,
        hpa_min_replicas=hpa_min,
        hpa_max_replicas=hpa_max,
        hpa_target_cpu_utilization=hpa_target,
        image_variant=variant,
        image_tag=image_tag or None,
        service_type=service_type,
        deletion_protection=deletion_protection,
        secret_recovery_days=recovery_days,
        expires_at=expires_at,
        cluster_stack=cluster_stack or None,
        namespace=namespace,
        service_account="inference",
        api_key=api_key,
        tags=tags,
        warnings=tuple(warnings),
        image_ref=image_ref or None,
        smoke_p99_ms=smoke_p99_ms,
        image_replicas=image_replicas,
        scaling=scaling,
    )


def _image_ref(r: _Reader, ephemeral: bool, environment: Environment) -> str:
    """Long-lived stacks deploy the image CI built once, by digest; pr stacks build their own.

    Its absence on a long-lived stack is reported by ``require_image_ref`` when the program
    runs, so that tools which only read config (defaults, previews of old stacks) still work.
    """
    ref = r.string(
        "imageRef",
        lambda v: bool(IMAGE_REF.match(v)) or v == IMAGE_REF_NONE,
        "an image by digest: <registry>/<repository>@sha256:<64 lowercase hex>",
    )
    if ephemeral and ref:
        r.fail("imageRef", ref, "not allowed on pr stacks: they build their own image")
    elif ref == IMAGE_REF_NONE and environment is not Environment.DEV:
        r.fail(
            "imageRef",
            ref,
            "'none' (platform without the service) is for dev's first up only, before CI has "
            "pushed an image to its registry; other stacks take an image dev verified",
        )
    return ref


def _image_replicas(r: _Reader, environment: Environment) -> tuple[tuple[str, str], ...]:
    """ECR replication targets of the delivery registry: ``REGION`` or ``ACCOUNT_ID:REGION``."""
    entries = r.string_list("imageReplicas")
    if entries and environment is not Environment.DEV:
        r.fail(
            "imageReplicas",
            entries,
            "only the dev stack holds the delivery registry CI pushes to (and ECR keeps one "
            "replication configuration per registry); set it there",
        )
        return ()
    replicas = []
    for entry in entries:
        account, _, region = entry.rpartition(":")
        if not _REGION.match(region) or (account and not re.fullmatch(r"\d{12}", account)):
            r.fail("imageReplicas", entry, "each entry is REGION or ACCOUNT_ID:REGION")
        else:
            replicas.append((account, region))
    return tuple(replicas)


def require_image_ref(cfg: StackConfig) -> str | None:
    """The image a long-lived stack runs, ``None`` for dev's explicit bootstrap (``none``).

    Unset is a ConfigError that names the command setting it: a missing image must never
    quietly become "no service".
    """
    if cfg.image_ref == IMAGE_REF_NONE:
        return None
    if cfg.image_ref is None:
        raise ConfigError(
            cfg.stack,
            [
                f"{cfg.project}:imageRef is not set: long-lived stacks run the image CI built "
                "and pushed once, by digest. `python -m tools.delivery.deploy --stack "
                f"{cfg.stack} --image REPO@sha256:<64 hex>` sets it; by hand: `pulumi config "
                f"set imageRef REPO@sha256:<64 hex> -s {cfg.stack}`. For dev's first up, "
                "before CI has pushed anything: `pulumi config set imageRef none -s dev`"
            ],
        )
    return cfg.image_ref


def _check_vpc_cidr(r: _Reader, cidr: str) -> None:
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError:
        r.fail("vpcCidr", cidr, "must be an IPv4 network such as 10.0.0.0/16")
        return
    if not 16 <= network.prefixlen <= 20:
        r.fail("vpcCidr", cidr, "prefix length must be /16 to /20 (EKS pods take VPC addresses)")
    elif not network.is_private:
        r.fail("vpcCidr", cidr, "must be a private (RFC 1918) range")


def _check_existing_network(
    r: _Reader, vpc_id: str, private_ids: list[str], public_ids: list[str]
) -> None:
    for name, ids in (
        ("existingPrivateSubnetIds", private_ids),
        ("existingPublicSubnetIds", public_ids),
    ):
        for subnet in ids:
            if not _SUBNET_ID.match(subnet):
                r.fail(name, subnet, "each entry must look like subnet-0123456789abcdef0")
        if len(set(ids)) != len(ids):
            r.fail(name, ids, "subnet ids must be unique")
    if vpc_id and len(private_ids) < 2:
        r.fail(
            "existingPrivateSubnetIds",
            private_ids,
            "an existing VPC needs at least 2 private subnets in different AZs",
        )
    if not vpc_id and (private_ids or public_ids):
        r.fail("existingVpcId", "", "set it when existing subnet ids are given")


def _check_public_cidrs(r: _Reader, environment: Environment, cidrs: list[str]) -> None:
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            r.fail(
                "endpointPublicAccessCidrs", cidr, "each entry must be a CIDR like 203.0.113.7/32"
            )
            continue
        if network.prefixlen == 0 and environment in (Environment.STAGING, Environment.PROD):
            r.fail(
                "endpointPublicAccessCidrs",
                cidr,
                f"{environment.value} must not open the Kubernetes API to the whole internet; "
                "list your office / CI egress ranges, or none for a private-only endpoint",
            )


#: Config keys listing the IAM roles that get an access entry, least privileged last.
ACCESS_ROLE_KEYS: Final = (
    "adminRoleArns",
    "deployRoleArns",
    "previewRoleArns",
    "ephemeralRoleArns",
)
_IAM_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_ASSUMED_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:sts::\d{12}:assumed-role/")


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to (aws, aws-us-gov or aws-cn)."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws-cn" if region.startswith("cn-") else "aws"


def _role_arns(r: _Reader, key: str) -> list[str]:
    arns = r.string_list(key)
    region = r.raw.get("aws:region", "")
    partition = partition_of(region)
    for arn in arns:
        if _IAM_ROLE_ARN.match(arn) and not arn.startswith(f"arn:{partition}:"):
            # An access entry for a role of another partition can never authenticate.
            r.fail(key, arn, f"not a role of the {partition} partition that {region} is in")
            continue
        if _ASSUMED_ROLE_ARN.match(arn):
            # Access entries name the role itself; a session ARN changes with every login.
            r.fail(
                key, arn, "an STS session ARN; give the role: arn:aws:iam::<account>:role/<name>"
            )
        elif not _IAM_ROLE_ARN.match(arn):
            r.fail(key, arn, "each entry must be an IAM role ARN (arn:aws:iam::<account>:role/...)")
    return arns


def _check_endpoint_reach(
    r: _Reader,
    cidrs: list[str],
    ci_runner: CiRunner,
    world_open_allowed: bool,
    access: Mapping[str, list[str]],
) -> None:
    """Somebody must be able to deploy, and CI must be able to reach the API it deploys to."""
    if not access["adminRoleArns"] and not access["deployRoleArns"]:
        r.fail(
            "deployRoleArns",
            [],
            "no role could reach the cluster to deploy the workload: list the role CI assumes "
            "for `pulumi up` (and yours in adminRoleArns); access is never granted implicitly",
        )
    world_open = any(c in ("0.0.0.0/0", "::/0") for c in cidrs)
    runs_pr_code = bool(access["ephemeralRoleArns"])
    if world_open and runs_pr_code and not world_open_allowed:
        r.fail(
            "endpointPublicAccessCidrs",
            cidrs,
            "this cluster runs pull-request code (ephemeralRoleArns is set) and its API would be "
            "open to the whole internet; list your runners' egress ranges, run CI inside the VPC "
            "(ciRunner: self-hosted-vpc), or accept it with allowWorldOpenEndpoint: true",
        )
    if ci_runner is CiRunner.GITHUB_HOSTED and not world_open:
        r.fail(
            "ciRunner",
            ci_runner.value,
            "GitHub-hosted runners have no fixed egress addresses, so they cannot reach an "
            "endpoint that is private or allow-listed; use a self-hosted runner in the VPC or a "
            "Pulumi Deployments agent (self-hosted-vpc / pulumi-deployments-agent), see "
            "docs/cluster-access.md",
        )


def _check_gpu_capacity(
    r: _Reader,
    variant: ImageVariant,
    hpa_max: int,
    gpu_nodes: NodeScaling,
    gpu_types: list[str],
    pr_slots: int,
) -> None:
    """Every CUDA replica holds one whole GPU, surge pods and pr stacks included."""
    per_node = min(gpus_of(t) for t in gpu_types)
    capacity = gpu_nodes.max_size * per_node
    own = hpa_max + ROLLOUT_MAX_SURGE if variant is ImageVariant.CUDA else 0
    if own + pr_slots > capacity:
        r.fail(
            "gpuNodeMax",
            gpu_nodes.max_size,
            f"{capacity} GPU(s) at most (gpuNodeMax x the smallest gpuInstanceTypes entry), but "
            f"the service needs {own} (hpaMaxReplicas {hpa_max} + {ROLLOUT_MAX_SURGE} rollout "
            f"surge) and prGpuSlots keeps {pr_slots} for pr stacks; raise gpuNodeMax to "
            f"{-(-(own + pr_slots) // per_node)} or lower the others",
        )


def _is_gpu_type(value: str) -> bool:
    match = _INSTANCE_TYPE.match(value)
    return bool(match and match["family"] in GPU_FAMILIES)


def _is_known_gpu_type(value: str) -> bool:
    return value in gpu_instances.GPU_INSTANCES


def _is_cpu_instance_type(value: str) -> bool:
    match = _INSTANCE_TYPE.match(value)
    return (
        bool(match) and not _is_gpu_type(value) and not value.startswith(("p", "g", "inf", "trn"))
    )


def _check_gpu_types(r: _Reader, types: list[str]) -> None:
    if not types:
        r.fail("gpuInstanceTypes", types, "at least one GPU instance type is required")
    for value in types:
        match = _INSTANCE_TYPE.match(value)
        if not match or match["family"] not in GPU_FAMILIES:
            r.fail(
                "gpuInstanceTypes",
                value,
                f"not an x86_64 NVIDIA GPU instance type; families: {', '.join(GPU_FAMILIES)}",
            )
        elif value not in gpu_instances.GPU_INSTANCES:
            sizes = sorted(
                t for t in gpu_instances.GPU_INSTANCES if t.startswith(f"{match['family']}.")
            )
            r.fail("gpuInstanceTypes", value, f"no such {match['family']} size; sizes: {sizes}")


def _scaling(r: _Reader, prefix: str, minimum: int) -> NodeScaling:
    low = r.integer(f"{prefix}Min", minimum, 100)
    desired = r.integer(f"{prefix}Desired", minimum, 100)
    high = r.integer(f"{prefix}Max", 1, 100)
    if not low <= desired <= high:
        r.fail(
            f"{prefix}Desired",
            desired,
            f"must satisfy {prefix}Min ({low}) <= {prefix}Desired <= {prefix}Max ({high})",
        )
    return NodeScaling(low, desired, high)


def _expiry(r: _Reader, ephemeral: bool, now: datetime | None) -> datetime | None:
    hours = r.integer("expiryHours", 1, MAX_EXPIRY_HOURS)
    text = r.string("expiresAt")
    if not ephemeral:
        if text:
            r.fail("expiresAt", text, "only pr stacks expire")
        return None
    if text:
        try:
            parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            r.fail("expiresAt", text, "must be an ISO-8601 UTC timestamp like 2026-11-28T21:00:00Z")
            return None
        return parsed
    start = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    return start + timedelta(hours=hours)


def _api_key(r: _Reader, secret_keys: frozenset[str]) -> SecretStr | None:
    full = r.key("apiKey")
    if full not in r.raw:
        return None
    value = r.raw[full]
    command = "pulumi config set --secret apiKey <value>"
    if full not in secret_keys:
        # The value would sit in plain text in the stack file and in state: refuse it.
        r.problems.append(
            f"{full} is stored in plain text; remove it (`pulumi config rm apiKey`) and run "
            f"`{command}`"
        )
        return None
    if len(value) < MIN_API_KEY_LENGTH:
        r.problems.append(
            f"{full} = [secret]: {len(value)} characters, at least {MIN_API_KEY_LENGTH} "
            f"required; run `{command}` with a longer key, or `pulumi config rm apiKey` to have "
            "one generated"
        )
    return SecretStr(value)


def _tags(r: _Reader) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in r.string_list("tags"):
        key, sep, value = item.partition("=")
        if not sep or not _TAG_KEY.match(key) or not _TAG_VALUE.match(value):
            r.fail("tags", item, "each entry must be KEY=VALUE (AWS tag characters)")
        elif key.lower().startswith("aws:"):
            r.fail("tags", item, "the aws: prefix is reserved by AWS")
        else:
            tags[key] = value
    return tags


def raw_config_from_pulumi() -> tuple[dict[str, str], frozenset[str]]:
    """Every config value the engine passed to this program, and which keys are secret.

    The language host hands them to the program process as ``PULUMI_CONFIG`` and
    ``PULUMI_CONFIG_SECRET_KEYS`` (pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go,
    ``pulumiConfigVar``); ``pulumi up`` and the Automation API on this folder both run through
    it, and the offline runner (tools/mocks/runner.py) passes config the same way. Only the
    SDK's public functions read them, so no SDK internals are needed here.
    """
    raw = {str(k): str(v) for k, v in pulumi.runtime.get_config_env().items()}
    return raw, frozenset(pulumi.runtime.get_config_secret_keys_env())


def from_pulumi() -> StackConfig:
    """The running stack's validated configuration (what ``__main__`` calls first)."""
    raw, secret_keys = raw_config_from_pulumi()
    config = load_stack_config(
        pulumi.get_stack(), raw, project=pulumi.get_project(), secret_keys=secret_keys
    )
    for warning in config.warnings:
        pulumi.log.warn(warning)
    return config
