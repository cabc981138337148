"""Sequences of operations against the simulated AWS account: up, destroy, up; open, close, reopen.

Each rule of ``tools.mocks.simulated_account`` is shown twice: once refusing what AWS refuses (a
small program that breaks the rule), once letting the real program through the same sequence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pytest

from infra.components.image_registry import lifecycle_policy
from tools.mocks.simulated_account import (
    AUTOSCALING_SLR,
    Image,
    PlatformError,
    SimulatedAccount,
    expired_images,
)
from tools.plan import ProgramRun, run_program

DEV_REF = "organization/torch-eks-inference/dev"
ACCOUNT = "123456789012"


def tiny(account: SimulatedAccount, program: Callable[[], None], stack: str = "dev") -> ProgramRun:
    """Run a few resources (not the project's program) against the account."""
    return run_program(stack, config={"aws:region": "us-west-2"}, program=program, account=account)


def up_pr(account: SimulatedAccount, dev: ProgramRun, stack: str = "pr-5") -> ProgramRun:
    account.caller_role = "github-ephemeral"
    return run_program(stack, referenced={DEV_REF: dev}, account=account)


@pytest.fixture
def account() -> SimulatedAccount:
    return SimulatedAccount(account_id=ACCOUNT, today=date(2026, 12, 1))


# ------------------------------------------------------------------ Secrets Manager


def fixed_name_secret() -> None:
    aws.secretsmanager.Secret("s", name="app/api-key", recovery_window_in_days=7)


def test_a_secret_name_is_held_for_its_recovery_window(account: SimulatedAccount) -> None:
    first = tiny(account, fixed_name_secret)
    account.destroy(first.registrations)
    with pytest.raises(PlatformError, match="already scheduled for deletion"):
        tiny(account, fixed_name_secret)
    account.advance(8)
    tiny(account, fixed_name_secret)


def test_dev_can_be_destroyed_and_brought_up_again_within_a_week(
    account: SimulatedAccount,
) -> None:
    dev = run_program("dev", account=account)
    account.destroy(dev.registrations)
    account.advance(3)
    again = run_program("dev", account=account)
    names = {
        r.outputs["name"]
        for run in (dev, again)
        for r in run.registrations
        if r.type == "aws:secretsmanager/secret:Secret"
    }
    # The first name is still held for 7 days; the prefix gives the new secret another name.
    assert len(names) == 2
    assert all(name.startswith("torch-eks-inference/dev/api-key-") for name in names)


def test_the_images_prod_runs_survive_destroying_dev(account: SimulatedAccount) -> None:
    # dev holds the one registry CI pushes to; a pr stack's push stands in for CI's here.
    dev = run_program("dev", account=account)
    up_pr(account, dev)
    account.caller_role = "PulumiDeployer"
    with pytest.raises(PlatformError, match="RepositoryNotEmptyException"):
        account.destroy(dev.registrations)


# ------------------------------------------------------------------ ECR tags


def immutable_repo_with(tag: str) -> Callable[[], None]:
    def program() -> None:
        repo = aws.ecr.Repository("r", name="app", image_tag_mutability="IMMUTABLE")
        docker.Image(
            "i",
            image_name=pulumi.Output.concat(repo.repository_url, f":{tag}"),
            build=docker.DockerBuildArgs(context="."),
        )

    return program


def test_an_immutable_tag_cannot_be_pushed_twice(account: SimulatedAccount) -> None:
    run = tiny(account, immutable_repo_with("v1"))
    # The push happened but the image never reached the state (the run failed after it).
    account.state.discard(next(r.urn for r in run.registrations if r.type.startswith("docker")))
    with pytest.raises(PlatformError, match="ImageTagAlreadyExistsException"):
        tiny(account, immutable_repo_with("v1"))


def test_a_pull_request_closed_and_reopened_pushes_its_tag_again(
    account: SimulatedAccount,
) -> None:
    dev = run_program("dev", account=account)
    first = up_pr(account, dev)
    (image,) = [r for r in first.registrations if r.type == "docker:index/image:Image"]
    assert image.inputs["imageName"].rsplit(":", 1)[1].startswith("pr-5-")
    account.destroy(first.registrations)  # the PR is closed
    account.advance(1)
    up_pr(account, dev)  # ... and reopened: same tag, same secret prefix


def test_a_retried_pr_up_after_a_failure_past_the_push_succeeds(
    account: SimulatedAccount,
) -> None:
    dev = run_program("dev", account=account)
    first = up_pr(account, dev)
    for r in first.registrations:  # everything after the push failed and is not in the state
        if r.type != "kubernetes:core/v1:Namespace":
            account.state.discard(r.urn)
    account.secrets.clear()  # the secret's create failed too
    up_pr(account, dev)


# ------------------------------------------------------------------ KMS principals


def key_naming_the_autoscaling_role() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:{AUTOSCALING_SLR}"
    aws.kms.Key(
        "k",
        policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": role},
                        "Action": "kms:Decrypt",
                        "Resource": "*",
                    }
                ],
            }
        ),
    )


