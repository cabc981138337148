"""A small, honest model of the AWS account the program deploys into, for offline sequences.

The mocks alone accept whatever the program declares. ``SimulatedAccount`` keeps state across
program runs (``up``), ``destroy`` and the passing of days, and refuses what AWS refuses for the
rules this project has been bitten by, each with the error AWS gives and its source:

- ECR: a tag pushed again to a repository where it is immutable is rejected
  (ImageTagAlreadyExistsException, even for the same digest; IMMUTABLE_WITH_EXCLUSION tags matching
  a WILDCARD filter stay mutable).
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html
- ECR: a repository that still holds images is not deleted unless force-deleted
  (RepositoryNotEmptyException). https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DeleteRepository.html
- ECR lifecycle policies: ``expired_images`` evaluates rules in priority order, an image being
  judged by the first rule that selects it.
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html
- Secrets Manager: a name cannot be reused while a deleted secret of that name is in its recovery
  window (InvalidRequestException "already scheduled for deletion"); a recovery window of 0 frees
  it at once. https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html
- KMS: a key policy naming an IAM principal that does not exist is rejected
  (MalformedPolicyDocumentException); a service-linked role exists only once its service created
  it (AWSServiceRoleForAutoScaling: the account's first Auto Scaling group).
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html
- EKS: a Kubernetes version past extended support cannot be created, and STANDARD support is
  refused for a version already in extended support (``infra.aws.eks_versions``).
- EKS: a Kubernetes API call from an IAM role without an access entry on the cluster is refused
  (401 Unauthorized). https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from infra.aws.eks_versions import SupportType, eks_refusal

#: The service-linked role EC2 Auto Scaling creates with an account's first Auto Scaling group.
AUTOSCALING_SLR: Final = (
    "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
)


class PlatformError(Exception):
    """What the real service would answer: the API error name and its message."""


@dataclass
class Secret:
    """A Secrets Manager secret's name lifecycle."""

    name: str
    deleted_on: date | None = None
    recovery_days: int = 30


@dataclass
class Image:
    """One tag in a repository."""

    tag: str
    digest: str
    pushed_on: date


@dataclass
class Repository:
    """An ECR repository: its tag rules and images."""

    name: str
    mutability: str
    mutable_filters: tuple[str, ...]
    force_delete: bool
    images: dict[str, Image] = field(default_factory=dict)
    lifecycle_policy: str | None = None

    def tag_is_mutable(self, tag: str) -> bool:
        """Whether a tag may be pushed again."""
        if self.mutability == "MUTABLE":
            return True
        if self.mutability == "IMMUTABLE_WITH_EXCLUSION":
            return any(fnmatch.fnmatchcase(tag, pattern) for pattern in self.mutable_filters)
        return False


