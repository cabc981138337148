"""``StackConfig``: the validated configuration of one stack, as a pydantic model.

Every config key is a field with its camelCase name as the alias; the single-key rules are the
field types (``infra.config.fields``), the rules that relate keys are the ``model_validator``
below. pr stacks borrow dev's cluster, so they never set the cluster fields; those keep the
field defaults (no AZs, no node groups, no access entries), while long-lived stacks always get
each one from ``infra/environments.py``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from infra.aws import eks_versions, gpu_instances, limits
from infra.aws.eks_versions import SupportType
from infra.config import fields as f
from infra.config.kinds import (
    CapacityType,
    CiRunner,
    Environment,
    ImageVariant,
    NatPolicy,
    NodeScaling,
    SecretStr,
    ServiceType,
)
from infra.scaling_config import NodeProvisioner, ScaleToZero, ScalingConfig

#: Extra pods a rolling update runs next to the old ones (the Deployment's maxSurge); each CUDA
#: pod holds a whole GPU, so the GPU capacity check counts them.
ROLLOUT_MAX_SURGE: Final = 1
#: The longest a pr stack may live (expiryHours); the registry's lifecycle rules rely on it.
MAX_EXPIRY_HOURS: Final = 720
#: ``imageRef`` of dev's very first ``up``: the platform and its registry, no service yet.
IMAGE_REF_NONE: Final = "none"
#: An image by digest: ``<registry host>[:port]/<repository>@sha256:<64 hex>`` (OCI distribution
#: spec digest form; repository path components are lowercase per the same spec).
IMAGE_REF: Final = re.compile(
    r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"@sha256:[0-9a-f]{64}$"
)
_VPC_ID = r"^vpc-[0-9a-f]{8}([0-9a-f]{9})?$"
_STACK_REF = r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$"
_IMAGE_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
_CLUSTER_NAME = r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"

_Optional = BeforeValidator(f.empty_is_none)
_RoleArns = Annotated[tuple[Annotated[str, AfterValidator(f.role_arn)], ...], f.STRING_LIST]
_SubnetIds = Annotated[
    tuple[Annotated[str, AfterValidator(f.subnet_id)], ...], f.STRING_LIST, AfterValidator(f.unique)
]
_NodeCount = Annotated[int, f.between(1, 100)]


def gpus_of(instance_type: str) -> int:
    """GPUs one instance of a validated GPU instance type carries."""
    return gpu_instances.gpus_of(instance_type)


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to (aws, aws-us-gov or aws-cn)."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws-cn" if region.startswith("cn-") else "aws"


class StackConfig(BaseModel):
    """The validated configuration of one stack; built by ``infra.config.load_stack_config``."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True
    )

    # What the stack is (from its name, the environment key and aws:region), not a key of ours.
    project: str
    stack: str
    environment: Environment
    region: str
    namespace: str
    service_account: str = "inference"
    api_key: SecretStr | None = Field(None, repr=False)
    #: Valid but costly or soon-due choices, printed as warnings by the program.
    warnings: tuple[str, ...] = ()

    # The cluster (long-lived stacks only).
    kubernetes_version: str = Field(alias="kubernetesVersion")
    upgrade_support_type: Annotated[SupportType, f.one_of(SupportType)] = Field(
        SupportType.STANDARD, alias="upgradeSupportType"
    )
    cluster_name: Annotated[
        str,
        f.pattern(_CLUSTER_NAME, "1-100 letters, digits, - or _, starting with a letter or digit"),
    ] = Field(alias="clusterName")
    vpc_cidr: Annotated[str, AfterValidator(f.vpc_cidr)] = Field(alias="vpcCidr")
    existing_vpc_id: Annotated[
        str | None, _Optional, f.pattern(_VPC_ID, "must look like vpc-0123456789abcdef0")
    ] = Field(None, alias="existingVpcId")
    existing_private_subnet_ids: _SubnetIds = Field((), alias="existingPrivateSubnetIds")
    existing_public_subnet_ids: _SubnetIds = Field((), alias="existingPublicSubnetIds")
    az_count: Annotated[int, f.between(2, 3)] = Field(0, alias="availabilityZoneCount")
    nat_policy: Annotated[NatPolicy, f.one_of(NatPolicy)] = Field(
        NatPolicy.SINGLE, alias="natGateways"
    )
    public_access_cidrs: Annotated[
        tuple[Annotated[str, AfterValidator(f.cidr)], ...], f.STRING_LIST
    ] = Field((), alias="endpointPublicAccessCidrs")
    allow_world_open_endpoint: Annotated[bool, f.BOOLEAN] = Field(
        False, alias="allowWorldOpenEndpoint"
    )
    ci_runner: Annotated[CiRunner, f.one_of(CiRunner)] = Field(
        CiRunner.GITHUB_HOSTED, alias="ciRunner"
    )
    #: Cluster administrators (AmazonEKSClusterAdminPolicy).
    admin_role_arns: _RoleArns = Field((), alias="adminRoleArns")
    #: Roles that run `pulumi up` on this stack (cluster admin: add-ons install cluster RBAC).
    deploy_role_arns: _RoleArns = Field((), alias="deployRoleArns")
    #: Roles that run `pulumi preview` (view, plus dry-run writes of the workload's objects).
    preview_role_arns: _RoleArns = Field((), alias="previewRoleArns")
    #: Roles that run pr-* stacks on this cluster (their namespaces and workloads only).
    ephemeral_role_arns: _RoleArns = Field((), alias="ephemeralRoleArns")
    gpu_instance_types: Annotated[
        tuple[Annotated[str, AfterValidator(f.gpu_instance_type)], ...],
        f.STRING_LIST,
        AfterValidator(f.at_least_one),
    ] = Field((), alias="gpuInstanceTypes")
    gpu_capacity_type: Annotated[CapacityType, f.one_of(CapacityType)] = Field(
        CapacityType.ON_DEMAND, alias="gpuCapacityType"
    )
    gpu_node_min: Annotated[int, f.between(0, 100)] = Field(0, alias="gpuNodeMin")
    gpu_node_max: _NodeCount = Field(0, alias="gpuNodeMax")
    #: GPUs kept free for pr-* stacks on this (dev) cluster; pr stacks are refused without them.
    pr_gpu_slots: Annotated[int, f.between(0, 64)] = Field(0, alias="prGpuSlots")
    gpu_root_volume_gib: Annotated[int, f.between(50, 2000)] = Field(alias="gpuRootVolumeGiB")
    system_instance_type: Annotated[
        str, f.matches(f.is_cpu_instance_type, "a non-GPU instance type")
    ] = Field(alias="systemInstanceType")
    system_node_min: _NodeCount = Field(0, alias="systemNodeMin")
    system_node_desired: _NodeCount = Field(0, alias="systemNodeDesired")
    system_node_max: _NodeCount = Field(0, alias="systemNodeMax")

    # The workload and its surroundings (every stack).
    log_retention_days: Annotated[
        int,
        f.between(1, limits.CLOUDWATCH_RETENTION_DAYS[-1]),
        f.in_choices(
            limits.CLOUDWATCH_RETENTION_DAYS,
            "CloudWatch allows " + ", ".join(map(str, limits.CLOUDWATCH_RETENTION_DAYS)),
        ),
    ] = Field(alias="logRetentionDays")
    hpa_min_replicas: _NodeCount = Field(alias="hpaMinReplicas")
    hpa_max_replicas: _NodeCount = Field(alias="hpaMaxReplicas")
    hpa_target_cpu_utilization: Annotated[int, f.between(10, 95)] = Field(
        alias="hpaTargetCpuUtilization"
    )
    image_variant: Annotated[ImageVariant, f.one_of(ImageVariant)] = Field(alias="imageVariant")
    image_tag: Annotated[
        str | None,
        _Optional,
        f.pattern(_IMAGE_TAG, "a Docker tag: letters, digits, _ . -, at most 128 characters"),
    ] = Field(None, alias="imageTag")
    #: Long-lived stacks: the image CI built once, by digest (pr stacks build their own).
    image_ref: Annotated[
        str | None,
        _Optional,
        f.matches(
            lambda v: bool(IMAGE_REF.match(v)) or v == IMAGE_REF_NONE,
            "an image by digest: <registry>/<repository>@sha256:<64 lowercase hex>",
        ),
    ] = Field(None, alias="imageRef")
    #: Highest p99 latency (ms) the post-deploy smoke test accepts under its short load.
    smoke_p99_ms: Annotated[int, f.between(1, 60_000)] = Field(alias="smokeP99Ms")
    #: (account id or "" for this account, region) the delivery registry replicates images to.
    image_replicas: Annotated[
        tuple[Annotated[tuple[str, str], BeforeValidator(f.image_replica)], ...], f.STRING_LIST
    ] = Field((), alias="imageReplicas")
    service_type: Annotated[ServiceType, f.one_of(ServiceType)] = Field(alias="serviceType")
    deletion_protection: Annotated[bool, f.BOOLEAN] = Field(alias="deletionProtection")
    secret_recovery_days: Annotated[
        int, f.between(0, limits.SECRET_RECOVERY_DAYS_MAX), AfterValidator(f.recovery_days)
    ] = Field(alias="secretRecoveryDays")
    expiry_hours: Annotated[int, f.between(1, MAX_EXPIRY_HOURS)] = Field(72, alias="expiryHours")
    expires_at: Annotated[datetime | None, BeforeValidator(f.expires_at)] = Field(
        None, alias="expiresAt"
    )
    cluster_stack: Annotated[
        str | None,
        _Optional,
        f.pattern(
            _STACK_REF, "a stack reference: <stack>, <project>/<stack> or <org>/<project>/<stack>"
        ),
    ] = Field(None, alias="clusterStack")
    tag_entries: Annotated[
        tuple[Annotated[tuple[str, str], BeforeValidator(f.tag)], ...], f.STRING_LIST
    ] = Field((), alias="tags")
    #: Autoscaling: targets, scale to zero, node provisioner (``infra.scaling_config``).
    scaling: ScalingConfig = Field(default_factory=lambda: ScalingConfig.model_validate({}))

    @model_validator(mode="after")
    def _cross_key_rules(self, info: ValidationInfo) -> Self:
        context: dict[str, Any] = info.context or {}
        today: date = context.get("today") or date.today()
        given: frozenset[str] = context.get("given", frozenset())
        problems = [*_workload_rules(self), *_network_rules(self), *_scaling_rules(self, given)]
        if not self.is_ephemeral:
            problems += [*_cluster_rules(self, today), *_access_rules(self)]
        if problems:
            raise f.rules_error(problems)
        return self

    @property
    def is_ephemeral(self) -> bool:
        """True for pr-* stacks: they borrow the dev cluster and own only their workload."""
        return self.environment is Environment.PR

    @property
    def partition(self) -> str:
        """The AWS partition of the region (aws, aws-us-gov or aws-cn)."""
        return partition_of(self.region)

    @property
    def gpu_nodes(self) -> NodeScaling:
        """GPU node group bounds; the groups start at their minimum (``up`` never waits)."""
        return NodeScaling(self.gpu_node_min, self.gpu_node_min, self.gpu_node_max)

    @property
    def system_nodes(self) -> NodeScaling:
        """System node group bounds."""
        return NodeScaling(self.system_node_min, self.system_node_desired, self.system_node_max)

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
        return tuple(dict.fromkeys(arn for arns in _access_lists(self) for arn in arns))

    @property
    def tags(self) -> dict[str, str]:
        """Extra tags from the ``tags`` key (``KEY=VALUE`` entries)."""
        return dict(self.tag_entries)

    @property
    def expires_at_iso(self) -> str | None:
        """The expiry time as an ISO-8601 UTC timestamp (``2026-11-28T21:00:00Z``)."""
        if self.expires_at is None:
            return None
        return self.expires_at.strftime(f.EXPIRES_AT_FORMAT)

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


