"""The ECR repository and the service image built from this repository and pushed to it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra.components.types import component_options, type_token
from infra.config import MAX_EXPIRY_HOURS, ImageVariant

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
#: The image definition, relative to the repository root (the build context).
DOCKERFILE: Final = "service/Dockerfile"
#: Files whose content decides the image; their hash is the default tag.
IMAGE_SOURCES: Final = ("service", "model", "pyproject.toml", "requirements", ".dockerignore")
PLATFORM: Final = "linux/amd64"
#: Tags pushed by pr-* stacks start with this, so the lifecycle policy can expire them early.
PR_TAG_PREFIX: Final = "pr-"
UNTAGGED_EXPIRY_DAYS: Final = 7
#: A pr stack lives at most MAX_EXPIRY_HOURS and re-pushes its image on every update, so an image
#: older than that (plus a day) cannot be the one a live pr stack runs.
PR_TAG_EXPIRY_DAYS: Final = MAX_EXPIRY_HOURS // 24 + 1
#: Tags a repository lets be pushed again (a reopened pull request, a retried `up`); every other
#: tag stays immutable. ECR: imageTagMutability IMMUTABLE_WITH_EXCLUSION with WILDCARD filters
#: (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageTagMutabilityExclusionFilter.html).
MUTABLE_TAG_FILTER: Final = f"{PR_TAG_PREFIX}*"


def digest_of(image_ref: str) -> str:
    """The ``sha256:<hex>`` part of ``repository@sha256:<hex>`` (what promotion compares).

    A replicated copy in another region or account has another registry host but the same
    digest, so promotion and the policy pack compare digests, never whole references.
    """
    _, separator, digest = image_ref.rpartition("@")
    if not separator or not digest.startswith("sha256:"):
        raise ValueError(f"{image_ref!r} is not an image reference by digest (REPO@sha256:HEX)")
    return digest


def lifecycle_policy() -> str:
    """Expire untagged images, and pr-* images older than any pr stack can live.

    No count rule touches the tags long-lived stacks deploy: "keep the newest N" would expire
    the image prod runs once N newer images were pushed, and its pods could no longer be
    rescheduled. Rule semantics: https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html
    """
    rules = [
        {
            "rulePriority": 1,
            "description": f"untagged images after {UNTAGGED_EXPIRY_DAYS} days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": UNTAGGED_EXPIRY_DAYS,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"pull-request images after {PR_TAG_EXPIRY_DAYS} days",
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": [PR_TAG_PREFIX],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": PR_TAG_EXPIRY_DAYS,
            },
            "action": {"type": "expire"},
        },
    ]
    return json.dumps({"rules": rules}, sort_keys=True)


def _source_files(root: Path, entries: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for entry in entries:
        path = root / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
    return sorted(files)


def source_hash(variant: ImageVariant, root: Path = REPO_ROOT) -> str:
    """A short hash of everything the image is built from, plus the torch variant.

    Same sources give the same tag, so an unchanged service is not rebuilt under a new name, and
    changed sources always get a new tag (the repository's tags are immutable).
    """
    digest = hashlib.sha256(f"variant={variant.value}\n".encode())
    for path in _source_files(root, IMAGE_SOURCES):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def build_context() -> tuple[str, str]:
    """Build context and Dockerfile paths, relative to the working directory.

    The Pulumi CLI runs the program from infra/, the plan tool from the repository root; a
    relative path keeps the declared inputs the same on every machine.
    """
    context = os.path.relpath(REPO_ROOT, Path.cwd())
    return context, os.path.join(context, DOCKERFILE) if context != "." else DOCKERFILE


@dataclass(frozen=True)
class RegistryArgs:
    """Inputs of ``Registry``."""

    repository_name: str
    ephemeral: bool
    deletion_protection: bool
    tags: Mapping[str, str]
    #: (account id, "" for this one; region): where ECR replicates the images, same digests.
    replicas: tuple[tuple[str, str], ...] = ()
    #: The delivery registry: other stacks run its images, so destroying its own stack must
    #: never delete them (ECR then refuses to delete the repository while it holds images).
    holds_deployed_images: bool = False


class Registry(pulumi.ComponentResource):
    """A private ECR repository: KMS-encrypted, immutable tags but pr-*, scanned on push, expiry."""

    repository_url: pulumi.Output[str]
    registry_id: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("registry", "Registry")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        protect = pulumi.ResourceOptions(parent=self, protect=args.deletion_protection)
        key = aws.kms.Key(
            f"{name}-key",
            description=f"ECR repository {args.repository_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30 if args.deletion_protection else 7,
            tags=dict(args.tags),
            opts=protect,
        )
        repository = aws.ecr.Repository(
            f"{name}-repository",
            name=args.repository_name,
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            image_tag_mutability_exclusion_filters=[
                aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(
                    filter=MUTABLE_TAG_FILTER, filter_type="WILDCARD"
                )
            ],
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            encryption_configurations=[
                aws.ecr.RepositoryEncryptionConfigurationArgs(
                    encryption_type="KMS", kms_key=key.arn
                )
            ],
            # ECR refuses to delete a repository that holds images (RepositoryNotEmptyException):
            # protected stacks and the delivery registry (whose images other stacks run) keep
            # them; `pulumi destroy` then asks for the repository to be emptied deliberately.
            force_delete=args.ephemeral
            or not (args.deletion_protection or args.holds_deployed_images),
            tags=dict(args.tags),
            opts=protect,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=lifecycle_policy(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.replicas:
            _replication(name, repository, args.replicas, self)
        self.repository_url = repository.repository_url
        self.registry_id = repository.registry_id
        self.repository_arn = repository.arn
        self.kms_key_arn = key.arn
        self.register_outputs(
            {"repository_url": self.repository_url, "repository_arn": self.repository_arn}
        )


def _replication(
    name: str,
    repository: aws.ecr.Repository,
    replicas: tuple[tuple[str, str], ...],
    parent: pulumi.Resource,
) -> aws.ecr.ReplicationConfiguration:
    """Replicate this repository's images (same digests) instead of rebuilding elsewhere.

    One rule, filtered to this repository's name (PREFIX_MATCH). A destination in another
    account must first allow ``ecr:ReplicateImage`` (and ``ecr:CreateRepository``) for this
    account in its registry policy. Sources: ECR user guide, "Private image replication
    examples" and "Granting registry permissions for cross account replication".
    """
    destinations = [
        aws.ecr.ReplicationConfigurationReplicationConfigurationRuleDestinationArgs(
            region=region, registry_id=account or repository.registry_id
        )
        for account, region in replicas
    ]
    rule = aws.ecr.ReplicationConfigurationReplicationConfigurationRuleArgs(
        destinations=destinations,
        repository_filters=[
            aws.ecr.ReplicationConfigurationReplicationConfigurationRuleRepositoryFilterArgs(
                filter=repository.name, filter_type="PREFIX_MATCH"
            )
        ],
    )
    return aws.ecr.ReplicationConfiguration(
        f"{name}-replication",
        replication_configuration=aws.ecr.ReplicationConfigurationReplicationConfigurationArgs(
            rules=[rule]
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class ServiceImageArgs:
    """Inputs of ``ServiceImage``."""

    repository_url: pulumi.Input[str]
    registry_id: pulumi.Input[str]
    variant: ImageVariant
    tag: str


class ServiceImage(pulumi.ComponentResource):
    """The service image, built for linux/amd64 and pushed to ECR; ``repo_digest`` pins it."""

    image_name: pulumi.Output[str]
    repo_digest: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("registry", "ServiceImage")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        token = aws.ecr.get_authorization_token_output(
            registry_id=args.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        context, dockerfile = build_context()
        image = docker.Image(
            f"{name}-image",
            image_name=pulumi.Output.concat(args.repository_url, ":", args.tag),
            build=docker.DockerBuildArgs(
                context=context,
                dockerfile=dockerfile,
                platform=PLATFORM,
                args={"TORCH_VARIANT": args.variant.value},
            ),
            registry=docker.RegistryArgs(
                server=token.proxy_endpoint,
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image_name = image.image_name
        self.repo_digest = image.repo_digest
        self.register_outputs({"image_name": self.image_name, "repo_digest": self.repo_digest})