def test_a_key_policy_may_not_name_a_role_the_account_lacks(account: SimulatedAccount) -> None:
    with pytest.raises(PlatformError, match="MalformedPolicyDocumentException"):
        tiny(account, key_naming_the_autoscaling_role)
    account.existing_roles.add(f"arn:aws:iam::{ACCOUNT}:{AUTOSCALING_SLR}")
    tiny(account, key_naming_the_autoscaling_role, stack="staging")


def test_every_stack_comes_up_in_a_fresh_account(account: SimulatedAccount) -> None:
    """No Auto Scaling group ever existed here, so neither does its service-linked role."""
    assert not account.existing_roles
    for stack in ("dev", "staging", "prod"):
        run_program(stack, account=account)


# ------------------------------------------------------------------ EKS versions and access


def cluster_at(version: str, support: str) -> Callable[[], None]:
    def program() -> None:
        aws.eks.Cluster(
            "c",
            role_arn=f"arn:aws:iam::{ACCOUNT}:role/eks",
            version=version,
            vpc_config=aws.eks.ClusterVpcConfigArgs(subnet_ids=["subnet-1"]),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=support),
        )

    return program


def test_eks_refuses_a_version_past_extended_support_on_that_day(
    account: SimulatedAccount,
) -> None:
    # 1.31: extended support ended 2026-11-26 (EKS Kubernetes version calendar).
    account.today = date(2026, 11, 20)
    tiny(account, cluster_at("1.31", "EXTENDED"))
    account.today = date(2026, 12, 1)
    with pytest.raises(PlatformError, match=r"extended support for Kubernetes 1\.31 ended"):
        tiny(account, cluster_at("1.31", "EXTENDED"), stack="staging")
    with pytest.raises(PlatformError, match="does not allow upgradeSupportType STANDARD"):
        tiny(account, cluster_at("1.33", "STANDARD"), stack="prod")


def test_only_roles_with_an_access_entry_reach_the_cluster(account: SimulatedAccount) -> None:
    dev = run_program("dev", account=account)
    account.caller_role = "intern-laptop"
    with pytest.raises(PlatformError, match=r"Unauthorized: .*intern-laptop"):
        run_program("pr-9", referenced={DEV_REF: dev}, account=account)
    up_pr(account, dev, "pr-9")


def test_running_up_grants_the_caller_nothing(account: SimulatedAccount) -> None:
    """A deployer not listed in deployRoleArns cannot deploy the workload: no implicit entry."""
    account.caller_role = "laptop-admin"
    with pytest.raises(PlatformError, match=r"Unauthorized: .*laptop-admin"):
        run_program("staging", account=account)


# ------------------------------------------------------------------ ECR lifecycle

#: The policy this repository shipped before: a count rule over every tag.
PREVIOUS_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 7,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "selection": {
                    "tagStatus": "tagged",
                    "tagPrefixList": ["pr-"],
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 14,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 3,
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 50,
                },
                "action": {"type": "expire"},
            },
        ]
    }
)


def busy_quarter(start: date) -> list[Image]:
    """prod deploys one tag, then 90 days of main-branch tags and pull-request images."""
    images = [Image("cuda-prod00000001", "sha256:prod", start)]
    for day in range(1, 91):
        when = start + timedelta(days=day)
        images.append(Image(f"cuda-{day:012d}", f"sha256:{day}", when))
        images.append(Image(f"pr-{day}-cuda-x", f"sha256:pr{day}", when))
    return images


def test_the_lifecycle_policy_never_expires_what_a_stack_still_deploys() -> None:
    start = date(2026, 9, 1)
    images = busy_quarter(start)
    today = start + timedelta(days=91)
    assert "cuda-prod00000001" in expired_images(PREVIOUS_POLICY, images, today)
    expired = expired_images(lifecycle_policy(), images, today)
    assert not any(tag.startswith("cuda-") for tag in expired)
    # A pr stack lives at most 30 days and re-pushes on every update: its image is never older.
    newest_live_pr = [
        i.tag
        for i in images
        if i.tag.startswith("pr-") and i.pushed_on >= today - timedelta(days=30)
    ]
    assert newest_live_pr
    assert not set(newest_live_pr) & expired
    assert "pr-1-cuda-x" in expired  # while abandoned pull-request images do go