#: Config keys listing the IAM roles that get an access entry, least privileged last.
ACCESS_ROLE_KEYS: Final = (
    "adminRoleArns",
    "deployRoleArns",
    "previewRoleArns",
    "ephemeralRoleArns",
)


def _access_lists(c: StackConfig) -> tuple[tuple[str, ...], ...]:
    """The role lists of ``ACCESS_ROLE_KEYS``, in that order."""
    return (c.admin_role_arns, c.deploy_role_arns, c.preview_role_arns, c.ephemeral_role_arns)


def _cluster_rules(c: StackConfig, today: date) -> list[f.Problem]:
    """The EKS calendar, node group bounds and GPU capacity of a long-lived stack."""
    problems: list[f.Problem] = []
    version = c.kubernetes_version
    if (
        problem := eks_versions.support_problem(version, c.upgrade_support_type, today)
    ) is not None:
        problems.append(("kubernetesVersion", version, problem))
    if c.gpu_node_min > c.gpu_node_max:
        problems.append(
            ("gpuNodeMin", c.gpu_node_min, f"must not exceed gpuNodeMax ({c.gpu_node_max})")
        )
    low, desired, high = c.system_node_min, c.system_node_desired, c.system_node_max
    if not low <= desired <= high:
        allowed = (
            f"must satisfy systemNodeMin ({low}) <= systemNodeDesired <= systemNodeMax ({high})"
        )
        problems.append(("systemNodeDesired", desired, allowed))
    return problems + _gpu_capacity(c)


