"""The mock engine as a model of the platforms, and the runner's hygiene between runs.

Sources for the shapes checked here:
- Endpoints of the China regions end in ``amazonaws.com.cn`` (e.g.
  ``dynamodb.cn-north-1.amazonaws.com.cn``):
  https://docs.amazonaws.cn/en_us/general/latest/gr/rande.html; an ECR registry there is
  ``<account>.dkr.ecr.cn-northwest-1.amazonaws.com.cn`` (aws/aws-cdk#28460).
- ARNs: ``arn:<partition>:<service>:<region>:<account>:<resource>``, IAM without a region:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html; an alarm's ends in
  ``:alarm:<name>`` (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_TagResource.html);
  dashboards are global (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-cloudwatch-dashboard.html).
- Availability Zone IDs (``use1-az1``, ``euc1-az1``, ``apse2-az1``), listed per region:
  https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-availability-zones.html
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from tools.mocks import ACCOUNT_ID, ProgramMocks, Registration, runner

REGIONS = {"us-west-2": "aws", "cn-north-1": "aws-cn", "us-gov-west-1": "aws-us-gov"}


def _declare_services() -> None:
    """One resource of each service whose answers carry endpoints or URLs."""
    aws.ecr.Repository("repo", name="team/app")
    aws.eks.Cluster(
        "eks", name="c1", role_arn="arn:aws:iam::1:role/r", vpc_config={"subnet_ids": []}
    )
    aws.amp.Workspace("amp")
    aws.sqs.Queue("queue", name="interruptions")
    aws.iam.Role("role", assume_role_policy="{}")
    aws.cloudwatch.MetricAlarm(
        "alarm", name="svc-5xx", comparison_operator="GreaterThanThreshold", evaluation_periods=1
    )
    aws.cloudwatch.Dashboard("board", dashboard_name="svc", dashboard_body="{}")
    k8s.core.v1.Service(
        "svc",
        metadata={"name": "svc", "namespace": "ns"},
        spec={"type": "LoadBalancer", "ports": [{"port": 80}]},
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for child in value.values():
            yield from _strings(child)
    elif isinstance(value, list | tuple):
        for child in value:
            yield from _strings(child)
    elif isinstance(value, str):
        yield value


@pytest.fixture(scope="module", params=sorted(REGIONS))
def services(request: pytest.FixtureRequest) -> tuple[str, list[Registration]]:
    region = str(request.param)
    return region, runner.run_component(_declare_services, region=region)


def test_every_endpoint_is_in_the_regions_dns_domain(
    services: tuple[str, list[Registration]],
) -> None:
    region, registrations = services
    suffix = "amazonaws.com.cn" if REGIONS[region] == "aws-cn" else "amazonaws.com"
    hosts = [
        s.split("://", 1)[-1].split("/", 1)[0]
        for r in registrations
        for s in _strings(dict(r.outputs))
        if ".amazonaws.com" in s
    ]
    assert len(hosts) >= 6  # ECR, EKS endpoint and issuer, AMP, SQS, the NLB
    for host in hosts:
        assert region in host, host
        assert host.endswith(suffix), host


def test_every_arn_names_the_partition_region_and_account(
    services: tuple[str, list[Registration]],
) -> None:
    region, registrations = services
    arns = [s for r in registrations for s in _strings(dict(r.outputs)) if s.startswith("arn:")]
    assert len(arns) >= 7
    assert any(arn.endswith(":alarm:svc-5xx") for arn in arns)
    for arn in arns:
        _, partition, service, arn_region, account, _resource = arn.split(":", 5)
        if "role/r" in arn:  # the input this test passed, not an answer
            continue
        assert partition == REGIONS[region], arn
        assert account == ACCOUNT_ID, arn
        # IAM and CloudWatch dashboards are global: no region in their ARNs.
        global_ = service == "iam" or _resource.startswith("dashboard/")
        assert arn_region == ("" if global_ else region), arn


@pytest.mark.parametrize(
    ("region", "zone_id"),
    [("us-east-1", "use1-az1"), ("eu-central-1", "euc1-az1"), ("ap-southeast-2", "apse2-az1")],
)
def test_zone_ids_are_the_regions(region: str, zone_id: str) -> None:
    zones = ProgramMocks(region=region).answer(
        "aws:index/getAvailabilityZones:getAvailabilityZones", {}
    )
    assert zones["zoneIds"][0] == zone_id
    assert zones["names"][0] == f"{region}a"


def test_a_failed_run_leaves_no_config_behind() -> None:
    """A program that raises must not leak its config into the next run in this process."""
    config = {"torch-eks-inference:secretThing": "s3cr3t-value"}
    seen: dict[str, Any] = {}

    def failing() -> None:
        seen["env"] = pulumi.runtime.get_config_env()
        seen["secret_keys"] = pulumi.runtime.get_config_secret_keys_env()
        raise RuntimeError("the program failed")

    before = {k: os.environ.get(k) for k in ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS")}
    with pytest.raises(RuntimeError, match="the program failed"):
        runner.run(
            failing,
            runner.RecordingMonitor(ProgramMocks()),
            "test",
            config,
            ["torch-eks-inference:secretThing"],
        )
    # The program saw its config the way the language host passes it ...
    assert seen == {"env": config, "secret_keys": ["torch-eks-inference:secretThing"]}
    # ... and nothing of it survives the run.
    assert {k: os.environ.get(k) for k in before} == before
    assert pulumi.Config("torch-eks-inference").get("secretThing") is None

    def reads() -> None:
        seen["after"] = pulumi.Config("torch-eks-inference").get("secretThing")

    runner.run(reads, runner.RecordingMonitor(ProgramMocks()), "test")
    assert seen["after"] is None


def test_generated_passwords_are_recorded_as_secrets() -> None:
    import pulumi_random as random

    [password] = runner.run_component(lambda: random.RandomPassword("pw", length=40))
    assert runner.is_secret(password.outputs["result"])
    assert len(runner.reveal(password.outputs["result"])) == 40
    assert runner.is_secret(password.outputs["bcryptHash"])