@dataclass
class SimulatedAccount:
    """State of one AWS account and region across program runs; see the module docstring."""

    account_id: str = "123456789012"
    partition: str = "aws"
    today: date = date(2026, 12, 1)
    #: The IAM role whose credentials run `pulumi` (what getCallerIdentity answers).
    caller_role: str = "PulumiDeployer"
    #: IAM role ARNs that exist, besides the ones the program creates.
    existing_roles: set[str] = field(default_factory=set)
    secrets: dict[str, Secret] = field(default_factory=dict)
    repositories: dict[str, Repository] = field(default_factory=dict)
    #: cluster name -> principal ARNs with an access entry.
    access_entries: dict[str, set[str]] = field(default_factory=dict)
    clusters: set[str] = field(default_factory=set)
    #: Roles the program created (name -> ARN), live until destroyed.
    created_roles: dict[str, str] = field(default_factory=dict)
    #: The cluster Kubernetes calls of the current run go to.
    current_cluster: str | None = None
    #: URNs in the stacks' state: registering one again is an update, not a create.
    state: set[str] = field(default_factory=set)

    #: Counts creations, for names providers make unique (name_prefix suffixes).
    creations: int = 0

    def next_creation(self) -> int:
        """A number no earlier creation in this account got."""
        self.creations += 1
        return self.creations

    # ------------------------------------------------------------------ time and identity
    def advance(self, days: int) -> None:
        """Let ``days`` pass: secrets whose recovery window is over are gone for good."""
        self.today += timedelta(days=days)
        for name, secret in list(self.secrets.items()):
            if secret.deleted_on and self.today >= secret.deleted_on + timedelta(
                days=secret.recovery_days
            ):
                del self.secrets[name]

    @property
    def caller_role_arn(self) -> str:
        """The IAM role (not the session) running `pulumi`."""
        return f"arn:{self.partition}:iam::{self.account_id}:role/{self.caller_role}"

    def role_exists(self, arn: str) -> bool:
        """Whether an IAM role ARN names a role that exists now."""
        return arn in self.existing_roles or arn in self.created_roles.values()

    # ------------------------------------------------------------------ create
    def on_register(
        self,
        urn: str,
        typ: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        read: bool = False,
    ) -> None:
        """One registration of a run: a create unless the URN is already in the stack's state.

        A resource that was created before a run failed stays in the state (Pulumi records each
        finished step), so a retried `up` updates it instead of creating it again.
        """
        if typ == "pulumi:pulumi:StackReference" or typ.startswith("pulumi:providers:"):
            self.on_create(typ, inputs, outputs)
            return
        if read or urn in self.state:
            if typ.startswith("kubernetes:"):
                self._kubernetes_call(typ)
            return
        self.on_create(typ, inputs, outputs)
        self.state.add(urn)

    def on_create(self, typ: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        """Apply one resource creation, or raise ``PlatformError`` as AWS would."""
        handler = _CREATE.get(typ)
        if handler is not None:
            handler(self, inputs, outputs)
        elif typ.startswith("kubernetes:"):
            self._kubernetes_call(typ)

    def _secret(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        name = str(outputs.get("name") or inputs.get("name"))
        existing = self.secrets.get(name)
        if existing is not None and existing.deleted_on is not None:
            raise PlatformError(
                f"InvalidRequestException: You can't create this secret because a secret with "
                f"this name ({name}) is already scheduled for deletion "
                f"(until {existing.deleted_on + timedelta(days=existing.recovery_days)})."
            )
        if existing is not None:
            raise PlatformError(f"ResourceExistsException: the secret {name} already exists.")
        self.secrets[name] = Secret(name, recovery_days=int(inputs.get("recoveryWindowInDays", 30)))

    def _repository(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        name = str(outputs.get("name") or inputs.get("name"))
        if name in self.repositories:
            raise PlatformError(f"RepositoryAlreadyExistsException: {name}")
        filters = tuple(
            str(f.get("filter")) for f in inputs.get("imageTagMutabilityExclusionFilters") or ()
        )
        self.repositories[name] = Repository(
            name,
            str(inputs.get("imageTagMutability") or "MUTABLE"),
            filters,
            bool(inputs.get("forceDelete", False)),
        )

    def _lifecycle(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        repo = self.repositories.get(str(inputs.get("repository")))
        if repo is not None:
            repo.lifecycle_policy = str(inputs.get("policy"))

    def _push(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        image_name = str(inputs.get("imageName"))
        repo_url, _, tag = image_name.rpartition(":")
        repo = self.repositories.get(repo_url.split("/", 1)[-1])
        if repo is None:
            raise PlatformError(f"RepositoryNotFoundException: {repo_url}")
        digest = str(outputs.get("repoDigest", "")).rpartition("@")[2]
        if tag in repo.images and not repo.tag_is_mutable(tag):
            raise PlatformError(
                f"ImageTagAlreadyExistsException: The image tag '{tag}' already exists in the "
                f"'{repo.name}' repository and cannot be overwritten because the tag is immutable."
            )
        repo.images[tag] = Image(tag, digest, self.today)

    def _kms_key(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        policy = inputs.get("policy")
        if not policy:
            return
        for principal in _aws_principals(json.loads(str(policy))):
            root = principal.endswith(f":iam::{self.account_id}:root")
            if principal == "*" or root or self.role_exists(principal):
                continue
            raise PlatformError(
                "MalformedPolicyDocumentException: Policy contains a statement with one or more "
                f"invalid principals ({principal})."
            )

    def _role(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        self.created_roles[str(outputs.get("name"))] = str(outputs.get("arn"))

    def _cluster(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        name = str(outputs.get("name") or inputs.get("name"))
        support = SupportType(
            str((inputs.get("upgradePolicy") or {}).get("supportType", "EXTENDED"))
        )
        problem = eks_refusal(str(inputs.get("version")), support, self.today)
        if problem is not None:
            raise PlatformError(f"InvalidParameterException: {problem}")
        self.clusters.add(name)
        self.current_cluster = name

    def _access_entry(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        cluster = str(inputs.get("clusterName"))
        principal = str(inputs.get("principalArn"))
        entries = self.access_entries.setdefault(cluster, set())
        if principal in entries:
            raise PlatformError(
                f"ResourceInUseException: The specified access entry resource is already in use "
                f"on this cluster ({principal})."
            )
        entries.add(principal)

    def _stack_reference(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        referenced = (outputs.get("outputs") or {}).get("clusterName")
        if referenced:
            self.current_cluster = str(referenced)

    def _kubernetes_call(self, typ: str) -> None:
        cluster = self.current_cluster
        if cluster is None:
            return
        if self.caller_role_arn not in self.access_entries.get(cluster, set()):
            raise PlatformError(
                f"Unauthorized: {self.caller_role_arn} has no access entry on cluster {cluster}; "
                f"the API server refused the call that creates a {typ.rsplit(':', 1)[-1]}"
            )

    # ------------------------------------------------------------------ destroy
    def destroy(self, registrations: Iterable[Any]) -> None:
        """`pulumi destroy` of a stack whose run produced ``registrations`` (reverse order)."""
        for reg in reversed(list(registrations)):
            if reg.read:
                continue
            self.state.discard(reg.urn)
            inputs, outputs = reg.inputs, reg.outputs
            if reg.type == "aws:secretsmanager/secret:Secret":
                secret = self.secrets.get(str(outputs.get("name")))
                if secret is not None:
                    if secret.recovery_days == 0:
                        del self.secrets[secret.name]
                    else:
                        secret.deleted_on = self.today
            elif reg.type == "aws:ecr/repository:Repository":
                repo = self.repositories.get(str(outputs.get("name")))
                if repo is not None and repo.images and not repo.force_delete:
                    raise PlatformError(
                        f"RepositoryNotEmptyException: The repository {repo.name} cannot be "
                        "deleted because it still contains images"
                    )
                self.repositories.pop(str(outputs.get("name")), None)
            elif reg.type == "aws:eks/accessEntry:AccessEntry":
                self.access_entries.get(str(inputs.get("clusterName")), set()).discard(
                    str(inputs.get("principalArn"))
                )
            elif reg.type == "aws:eks/cluster:Cluster":
                self.clusters.discard(str(outputs.get("name")))
                self.access_entries.pop(str(outputs.get("name")), None)
            elif reg.type == "aws:iam/role:Role":
                self.created_roles.pop(str(outputs.get("name")), None)


def _aws_principals(policy: Mapping[str, Any]) -> list[str]:
    """Every ``Principal.AWS`` value of a policy document."""
    found: list[str] = []
    statements = policy.get("Statement") or []
    for statement in statements if isinstance(statements, list) else [statements]:
        principal = statement.get("Principal")
        values = principal.get("AWS") if isinstance(principal, Mapping) else principal
        if isinstance(values, str):
            found.append(values)
        elif isinstance(values, list):
            found.extend(str(v) for v in values)
    return found


def expired_images(policy: str, images: Iterable[Image], today: date) -> set[str]:
    """Tags an ECR lifecycle policy expires on ``today`` (rules by priority, first match wins)."""
    remaining = sorted(images, key=lambda i: i.pushed_on, reverse=True)
    expired: set[str] = set()
    for rule in sorted(json.loads(policy)["rules"], key=lambda r: r["rulePriority"]):
        selection = rule["selection"]
        selected = [i for i in remaining if _selects(selection, i)]
        remaining = [i for i in remaining if i not in selected]
        if selection["countType"] == "imageCountMoreThan":
            victims = selected[int(selection["countNumber"]) :]
        else:
            limit = timedelta(days=int(selection["countNumber"]))
            victims = [i for i in selected if today - i.pushed_on > limit]
        expired.update(i.tag for i in victims)
    return expired


def _selects(selection: Mapping[str, Any], image: Image) -> bool:
    status = selection["tagStatus"]
    if status == "untagged":
        return image.tag == ""
    if status == "any":
        return True
    prefixes = selection.get("tagPrefixList") or []
    return image.tag != "" and any(image.tag.startswith(p) for p in prefixes)


_CREATE: Final = {
    "aws:secretsmanager/secret:Secret": SimulatedAccount._secret,
    "aws:ecr/repository:Repository": SimulatedAccount._repository,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": SimulatedAccount._lifecycle,
    "docker:index/image:Image": SimulatedAccount._push,
    "aws:kms/key:Key": SimulatedAccount._kms_key,
    "aws:iam/role:Role": SimulatedAccount._role,
    "aws:eks/cluster:Cluster": SimulatedAccount._cluster,
    "aws:eks/accessEntry:AccessEntry": SimulatedAccount._access_entry,
    "pulumi:pulumi:StackReference": SimulatedAccount._stack_reference,
}