def _gpu_capacity(c: StackConfig) -> list[f.Problem]:
    """Every CUDA replica holds one whole GPU, surge pods and pr stacks included."""
    per_node = c.gpus_per_node
    capacity = c.gpu_node_max * per_node
    own, slots = c.gpus_needed, c.pr_gpu_slots
    if own + slots <= capacity:
        return []
    allowed = (
        f"{capacity} GPU(s) at most (gpuNodeMax x the smallest gpuInstanceTypes entry), but "
        f"the service needs {own} (hpaMaxReplicas {c.hpa_max_replicas} + {ROLLOUT_MAX_SURGE} "
        f"rollout surge) and prGpuSlots keeps {slots} for pr stacks; raise gpuNodeMax to "
        f"{-(-(own + slots) // per_node)} or lower the others"
    )
    return [("gpuNodeMax", c.gpu_node_max, allowed)]


def _access_rules(c: StackConfig) -> list[f.Problem]:
    """Somebody must be able to deploy, and CI must be able to reach the API it deploys to."""
    problems: list[f.Problem] = []
    for key, arns in zip(ACCESS_ROLE_KEYS, _access_lists(c), strict=True):
        for arn in arns:
            if not arn.startswith(f"arn:{c.partition}:"):
                # An access entry for a role of another partition can never authenticate.
                allowed = f"not a role of the {c.partition} partition that {c.region} is in"
                problems.append((key, arn, allowed))
    if not c.admin_role_arns and not c.deploy_role_arns:
        allowed = (
            "no role could reach the cluster to deploy the workload: list the role CI assumes "
            "for `pulumi up` (and yours in adminRoleArns); access is never granted implicitly"
        )
        problems.append(("deployRoleArns", [], allowed))
    world_open = any(cidr in ("0.0.0.0/0", "::/0") for cidr in c.public_access_cidrs)
    if world_open and c.ephemeral_role_arns and not c.allow_world_open_endpoint:
        allowed = (
            "this cluster runs pull-request code (ephemeralRoleArns is set) and its API would be "
            "open to the whole internet; list your runners' egress ranges, run CI inside the VPC "
            "(ciRunner: self-hosted-vpc), or accept it with allowWorldOpenEndpoint: true"
        )
        problems.append(("endpointPublicAccessCidrs", list(c.public_access_cidrs), allowed))
    if c.ci_runner is CiRunner.GITHUB_HOSTED and not world_open:
        allowed = (
            "GitHub-hosted runners have no fixed egress addresses, so they cannot reach an "
            "endpoint that is private or allow-listed; use a self-hosted runner in the VPC or a "
            "Pulumi Deployments agent (self-hosted-vpc / pulumi-deployments-agent), see "
            "docs/cluster-access.md"
        )
        problems.append(("ciRunner", c.ci_runner.value, allowed))
    return problems


