"""Who may hold which credentials: one GitHub environment per trust boundary, and its policies.

    python -m tools.delivery.oidc --repository acme/torch-eks-inference --account 123456789012

prints, for every environment below, the AWS IAM role trust policy and the Pulumi Cloud OIDC
authorization rule to create for it. No workflow holds a stored AWS key or Pulumi token: each job
that needs cloud access declares a GitHub ``environment``, asks GitHub for an OIDC token (whose
``sub`` is then ``repo:OWNER/REPO:environment:NAME``) and trades it for short-lived credentials.
So a role or a Pulumi team can only be reached from jobs of its own environment, and the
environment's own rules (deployment branches, required reviewers) gate the job before it gets
any token.

Sources:

- GitHub, "Configuring OpenID Connect in Amazon Web Services": the ``aud`` is
  ``sts.amazonaws.com`` for aws-actions/configure-aws-credentials; with an environment the
  ``sub`` is ``repo:ORG/REPO:environment:NAME``.
  https://docs.github.com/en/actions/how-tos/secure-your-work/security-harden-deployments/oidc-in-aws
- Pulumi, "Configuring OpenID Connect for GitHub": issuer
  ``https://token.actions.githubusercontent.com``, ``aud`` ``urn:pulumi:org:<org>``, team
  tokens scoped ``team:<name>``.
  https://www.pulumi.com/docs/administration/access-identity/oidc-issuers/github/
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GITHUB_ISSUER = "token.actions.githubusercontent.com"
AWS_AUDIENCE = "sts.amazonaws.com"


@dataclass(frozen=True)
class Environment:
    """A GitHub environment: what its jobs may touch and which refs may use it."""

    name: str
    purpose: str
    pulumi_team: str | None  # the Pulumi Cloud team whose token its jobs get
    stacks: tuple[str, ...]  # stacks that team may read or write
    main_only: bool  # deployment branch rule: only refs/heads/main
    reviewers: bool = False  # required reviewers before the job starts
    #: where the role goes in the program's config for an EKS access entry: (stack, config key)
    cluster_access: tuple[tuple[str, str], ...] = ()


ENVIRONMENTS: tuple[Environment, ...] = (
    Environment(
        "preview",
        "pull-request previews of dev and staging (read-only roles; never prod)",
        "pr-preview",
        ("dev", "staging"),
        main_only=False,
        cluster_access=(("dev", "previewRoleArns"), ("staging", "previewRoleArns")),
    ),
    Environment(
        "ephemeral",
        "pr-<n> stacks on the dev cluster, their teardown and the sweeper",
        "ephemeral",
        ("pr-*", "dev (read: StackReference)"),
        main_only=False,
        cluster_access=(("dev", "ephemeralRoleArns"),),
    ),
    Environment("build", "build and push the image once per commit", None, (), main_only=True),
    Environment(
        "dev",
        "deploy dev",
        "deploy-dev",
        ("dev",),
        True,
        cluster_access=(("dev", "deployRoleArns"),),
    ),
    Environment(
        "staging",
        "deploy staging",
        "deploy-staging",
        ("staging",),
        True,
        cluster_access=(("staging", "deployRoleArns"),),
    ),
    Environment(
        "production-plan",
        "refresh + preview prod into a saved plan (read-only role)",
        "plan-prod",
        ("prod",),
        main_only=True,
        cluster_access=(("prod", "previewRoleArns"),),
    ),
    Environment(
        "production",
        "apply prod's approved plan",
        "deploy-prod",
        ("prod",),
        True,
        reviewers=True,
        cluster_access=(("prod", "deployRoleArns"),),
    ),
)
BY_NAME = {environment.name: environment for environment in ENVIRONMENTS}
#: Environments a pull_request-triggered job may use: none of them can reach prod.
PULL_REQUEST_ENVIRONMENTS = frozenset({"preview", "ephemeral"})
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def subject(repository: str, environment: str) -> str:
    """The OIDC ``sub`` claim of a job that runs in ``environment`` of ``repository``."""
    if not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"repository {repository!r} is not OWNER/NAME")
    if environment not in BY_NAME:
        raise ValueError(f"unknown environment {environment!r}; known: {sorted(BY_NAME)}")
    return f"repo:{repository}:environment:{environment}"


def aws_trust_policy(account: str, repository: str, environment: str) -> dict[str, Any]:
    """Trust policy of the environment's IAM role: this repository's environment, nothing else."""
    if not re.fullmatch(r"[0-9]{12}", account):
        raise ValueError(f"AWS account id {account!r} must be 12 digits")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{GITHUB_ISSUER}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_ISSUER}:aud": AWS_AUDIENCE,
                        f"{GITHUB_ISSUER}:sub": subject(repository, environment),
                    }
                },
            }
        ],
    }


def pulumi_policy(organization: str, repository: str, environment: str) -> dict[str, Any]:
    """The Pulumi Cloud OIDC issuer rule that gives this environment its team's token."""
    team = BY_NAME[environment].pulumi_team
    if team is None:
        raise ValueError(f"environment {environment!r} gets no Pulumi token")
    return {
        "decision": "allow",
        "tokenType": "team",
        "teamName": team,
        "rules": {"aud": f"urn:pulumi:org:{organization}", "sub": subject(repository, environment)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print every environment's AWS trust policy and Pulumi rule as JSON."""
    parser = argparse.ArgumentParser(prog="python -m tools.delivery.oidc", description=__doc__)
    parser.add_argument("--repository", required=True, help="OWNER/NAME on GitHub")
    parser.add_argument("--account", required=True, help="AWS account id of the roles")
    parser.add_argument("--pulumi-org", default="organization", help="Pulumi Cloud organization")
    args = parser.parse_args(argv)
    try:
        document = {
            e.name: {
                "purpose": e.purpose,
                "deploymentBranches": "main" if e.main_only else "any (pull requests)",
                "requiredReviewers": e.reviewers,
                "clusterAccess": [f"{stack}: {key}" for stack, key in e.cluster_access],
                "awsTrustPolicy": aws_trust_policy(args.account, args.repository, e.name),
                "pulumi": pulumi_policy(args.pulumi_org, args.repository, e.name)
                if e.pulumi_team
                else None,
            }
            for e in ENVIRONMENTS
        }
    except ValueError as exc:
        print(f"oidc: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
