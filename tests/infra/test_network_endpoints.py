"""VPC endpoints: a scale-from-zero GPU node pulls its CUDA image through the VPC, not NAT.

Sources:
- ECR over PrivateLink needs ecr.api, ecr.dkr and an S3 gateway endpoint for the layers:
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html
- What nodes need without internet (sts, logs, ...):
  https://docs.aws.amazon.com/eks/latest/userguide/private-clusters.html
- Service names come from EC2, not string building; China's prefixes differ per service
  (aws/aws-cdk#11140), which is why the program looks them up with getVpcEndpointService:
  https://www.pulumi.com/registry/packages/aws/api-docs/ec2/getvpcendpointservice/
"""

from __future__ import annotations

import json

import pytest
from pulumi.runtime import MockCallArgs

from infra.aws.vpc_endpoints import INTERFACE_ENDPOINT_SERVICES
from tests.stack_inventory import Inventory
from tools.mocks import ProgramMocks
from tools.plan import config_file, read_stack_config, run_program

ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INTERFACE_SERVICES = {"ecr.api", "ecr.dkr", "sts", "secretsmanager", "logs"}


def _private_subnet_ids(inv: Inventory) -> set[str]:
    return {
        r.id
        for r in inv.of_type("aws:ec2/subnet:Subnet")
        if "kubernetes.io/role/internal-elb" in r.inputs["tags"]
    }


def test_images_credentials_secrets_and_logs_come_through_interface_endpoints(
    long_lived: Inventory,
) -> None:
    region = "us-west-2"
    interface = [
        r.inputs
        for r in long_lived.of_type(ENDPOINT)
        if r.inputs.get("vpcEndpointType") == "Interface"
    ]
    services = {e["serviceName"].removeprefix(f"com.amazonaws.{region}.") for e in interface}
    assert services == INTERFACE_SERVICES == {s for s, _ in INTERFACE_ENDPOINT_SERVICES}
    private = _private_subnet_ids(long_lived)
    for endpoint in interface:
        # Private DNS: the SDKs and the kubelet keep using the regional hostnames.
        assert endpoint["privateDnsEnabled"] is True
        # One ENI per AZ, in the subnets where the nodes run.
        assert set(endpoint["subnetIds"]) == private


def test_endpoint_security_group_admits_only_https_from_the_vpc(long_lived: Inventory) -> None:
    vpc_cidr = long_lived.one("aws:ec2/vpc:Vpc")["cidrBlock"]
    (group,) = long_lived.of_type(SECURITY_GROUP)
    (rule,) = group.inputs["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
    assert rule["cidrBlocks"] == [vpc_cidr]
    assert not rule.get("ipv6CidrBlocks")
    assert group.inputs["egress"] == []
    interface = [
        r for r in long_lived.of_type(ENDPOINT) if r.inputs.get("vpcEndpointType") == "Interface"
    ]
    assert all(e.inputs["securityGroupIds"] == [group.id] for e in interface)


def test_s3_gateway_endpoint_serves_every_private_route_table_and_no_public_one(
    long_lived: Inventory,
) -> None:
    (gateway,) = [
        r.inputs
        for r in long_lived.of_type(ENDPOINT)
        if r.inputs.get("vpcEndpointType") == "Gateway"
    ]
    assert gateway["serviceName"] == "com.amazonaws.us-west-2.s3"
    tables = long_lived.of_type("aws:ec2/routeTable:RouteTable")
    private = {r.id for r in tables if "private" in r.name}
    public = {r.id for r in tables if "public" in r.name}
    assert set(gateway["routeTableIds"]) == private
    assert not set(gateway["routeTableIds"]) & public


def test_existing_vpc_gets_no_endpoints_its_owner_provides_them() -> None:
    # A second interface endpoint with private DNS for a service the VPC already has is refused
    # by EC2 (the private hosted zone would conflict), so an adopted VPC is left as it is and the
    # README lists what its owner must provide.
    values, _ = read_stack_config(config_file("dev"))
    values["torch-eks-inference:existingVpcId"] = "vpc-0123456789abcdef0"
    values["torch-eks-inference:existingPrivateSubnetIds"] = json.dumps(
        ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    )
    run = run_program("dev", config=values)
    assert not [r for r in run.registrations if r.type in (ENDPOINT, SECURITY_GROUP)]


@pytest.mark.parametrize(("service", "kind"), [("sts", "Gateway"), ("ecr", "Interface")])
def test_the_mocks_find_no_endpoint_service_ec2_does_not_offer(service: str, kind: str) -> None:
    # STS has no gateway endpoint and "ecr" alone is not a service name (it is ecr.api/ecr.dkr):
    # EC2's DescribeVpcEndpointServices returns nothing and the data source fails.
    call = MockCallArgs(
        "aws:ec2/getVpcEndpointService:getVpcEndpointService",
        {"service": service, "serviceType": kind},
        "",
    )
    with pytest.raises(ValueError, match="no matching VPC endpoint service"):
        ProgramMocks().call(call)
