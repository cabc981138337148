"""Where Pulumi keeps the stack's state and how it encrypts the stack's secrets: reachable?

Backends: https://www.pulumi.com/docs/iac/concepts/state-and-backends/ (``s3://bucket[/prefix]
[?region=...]``, ``file://``, Pulumi Cloud over https). Secrets providers:
https://www.pulumi.com/docs/iac/cli/commands/pulumi_stack_change-secrets-provider/
(``awskms://alias/NAME?region=R``, ``awskms://KEY-ID?region=R``, ``awskms:///arn:...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import yaml

from tools.preflight.report import ClientFactory, Finding, Status, error_code

#: Environment variables the Pulumi CLI reads the backend and the passphrase from.
BACKEND_ENV: Final = "PULUMI_BACKEND_URL"
PASSPHRASE_ENVS: Final = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
_NOT_FOUND: Final = frozenset({"404", "NoSuchBucket", "NotFound"})


def backend_url(flag: str | None, env: Mapping[str, str], project_file: Path) -> tuple[str, str]:
    """(url, where it came from): ``--backend``, then PULUMI_BACKEND_URL, then Pulumi.yaml."""
    if flag:
        return flag, "--backend"
    if env.get(BACKEND_ENV):
        return env[BACKEND_ENV], BACKEND_ENV
    if project_file.is_file():
        project = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
        backend = project.get("backend") or {}
        if isinstance(backend, dict) and backend.get("url"):
            return str(backend["url"]), f"{project_file.name} backend.url"
    return "", "nothing"


def secrets_provider(flag: str | None, stack_file: Path) -> tuple[str, str]:
    """(provider, where it came from): ``--secrets-provider``, else the stack file's
    ``secretsprovider:`` (written there by ``pulumi stack init --secrets-provider``)."""
    if flag:
        return flag, "--secrets-provider"
    if stack_file.is_file():
        document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
        if document.get("secretsprovider"):
            return str(document["secretsprovider"]), stack_file.name
        if document.get("encryptionsalt"):
            return "passphrase", f"{stack_file.name} (encryptionsalt)"
    return "", "nothing"


def _s3_region(url: str, default: str) -> str:
    return parse_qs(urlsplit(url).query).get("region", [default])[0]


def check_backend(url: str, source: str, clients: ClientFactory, region: str) -> Finding:
    """An s3:// backend's bucket must exist and be readable (HeadBucket); others are described."""
    name = "pulumi backend"
    if not url:
        return Finding(
            name,
            Status.WARN,
            f"no backend given (--backend, {BACKEND_ENV}, Pulumi.yaml): the CLI uses the one of "
            "`pulumi login`, Pulumi Cloud by default, which is not checked here",
            f"pass --backend s3://BUCKET?region={region} (or export {BACKEND_ENV}) to check it",
        )
    scheme = urlsplit(url).scheme
    if scheme in ("https", "http"):
        return Finding(
            name,
            Status.WARN,
            f"{url} (from {source}) is Pulumi Cloud or a self-hosted service: not checked, since "
            "that needs a Pulumi access token and this tool talks to AWS only",
            "run `pulumi whoami -v` to see that the login works",
        )
    if scheme == "file":
        return Finding(
            name,
            Status.WARN,
            f"{url} keeps state on this machine only: CI and colleagues cannot see it",
            f"use an S3 backend: pulumi login 's3://BUCKET?region={region}'",
        )
    if scheme != "s3":
        return Finding(name, Status.WARN, f"{url}: a {scheme} backend is not checked here")
    return _check_bucket(url, clients, _s3_region(url, region))