def _network_rules(c: StackConfig) -> list[f.Problem]:
    """An adopted VPC comes with its subnets; staging and prod never open the API to all."""
    problems: list[f.Problem] = []
    private_ids = list(c.existing_private_subnet_ids)
    if c.existing_vpc_id and len(private_ids) < 2:
        allowed = "an existing VPC needs at least 2 private subnets in different AZs"
        problems.append(("existingPrivateSubnetIds", private_ids, allowed))
    if not c.existing_vpc_id and (private_ids or c.existing_public_subnet_ids):
        problems.append(("existingVpcId", "", "set it when existing subnet ids are given"))
    if c.environment in (Environment.STAGING, Environment.PROD):
        for cidr in c.public_access_cidrs:
            if cidr.endswith("/0"):
                allowed = (
                    f"{c.environment.value} must not open the Kubernetes API to the whole "
                    "internet; list your office / CI egress ranges, or none for a private-only "
                    "endpoint"
                )
                problems.append(("endpointPublicAccessCidrs", cidr, allowed))
    return problems


def _workload_rules(c: StackConfig) -> list[f.Problem]:
    """Replica bounds, where the image comes from, protection, and what only pr stacks have."""
    problems: list[f.Problem] = []
    if c.hpa_min_replicas > c.hpa_max_replicas:
        allowed = f"must not exceed hpaMaxReplicas ({c.hpa_max_replicas})"
        problems.append(("hpaMinReplicas", c.hpa_min_replicas, allowed))
    if c.is_ephemeral and c.image_ref:
        allowed = "not allowed on pr stacks: they build their own image"
        problems.append(("imageRef", c.image_ref, allowed))
    elif c.image_ref == IMAGE_REF_NONE and c.environment is not Environment.DEV:
        allowed = (
            "'none' (platform without the service) is for dev's first up only, before CI has "
            "pushed an image to its registry; other stacks take an image dev verified"
        )
        problems.append(("imageRef", c.image_ref, allowed))
    if c.image_replicas and c.environment is not Environment.DEV:
        allowed = (
            "only the dev stack holds the delivery registry CI pushes to (and ECR keeps one "
            "replication configuration per registry); set it there"
        )
        replicas = [f"{a}:{r}" if a else r for a, r in c.image_replicas]
        problems.append(("imageReplicas", replicas, allowed))
    if c.environment is Environment.PROD and not c.deletion_protection:
        allowed = "prod stacks must keep deletion protection on (true)"
        problems.append(("deletionProtection", False, allowed))
    return problems + _pr_only_rules(c)


