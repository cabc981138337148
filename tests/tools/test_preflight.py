"""``make preflight``: every check against an AWS account simulated by moto in server mode.

Each test gets its own AWS account on the shared moto server (moto runs the calls of credentials
assumed into another account against that account's state), so one test's roles or buckets never
leak into another. moto 5.2.5 lacks two APIs, which botocore's Stubber answers instead, on real
botocore clients that validate every parameter and response against the service model:
- EKS DescribeClusterVersions (moto's EKS has no /cluster-versions route; it answers 404);
- Service Quotas GetServiceQuota for service code ec2 (moto models only the vpc quotas).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from infra.aws.eks_versions import CALENDAR, Release, SupportType
from infra.config import load_stack_config
from tests.conftest import aws_env
from tools.plan import STACKS_DIR, read_stack_config
from tools.preflight import cli as preflight
from tools.preflight.access import principal_of
from tools.preflight.checks import check_gpu_quota, check_kubernetes_version
from tools.preflight.report import Finding, Status

#: The role the tests' caller assumes; `pulumi up` runs as a role session like this one in CI.
CALLER_ROLE = "deployer"
#: The config key of the roles that run `pulumi up` on a cluster stack.
UP_ROLE_KEY = "deployRoleArns"
DEV_REGION = "us-west-2"
#: The day these tests are dated (the EKS calendar facts they assert hold on it).
TODAY = datetime(2026, 12, 1, tzinfo=UTC)

#: The service-linked roles of a used account, with the paths IAM gives them (moto's
#: create_service_linked_role misnames the EKS and Spot ones, e.g. "AWSServiceRoleForeks", so they
#: are created as the roles they really are: EKS user guide, using-service-linked-roles-eks*.html;
#: EC2 user guide, service-linked-roles-spot-instance-requests.html).
SERVICE_LINKED_ROLES = {
    "AWSServiceRoleForAutoScaling": "autoscaling.amazonaws.com",
    "AWSServiceRoleForAmazonEKS": "eks.amazonaws.com",
    "AWSServiceRoleForAmazonEKSNodegroup": "eks-nodegroup.amazonaws.com",
    "AWSServiceRoleForEC2Spot": "spot.amazonaws.com",
}
#: Quota codes the check must ask for (see tools/preflight/checks.py for their sources).
SPOT_G_VT = ("L-3819A6DF", "All G and VT Spot Instance Requests")
ON_DEMAND_G_VT = ("L-DB2E81BA", "Running On-Demand G and VT instances")


def calendar_answer(now: datetime, offered: tuple[str, ...] | None = None) -> dict[str, Any]:
    """DescribeClusterVersions as EKS answers it on ``now``, statuses following the dates of the
    EKS calendar (infra/aws/eks_versions.py cites the EKS documentation for each date). ``offered``
    limits the answer to the versions a region has."""
    versions = []
    for row in CALENDAR:
        if offered is not None and row.version not in offered:
            continue
        phase = row.phase(now.date()).value
        status = {"standard": "STANDARD_SUPPORT", "extended": "EXTENDED_SUPPORT"}.get(
            phase, "UNSUPPORTED"
        )
        versions.append(
            {
                "clusterVersion": row.version,
                "clusterType": "eks",
                "releaseDate": _midnight(row.released),
                "endOfStandardSupportDate": _midnight(row.end_of_standard),
                "endOfExtendedSupportDate": _midnight(row.end_of_extended),
                "versionStatus": status,
            }
        )
    return {"clusterVersions": versions}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def calendar_row(version: str) -> Release:
    return next(row for row in CALENDAR if row.version == version)


@dataclass
class Account:
    """A fresh AWS account on the moto server, and the caller's role session in it."""

    endpoint: str
    account_id: str
    session: boto3.Session
    quota_vcpus: float = 64.0
    #: The quota the check is expected to ask for (Stubber fails on any other parameters).
    quota: tuple[str, str] = SPOT_G_VT
    #: The Kubernetes versions EKS offers in the region (None: every calendar row).
    offered: tuple[str, ...] | None = None
    now: datetime = TODAY

    @property
    def caller_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{CALLER_ROLE}"

    def client(self, service: str, region: str = DEV_REGION) -> Any:
        return self.session.client(service, region_name=region, endpoint_url=self.endpoint)

    def add_service_linked_roles(self, *, without: tuple[str, ...] = ()) -> None:
        iam = self.client("iam")
        for name, service in SERVICE_LINKED_ROLES.items():
            if name not in without:
                iam.create_role(
                    RoleName=name,
                    Path=f"/aws-service-role/{service}/",
                    AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}',
                )

    def clients(self, service: str, region: str) -> Any:
        """The factory preflight gets: moto clients, and Stubber-backed ones moto cannot serve."""
        client = self.client(service, region)
        if service == "eks":
            stub = Stubber(client)
            stub.add_response(
                "describe_cluster_versions",
                calendar_answer(self.now, self.offered),
                {"includeAll": True},
            )
            stub.activate()
        elif service == "service-quotas":
            stub = Stubber(client)
            code, name = self.quota
            quota = {"QuotaCode": code, "QuotaName": name, "ServiceCode": "ec2"}
            stub.add_response(
                "get_service_quota",
                {"Quota": {**quota, "Value": self.quota_vcpus}},
                {"ServiceCode": "ec2", "QuotaCode": code},
            )
            stub.activate()
        return client