def _check_bucket(url: str, clients: ClientFactory, region: str) -> Finding:
    name, bucket = "pulumi backend", urlsplit(url).netloc
    s3 = clients("s3", region)
    location = (
        ""
        if region == "us-east-1"
        else f" --create-bucket-configuration LocationConstraint={region}"
    )
    create = (
        f"aws s3api create-bucket --bucket {bucket} --region {region}{location} && aws s3api "
        f"put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled"
    )
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        code = error_code(exc)
        if code in _NOT_FOUND:
            return Finding(name, Status.BLOCKER, f"bucket {bucket} of {url} does not exist", create)
        if code in ("403", "AccessDenied"):
            return Finding(
                name,
                Status.BLOCKER,
                f"bucket {bucket} exists but the caller may not use it (403)",
                f"grant s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject on {bucket}",
            )
        return Finding(name, Status.BLOCKER, f"bucket {bucket} unreachable: {code}: {exc}", create)
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning != "Enabled":
        return Finding(
            name,
            Status.WARN,
            f"bucket {bucket} is reachable, but versioning is off: a damaged state file "
            "cannot be rolled back",
            f"aws s3api put-bucket-versioning --bucket {bucket} "
            "--versioning-configuration Status=Enabled",
        )
    return Finding(name, Status.OK, f"bucket {bucket} reachable, versioning on")


def _kms_key_id(provider: str) -> str:
    rest = provider.removeprefix("awskms://").split("?", 1)[0]
    return rest[1:] if rest.startswith("/") else rest


def check_secrets_provider(
    provider: str,
    source: str,
    backend: str,
    env: Mapping[str, str],
    clients: ClientFactory,
    region: str,
) -> Finding:
    """An awskms:// key must exist, be enabled and be a symmetric encryption key (DescribeKey);
    a passphrase needs PULUMI_CONFIG_PASSPHRASE(_FILE) for an unattended run."""
    name = "secrets provider"
    self_managed = urlsplit(backend).scheme in ("s3", "file")
    if provider.startswith("awskms://"):
        return _check_kms_key(provider, clients, _s3_region(provider, region))
    if provider == "passphrase" or (not provider and self_managed):
        if any(env.get(variable) for variable in PASSPHRASE_ENVS):
            return Finding(name, Status.OK, "passphrase, given through the environment")
        chosen = f"passphrase (from {source})" if provider else "passphrase (the default here)"
        return Finding(
            name,
            Status.WARN,
            f"{chosen}: neither {' nor '.join(PASSPHRASE_ENVS)} is set, so `pulumi up` "
            "prompts, and fails where nobody can answer (CI)",
            f"pulumi stack change-secrets-provider 'awskms://alias/pulumi-secrets?region={region}'",
        )
    if not provider:
        return Finding(
            name,
            Status.WARN,
            "the backend's default (Pulumi Cloud's per-stack key): not checked offline, for the "
            "same reason as the backend",
        )
    return Finding(name, Status.WARN, f"{provider} (from {source}): not checked here")


def _check_kms_key(provider: str, clients: ClientFactory, region: str) -> Finding:
    name, key_id = "secrets provider", _kms_key_id(provider)
    alias = key_id.removeprefix("alias/") if key_id.startswith("alias/") else "pulumi-secrets"
    create = (
        f"KEY=$(aws kms create-key --region {region} --query KeyMetadata.KeyId --output text) "
        f"&& aws kms create-alias --region {region} --alias-name alias/{alias} --target-key-id $KEY"
    )
    try:
        metadata: dict[str, Any] = clients("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
    except Exception as exc:
        code = error_code(exc)
        if code == "NotFoundException":
            return Finding(name, Status.BLOCKER, f"KMS key {key_id} not found in {region}", create)
        return Finding(
            name,
            Status.BLOCKER,
            f"KMS key {key_id} cannot be described: {code}",
            f"grant kms:DescribeKey, kms:Encrypt and kms:Decrypt on {key_id} to the caller",
        )
    state = metadata.get("KeyState")
    if state != "Enabled":
        return Finding(
            name,
            Status.BLOCKER,
            f"KMS key {key_id} is {state}: Pulumi cannot encrypt or decrypt with it",
            f"aws kms cancel-key-deletion --key-id {metadata['KeyId']} --region {region}; "
            f"aws kms enable-key --key-id {metadata['KeyId']} --region {region}",
        )
    usage, spec = metadata.get("KeyUsage"), metadata.get("KeySpec", "SYMMETRIC_DEFAULT")
    if usage != "ENCRYPT_DECRYPT" or spec != "SYMMETRIC_DEFAULT":
        return Finding(
            name,
            Status.BLOCKER,
            f"KMS key {key_id} is {spec}/{usage}; Pulumi needs a symmetric encryption key",
            create,
        )
    return Finding(name, Status.OK, f"KMS key {key_id} enabled in {region}")