def _pr_only_rules(c: StackConfig) -> list[f.Problem]:
    """Expiry and a borrowed cluster are for pr stacks only, and pr stacks need both."""
    problems: list[f.Problem] = []
    if not c.is_ephemeral and c.expires_at is not None:
        problems.append(("expiresAt", c.expires_at_iso, "only pr stacks expire"))
    if c.is_ephemeral and not c.cluster_stack:
        allowed = (
            "required on pr stacks: the stack whose cluster they borrow, e.g. "
            f"`pulumi config set clusterStack <org>/{c.project}/dev`"
        )
        problems.append(("clusterStack", None, allowed))
    elif not c.is_ephemeral and c.cluster_stack:
        allowed = "only pr stacks borrow another stack's cluster"
        problems.append(("clusterStack", c.cluster_stack, allowed))
    return problems


def _scaling_rules(c: StackConfig, given: frozenset[str]) -> list[f.Problem]:
    """prod never sleeps; one provisioner per pool; GPU nodes follow the pods to zero."""
    zero = c.scaling.scale_to_zero
    if c.environment is Environment.PROD and zero is not ScaleToZero.NEVER:
        return [("scaleToZero", zero.value, "prod keeps hpaMinReplicas warm: must be never")]
    if c.is_ephemeral:
        return []
    if c.scaling.node_provisioner is NodeProvisioner.KARPENTER:
        # One pool, one provisioner: Karpenter owns the GPU nodes, so there is no managed GPU
        # node group whose size cluster-autoscaler would also change.
        if "gpuNodeMin" not in given:
            return []
        allowed = (
            "sizes the cluster-autoscaler GPU node groups; with nodeProvisioner karpenter the "
            "GPU nodes come from a Karpenter NodePool (gpuNodeMax caps it): remove it"
        )
        return [("gpuNodeMin", c.gpu_node_min, allowed)]
    if zero is not ScaleToZero.NEVER and c.gpus_needed and c.gpu_node_min > 0:
        allowed = (
            f"scaleToZero {zero.value} lets the pods go to zero, so the GPU node group must be "
            "allowed to follow: set gpuNodeMin to 0"
        )
        return [("gpuNodeMin", c.gpu_node_min, allowed)]
    return []