@pytest.fixture
def account(moto_server: str) -> Account:
    """A new account whose caller is a session of role ``deployer`` (the usual CI identity)."""
    account_id = f"{secrets.randbelow(10**11) + 10**11:012d}"
    sts = boto3.client("sts", region_name=DEV_REGION, endpoint_url=moto_server)
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{CALLER_ROLE}", RoleSessionName="preflight"
    )["Credentials"]
    return Account(
        endpoint=moto_server,
        account_id=account_id,
        session=boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        ),
    )


def write_stacks(directory: Path, changes: Mapping[str, Any], **top: Any) -> Path:
    """stacks/ in ``directory``: the shipped files, with ``changes`` applied to dev's config."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in STACKS_DIR.glob("Pulumi.*.yaml"):
        (directory / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    dev = directory / "Pulumi.dev.yaml"
    document = yaml.safe_load(dev.read_text(encoding="utf-8"))
    for key, value in changes.items():
        full = key if ":" in key else f"torch-eks-inference:{key}"
        if value is None:
            document["config"].pop(full, None)
        else:
            document["config"][full] = value
    document.update(top)
    dev.write_text(yaml.safe_dump(document), encoding="utf-8")
    return directory


def ready_account(
    account: Account, tmp_path: Path, *, without_roles: tuple[str, ...] = ()
) -> tuple[Path, str]:
    """An account a first `up` of dev works in: roles, state bucket, KMS key, caller listed."""
    account.add_service_linked_roles(without=without_roles)
    s3 = account.client("s3")
    bucket = f"pulumi-state-{account.account_id}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": DEV_REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kms = account.client("kms")
    # Spelled out: AWS defaults and reports both, moto stores None when they are omitted.
    key = kms.create_key(
        Description="pulumi secrets", KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT"
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/pulumi-secrets", TargetKeyId=key)
    stacks = write_stacks(
        tmp_path / "stacks",
        {UP_ROLE_KEY: [account.caller_role_arn]},
        secretsprovider=f"awskms://alias/pulumi-secrets?region={DEV_REGION}",
    )
    return stacks, f"s3://{bucket}?region={DEV_REGION}"


def dev_version(stacks: Path = STACKS_DIR) -> str:
    raw, secret_keys = read_stack_config(stacks / "Pulumi.dev.yaml")
    config = load_stack_config("dev", raw, secret_keys=frozenset(secret_keys), now=TODAY)
    return config.kubernetes_version


def in_standard_support(version: str) -> datetime:
    """A day on which ``version`` is comfortably inside standard support."""
    return _midnight(calendar_row(version).released) + timedelta(days=60)


def run(account: Account, stacks: Path, backend: str, **kwargs: Any) -> list[Finding]:
    return preflight.run_checks(
        "dev",
        account.clients,
        backend=backend,
        env={},
        now=account.now,
        stacks_dir=stacks,
        **kwargs,
    )


def by_check(findings: list[Finding], prefix: str) -> list[Finding]:
    return [f for f in findings if f.check.startswith(prefix)]


def blockers(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status is Status.BLOCKER]


# --- the clean case ---------------------------------------------------------------------------


def test_ready_account_passes_and_the_cli_prints_one_table(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stacks, backend = ready_account(account, tmp_path)
    account.now = in_standard_support(dev_version(stacks))

    status = preflight.main(
        ["--stack", "dev", "--backend", backend],
        clients=account.clients,
        stacks_dir=stacks,
        now=account.now,
    )
    out = capsys.readouterr().out

    assert status == 0, out
    assert out.count("CHECK") == 1
    assert "STATUS" in out
    assert "FIX" in out
    assert "0 blocker(s), 0 warning(s)" in out
    findings = run(account, stacks, backend)
    assert [f for f in findings if f.status is not Status.OK] == [], render(findings)
    checks = {f.check for f in findings}
    assert {"stack config", "caller access", "eks version", "pulumi backend"} <= checks
    assert {"gpu g5.xlarge", "gpu g6.xlarge", "gpu g4dn.xlarge", "gpu quota (SPOT)"} <= checks
    assert {"secrets provider", "role EC2Spot"} <= checks  # dev runs SPOT GPUs


def render(findings: list[Finding]) -> str:
    return preflight.render_table(findings)


# --- blocker cases: each exits 1 and names its fix ---------------------------------------------


def test_gpu_type_offered_in_none_of_the_stacks_azs_is_a_blocker(
    account: Account, tmp_path: Path
) -> None:
    stacks, backend = ready_account(account, tmp_path)
    account.now = in_standard_support(dev_version(stacks))
    # An existing VPC whose private subnets both sit in us-west-2d, where (in moto's copy of the
    # EC2 offerings) g5.xlarge is not offered and g6.xlarge is.
    ec2 = account.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.40.0.0/18", "us-west-2d"), ("10.40.64.0/18", "us-west-2d"))
    ]
    stacks = write_stacks(
        tmp_path / "d-only",
        {
            UP_ROLE_KEY: [account.caller_role_arn],
            "existingVpcId": vpc,
            "existingPrivateSubnetIds": subnets,
            "gpuInstanceTypes": ["g5.xlarge", "g6.xlarge"],
        },
    )

    findings = run(account, stacks, backend)

    g5 = by_check(findings, "gpu g5.xlarge")[0]
    assert g5.status is Status.BLOCKER
    assert "us-west-2d" in g5.detail
    assert "gpuInstanceTypes" in g5.fix
    assert "describe-instance-type-offerings" in g5.fix
    assert by_check(findings, "gpu g6.xlarge")[0].status is Status.OK
    assert preflight.exit_status(findings) == 1


def test_gpu_quota_below_max_nodes_is_a_blocker_naming_the_increase(
    account: Account, tmp_path: Path
) -> None:
    stacks, backend = ready_account(account, tmp_path)
    account.now = in_standard_support(dev_version(stacks))
    # dev has one node group per family (g5, g6, g4dn), each up to gpuNodeMax 5 nodes of 4 vCPUs:
    # 60 vCPUs together. 40 would fit one family's group, not the three that can grow at once.
    account.quota_vcpus = 40.0

    findings = run(account, stacks, backend)

    quota = by_check(findings, "gpu quota")[0]
    assert quota.status is Status.BLOCKER
    assert "All G and VT Spot Instance Requests (L-3819A6DF) is 40 vCPUs" in quota.detail
    assert (
        "gpuNodeMax 5 per family group x (g5.xlarge 4 + g6.xlarge 4 + g4dn.xlarge 4 vCPUs) "
        "= 60 vCPUs" in quota.detail
    )
    assert (
        "request-service-quota-increase --service-code ec2 --quota-code L-3819A6DF "
        "--desired-value 60 --region us-west-2" in quota.fix
    )
    assert preflight.exit_status(findings) == 1


def test_on_demand_stacks_are_sized_against_the_on_demand_quota(
    account: Account, tmp_path: Path
) -> None:
    stacks, backend = ready_account(account, tmp_path)
    account.now = in_standard_support(dev_version(stacks))
    account.quota_vcpus = 8.0
    account.quota = ON_DEMAND_G_VT
    stacks = write_stacks(
        tmp_path / "od",
        {
            UP_ROLE_KEY: [account.caller_role_arn],
            "gpuCapacityType": "ON_DEMAND",
            "gpuInstanceTypes": ["g5.2xlarge"],
        },
    )

    findings = run(account, stacks, backend)

    quota = by_check(findings, "gpu quota")[0]
    assert quota.check == "gpu quota (ON_DEMAND)"
    assert quota.status is Status.BLOCKER  # 5 x g5.2xlarge (8 vCPUs) = 40 > 8
    assert "L-DB2E81BA" in quota.detail
    assert "--desired-value 40" in quota.fix
    # No Spot, so no Spot service-linked role is asked for.
    assert not by_check(findings, "role EC2Spot")


def test_version_past_extended_support_is_a_blocker(account: Account, tmp_path: Path) -> None:
    stacks, backend = ready_account(account, tmp_path)
    version = dev_version(stacks)
    # The day after extended support of dev's version ended: EKS answers UNSUPPORTED, and the
    # program's own calendar refuses the config, which preflight reports as its first row.
    account.now = _midnight(calendar_row(version).end_of_extended) + timedelta(days=1)

    findings = run(account, stacks, backend)

    config = by_check(findings, "stack config")[0]
    assert config.status is Status.BLOCKER
    assert f"extended support for Kubernetes {version} ended" in config.detail
    assert "Pulumi.dev.yaml" in config.fix
    assert preflight.exit_status(findings) == 1


def test_version_the_region_does_not_offer_is_a_blocker(account: Account, tmp_path: Path) -> None:
    # The program's calendar is global; a region may not offer a version yet (or any more).
    stacks, backend = ready_account(account, tmp_path)
    version = dev_version(stacks)
    account.now = in_standard_support(version)
    account.offered = tuple(r.version for r in CALENDAR if r.version != version)

    findings = run(account, stacks, backend)

    eks = by_check(findings, "eks version")[0]
    assert eks.status is Status.BLOCKER
    assert f"{version} is not offered in {DEV_REGION}" in eks.detail
    assert eks.fix.startswith("pulumi config set kubernetesVersion ")
    assert preflight.exit_status(findings) == 1


@pytest.mark.parametrize(
    ("version", "status", "target"),
    [
        ("1.31", Status.BLOCKER, "1.35"),  # extended support ended 2026-11-26
        ("1.33", Status.BLOCKER, "1.35"),  # extended support, but upgradeSupportType STANDARD
        ("1.34", Status.WARN, "1.35"),  # standard support ends 2026-12-02, tomorrow
        ("1.35", Status.OK, None),
    ],
)
def test_each_version_on_2026_12_01(
    account: Account, version: str, status: Status, target: str | None
) -> None:
    raw, keys = read_stack_config(STACKS_DIR / "Pulumi.dev.yaml")
    config = load_stack_config("dev", raw, secret_keys=frozenset(keys), now=TODAY)
    # dev keeps upgradeSupportType STANDARD
    config = config.model_copy(update={"kubernetes_version": version})

    finding = check_kubernetes_version(config, account.clients("eks", DEV_REGION), account.now)

    assert finding.status is status, finding
    if target:
        assert finding.fix.startswith(f"pulumi config set kubernetesVersion {target} -s dev")
    if version == "1.33":
        assert "does not allow upgradePolicy.supportType STANDARD" in finding.detail
        extended = config.model_copy(update={"upgrade_support_type": SupportType.EXTENDED})
        cost = check_kubernetes_version(extended, account.clients("eks", DEV_REGION), account.now)
        assert cost.status is Status.WARN
        assert "billed extra per cluster hour" in cost.detail


def test_caller_without_an_access_entry_is_a_blocker(account: Account, tmp_path: Path) -> None:
    stacks, backend = ready_account(account, tmp_path)
    account.now = in_standard_support(dev_version(stacks))
    other = f"arn:aws:iam::{account.account_id}:role/platform-admin"
    stacks = write_stacks(tmp_path / "other", {UP_ROLE_KEY: [other]})

    findings = run(account, stacks, backend)

    access = by_check(findings, "caller access")[0]
    assert access.status is Status.BLOCKER
    assert f"assumed-role/{CALLER_ROLE}/preflight" in access.detail
    assert (
        access.fix
        == f"pulumi config set --path '{UP_ROLE_KEY}[1]' {account.caller_role_arn} -s dev"
    )
    assert preflight.exit_status(findings) == 1


def test_missing_service_linked_role_is_named_with_its_create_command(
    account: Account, tmp_path: Path
) -> None:
    missing = ("AWSServiceRoleForEC2Spot", "AWSServiceRoleForAutoScaling")
    stacks, backend = ready_account(account, tmp_path, without_roles=missing)
    account.now = in_standard_support(dev_version(stacks))

    findings = run(account, stacks, backend)

    # dev runs SPOT GPUs: without the Spot role their launches fail (a blocker).
    spot = by_check(findings, "role EC2Spot")[0]
    assert spot.status is Status.BLOCKER
    assert "ServiceLinkedRoleCreationNotPermitted" in spot.detail
    assert spot.fix == "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com"
    # The Auto Scaling role comes with the first node group; the key policy no longer names it
    # as a principal (infra/components/cluster.py), so its absence is only worth knowing.
    autoscaling = by_check(findings, "role AutoScaling")[0]
    assert autoscaling.status is Status.WARN
    assert autoscaling.fix.endswith("--aws-service-name autoscaling.amazonaws.com")
    assert [f.status for f in by_check(findings, "role AmazonEKS")] == [Status.OK, Status.OK]
    assert preflight.exit_status(findings) == 1


def test_missing_backend_bucket_is_a_blocker_naming_the_create_command(
    account: Account, tmp_path: Path
) -> None:
    stacks, _backend = ready_account(account, tmp_path)
    account.now = in_standard_support(dev_version(stacks))
    missing = f"pulumi-state-missing-{account.account_id}"

    findings = run(account, stacks, f"s3://{missing}?region={DEV_REGION}")

    backend = by_check(findings, "pulumi backend")[0]
    assert backend.status is Status.BLOCKER
    assert f"bucket {missing}" in backend.detail
    assert "does not exist" in backend.detail
    assert f"aws s3api create-bucket --bucket {missing} --region {DEV_REGION}" in backend.fix
    assert "put-bucket-versioning" in backend.fix
    assert preflight.exit_status(findings) == 1


def test_secrets_key_scheduled_for_deletion_is_a_blocker(account: Account, tmp_path: Path) -> None:
    stacks, backend = ready_account(account, tmp_path)
    account.now = in_standard_support(dev_version(stacks))
    kms = account.client("kms")
    key = kms.describe_key(KeyId="alias/pulumi-secrets")["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)

    findings = run(account, stacks, backend)

    provider = by_check(findings, "secrets provider")[0]
    assert provider.status is Status.BLOCKER
    assert "PendingDeletion" in provider.detail
    assert f"aws kms cancel-key-deletion --key-id {key}" in provider.fix


def test_invalid_stack_config_is_a_blocker(account: Account, tmp_path: Path) -> None:
    stacks = write_stacks(tmp_path / "bad", {"gpuNodeMax": "two"})

    findings = run(account, stacks, "")

    config = by_check(findings, "stack config")[0]
    assert config.status is Status.BLOCKER
    assert "torch-eks-inference:gpuNodeMax = 'two'" in config.detail
    assert preflight.exit_status(findings) == 1


# --- warnings and the other backends ----------------------------------------------------------


def test_pulumi_cloud_and_unversioned_bucket_are_warnings_not_blockers(
    account: Account, tmp_path: Path
) -> None:
    stacks, _ = ready_account(account, tmp_path)
    account.now = in_standard_support(dev_version(stacks))

    cloud = by_check(run(account, stacks, "https://api.pulumi.com"), "pulumi backend")[0]
    assert cloud.status is Status.WARN
    assert "not checked" in cloud.detail
    assert "pulumi whoami" in cloud.fix

    bucket = f"pulumi-state-plain-{account.account_id}"
    account.client("s3").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": DEV_REGION}
    )
    findings = run(account, stacks, f"s3://{bucket}?region={DEV_REGION}")
    plain = by_check(findings, "pulumi backend")[0]
    assert plain.status is Status.WARN
    assert "versioning is off" in plain.detail
    assert preflight.exit_status(findings) == 0


def test_pr_stack_checks_the_caller_against_the_cluster_stacks_roles(
    account: Account, tmp_path: Path
) -> None:
    stacks, backend = ready_account(account, tmp_path)

    findings = preflight.run_checks(
        "pr-123", account.clients, backend=backend, env={}, now=account.now, stacks_dir=stacks
    )

    assert by_check(findings, "cluster")[0].detail.startswith(
        "borrowed from organization/torch-eks-inference/dev"
    )
    access = by_check(findings, "caller access")[0]
    assert access.status is Status.OK
    assert "Pulumi.dev.yaml" in access.detail
    assert not by_check(findings, "gpu")
    assert not by_check(findings, "eks version")


def test_pr_stack_caller_missing_is_told_to_join_the_ephemeral_roles(
    account: Account, tmp_path: Path
) -> None:
    stacks = write_stacks(tmp_path / "stacks", {})  # dev lists example roles, not the caller

    findings = preflight.run_checks(
        "pr-7", account.clients, backend="", env={}, now=account.now, stacks_dir=stacks
    )

    access = by_check(findings, "caller access")[0]
    assert access.status is Status.BLOCKER
    # Least privilege: a pr stack's deployer needs the ephemeral scope, not cluster admin.
    assert access.fix == (
        f"pulumi config set --path 'ephemeralRoleArns[1]' {account.caller_role_arn} -s dev"
    )


def test_the_command_against_a_moto_server_as_a_user_runs_it(
    account: Account, tmp_path: Path
) -> None:
    # `python -m tools.preflight` in its own process, with only AWS_ENDPOINT_URL and the
    # caller's credentials in its environment: plain boto3 clients, no Stubber. The two calls
    # moto cannot answer become warnings ("not checked"), never a false ok.
    stacks, backend = ready_account(account, tmp_path)
    credentials = account.session.get_credentials().get_frozen_credentials()
    env = {
        **os.environ,
        **aws_env(account.endpoint),
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_SESSION_TOKEN": credentials.token,
    }
    command = [sys.executable, "-m", "tools.preflight", "--stack", "dev"]
    command += ["--stacks-dir", str(stacks), "--backend", backend]

    ready = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert ready.returncode == 0, ready.stdout + ready.stderr
    rows = {
        line.split()[0] + " " + line.split()[1]: line
        for line in ready.stdout.splitlines()
        if line[:1].isalpha()
    }
    assert "0 blocker(s)" in ready.stdout
    assert " warn " in rows["eks version"]  # moto has no DescribeClusterVersions
    assert " ok " in rows["caller access"]
    assert " ok " in rows["pulumi backend"]

    command[command.index(backend)] = f"s3://missing-{account.account_id}?region={DEV_REGION}"
    blocked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert blocked.returncode == 1
    assert "aws s3api create-bucket --bucket missing-" in blocked.stdout


def test_missing_stack_file_is_a_usage_error(account: Account, tmp_path: Path) -> None:
    status = preflight.main(["--stack", "qa"], clients=account.clients, stacks_dir=tmp_path)
    assert status == 2


@pytest.mark.parametrize(
    ("arn", "role"),
    [
        (
            "arn:aws:sts::111122223333:assumed-role/ci-deploy/gh-123",
            "arn:aws:iam::111122223333:role/ci-deploy",
        ),
        (
            "arn:aws:iam::111122223333:role/teams/platform/ci-deploy",
            "arn:aws:iam::111122223333:role/ci-deploy",
        ),
        (
            "arn:aws-us-gov:sts::111122223333:assumed-role/x/s",
            "arn:aws-us-gov:iam::111122223333:role/x",
        ),
        ("arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/alice"),
    ],
)
def test_principals_resolve_to_the_role_an_access_entry_names(arn: str, role: str) -> None:
    # An assumed-role session ARN names the role (no path); a role name is unique in its account
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html), so a role
    # ARN with a path and the session of that role are the same principal.
    principal = principal_of(arn)
    assert principal is not None
    assert principal.arn == role
    assert principal_of("arn:aws:iam::111122223333:root") is None


def test_a_quota_without_applied_value_falls_back_to_the_aws_default(account: Account) -> None:
    # GetServiceQuota answers NoSuchResourceException when a quota has no applied value
    # (https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html);
    # the AWS default (0 vCPUs for G and VT Spot in a new account, using-spot-limits.html) applies.
    raw, keys = read_stack_config(STACKS_DIR / "Pulumi.dev.yaml")
    config = load_stack_config("dev", raw, secret_keys=frozenset(keys), now=TODAY)
    quotas = account.client("service-quotas")
    stub = Stubber(quotas)
    request = {"ServiceCode": "ec2", "QuotaCode": SPOT_G_VT[0]}
    stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=request)
    default = {"QuotaCode": SPOT_G_VT[0], "QuotaName": SPOT_G_VT[1], "Value": 0.0}
    stub.add_response("get_aws_default_service_quota", {"Quota": default}, request)

    with stub:
        [finding] = check_gpu_quota(config, account.client("ec2"), quotas)

    assert finding.status is Status.BLOCKER
    assert "is 0 vCPUs" in finding.detail


def test_no_credentials_is_a_blocker_that_says_to_sign_in(account: Account, tmp_path: Path) -> None:
    stacks, backend = ready_account(account, tmp_path)

    def signed_out(service: str, region: str) -> Any:
        client = account.client(service, region)
        if service == "sts":

            def refuse(**_: Any) -> Any:
                raise NoCredentialsError

            client.get_caller_identity = refuse
        return client

    findings = preflight.run_checks(
        "dev", signed_out, backend=backend, env={}, now=account.now, stacks_dir=stacks
    )

    access = by_check(findings, "caller access")[0]
    assert access.status is Status.BLOCKER
    assert "NoCredentialsError" in access.detail
    assert access.fix.startswith("sign in as the identity of `pulumi up`")
