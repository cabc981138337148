"""``make preflight STACK=<stack>``: what would make the first ``pulumi up`` fail in this account.

    python -m tools.preflight --stack dev [--backend s3://BUCKET?region=R]
                                    [--secrets-provider awskms://alias/NAME?region=R]

Run it with the AWS credentials that will run ``pulumi up``. It only reads (STS, EKS, EC2,
Service Quotas, IAM, S3, KMS) and prints one table of checks, each ok, warn or blocker, with the
command that fixes it. The exit status is 1 when any check is a blocker, 2 when the stack file is
missing, else 0.

The stack's configuration is read from ``stacks/Pulumi.<stack>.yaml`` and validated by the
program's own ``load_stack_config``, so a config error is a blocker here too. A pr-<n> stack
borrows its cluster: the cluster checks belong to the stack its ``clusterStack`` names, and the
caller is matched against that stack's access-entry roles.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from infra.config import ConfigError, StackConfig, load_stack_config
from tools.plan import REPO_ROOT, STACKS_DIR, PlanError, read_stack_config
from tools.preflight.access import check_caller_access
from tools.preflight.checks import (
    check_gpu_offerings,
    check_gpu_quota,
    check_kubernetes_version,
    check_service_linked_roles,
)
from tools.preflight.report import (
    ClientFactory,
    Finding,
    Status,
    boto3_clients,
    error_code,
    render_table,
)
from tools.preflight.state import (
    backend_url,
    check_backend,
    check_secrets_provider,
    secrets_provider,
)

PROJECT_FILE: Final = REPO_ROOT / "Pulumi.yaml"
#: Region used for the backend checks when the stack file names none (global S3/KMS calls).
_FALLBACK_REGION: Final = "us-east-1"


def stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> Path:
    """stacks/Pulumi.<stack>.yaml; a pr-<n> stack without its own file reads the pr template."""
    own = stacks_dir / f"Pulumi.{stack}.yaml"
    if own.is_file() or not stack.startswith("pr-"):
        return own
    return stacks_dir / "Pulumi.pr-template.yaml"


def load(
    stack: str, stacks_dir: Path = STACKS_DIR, now: datetime | None = None
) -> tuple[StackConfig | None, list[Finding], str]:
    """(config, findings, region): the validated config and its warnings, or None with a
    blocker naming why. ``now`` dates the EKS calendar the validation applies."""
    path = stack_file(stack, stacks_dir)
    if not path.is_file():
        raise PlanError(f"no stack file {path}")
    raw, secret_keys = read_stack_config(path)
    region = raw.get("aws:region", "") or _FALLBACK_REGION
    try:
        config = load_stack_config(stack, raw, secret_keys=frozenset(secret_keys), now=now)
    except ConfigError as exc:
        fix = f"edit {path.name} (or `pulumi config set KEY VALUE -s {stack}`)"
        return None, [Finding("stack config", Status.BLOCKER, "; ".join(exc.problems), fix)], region
    findings = [Finding("stack config", Status.OK, f"{path.name} is valid")]
    findings += [Finding("stack config", Status.WARN, warning) for warning in config.warnings]
    return config, findings, region


#: Errors that mean "no usable credentials", whatever the call.
_CREDENTIAL_ERRORS: Final = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SSOTokenLoadError",
        "UnauthorizedSSOTokenError",
    }
)


def _guarded(check: str, run: Callable[[], list[Finding]], failed: Status) -> list[Finding]:
    """Run one check; an AWS error becomes a row saying it could not be made, not a crash."""
    try:
        return run()
    except Exception as exc:
        code = error_code(exc)
        if code in _CREDENTIAL_ERRORS:
            fix = "sign in as the identity of `pulumi up` (aws sso login, AWS_PROFILE, ...)"
        elif "AccessDenied" in code or code == "UnauthorizedOperation":
            fix = "give the caller read access for this call, or check it by hand"
        else:
            fix = "check the network path to AWS and run preflight again"
        return [Finding(check, failed, f"not checked: {code}: {str(exc)[:160]}", fix)]


def cluster_checks(config: StackConfig, clients: ClientFactory, now: datetime) -> list[Finding]:
    """EKS version, GPU offerings, GPU quota and service-linked roles of a cluster stack."""
    region = config.region
    ec2 = clients("ec2", region)
    return [
        *_guarded(
            "eks version",
            lambda: [check_kubernetes_version(config, clients("eks", region), now)],
            Status.WARN,
        ),
        *_guarded("gpu offerings", lambda: check_gpu_offerings(config, ec2), Status.WARN),
        *_guarded(
            "gpu quota",
            lambda: check_gpu_quota(config, ec2, clients("service-quotas", region)),
            Status.WARN,
        ),
        *_guarded(
            "service-linked roles",
            lambda: check_service_linked_roles(config, clients("iam", region)),
            Status.WARN,
        ),
    ]


def _cluster_config(
    config: StackConfig, stacks_dir: Path, now: datetime
) -> tuple[StackConfig | None, list[Finding]]:
    """The config of the stack that owns the cluster (itself, or a pr stack's clusterStack)."""
    if not config.is_ephemeral or not config.cluster_stack:
        return config, []
    base = config.cluster_stack.rsplit("/", 1)[-1]
    cluster, loaded, _region = load(base, stacks_dir, now)
    note = Finding(
        "cluster",
        Status.OK if cluster else Status.BLOCKER,
        f"borrowed from {config.cluster_stack}: its cluster checks run with "
        f"`make preflight STACK={base}`"
        + ("" if cluster else f"; its config is invalid: {loaded[0].detail}"),
        "" if cluster else loaded[0].fix,
    )
    return cluster, [note]


def run_checks(
    stack: str,
    clients: ClientFactory,
    *,
    backend: str | None = None,
    provider: str | None = None,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
    stacks_dir: Path = STACKS_DIR,
    project_file: Path = PROJECT_FILE,
) -> list[Finding]:
    """Every preflight finding for ``stack``, in table order."""
    env = os.environ if env is None else env
    now = now or datetime.now(UTC)
    config, findings, region = load(stack, stacks_dir, now)
    if config is not None:
        cluster, notes = _cluster_config(config, stacks_dir, now)
        findings += notes
        if cluster is not None:
            findings += _guarded(
                "caller access",
                lambda: [check_caller_access(config, cluster, clients("sts", region))],
                Status.BLOCKER,
            )
        if not config.is_ephemeral:
            findings += cluster_checks(config, clients, now)
    url, url_source = backend_url(backend, env, project_file)
    findings += _guarded(
        "pulumi backend", lambda: [check_backend(url, url_source, clients, region)], Status.BLOCKER
    )
    secrets, secrets_source = secrets_provider(provider, stack_file(stack, stacks_dir))
    findings += _guarded(
        "secrets provider",
        lambda: [check_secrets_provider(secrets, secrets_source, url, env, clients, region)],
        Status.BLOCKER,
    )
    return findings


def main(
    argv: Sequence[str] | None = None,
    clients: ClientFactory = boto3_clients,
    stacks_dir: Path = STACKS_DIR,
    now: datetime | None = None,
) -> int:
    """Command line entry point: prints the table; 1 on any blocker, 2 on usage errors."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.preflight",
        description="Check an AWS account before the first `pulumi up` of a stack (read-only).",
    )
    parser.add_argument("--stack", required=True, help="dev, staging, prod or pr-<number>")
    parser.add_argument(
        "--backend", help="the Pulumi backend URL (default: $PULUMI_BACKEND_URL, then Pulumi.yaml)"
    )
    parser.add_argument(
        "--secrets-provider", help="the stack's secrets provider (default: the stack file's)"
    )
    parser.add_argument(
        "--stacks-dir",
        type=Path,
        default=stacks_dir,
        help="the folder of the Pulumi.<stack>.yaml files (default: stacks/)",
    )
    args = parser.parse_args(argv)
    try:
        findings = run_checks(
            args.stack,
            clients,
            backend=args.backend,
            provider=args.secrets_provider,
            stacks_dir=args.stacks_dir,
            now=now,
        )
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Preflight of stack {args.stack} (read-only; run as the identity of `pulumi up`)\n")
    print(render_table(findings), end="")
    return exit_status(findings)


def exit_status(findings: Sequence[Finding]) -> int:
    """1 when any finding blocks the first `pulumi up`, else 0."""
    return 1 if any(f.status is Status.BLOCKER for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
