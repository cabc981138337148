"""AWS provider functions (invokes): what STS, EC2, ECR, EKS and SSM answer the program.

``CALLS`` maps a function token to ``function(args, ctx) -> result``. A function the program
starts calling without an answer here fails the run (the engine raises), so a new data source
cannot silently read nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final

from tools.mocks.context import CallFn, Context, alnum, hex_id

#: Endpoint types EC2 offers per AWS service, for the services the program looks up. S3 has both
#: (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html); the others are
#: interface-only (https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html).
ENDPOINT_SERVICE_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    "s3": ("Gateway", "Interface"),
    "dynamodb": ("Gateway", "Interface"),
    "ecr.api": ("Interface",),
    "ecr.dkr": ("Interface",),
    "sts": ("Interface",),
    "secretsmanager": ("Interface",),
    "logs": ("Interface",),
}


def _caller_identity(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    session = f"assumed-role/{ctx.caller_role}/pulumi-session"
    return {
        "accountId": ctx.account_id,
        "arn": f"arn:{ctx.partition}:sts::{ctx.account_id}:{session}",
        "userId": f"AROA{hex_id('caller', length=17).upper()}:pulumi-session",
        "id": ctx.account_id,
    }


def _session_context(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The role behind an assumed-role session ARN (what getSessionContext resolves)."""
    arn = str(args.get("arn", ""))
    role = arn.split("/")[1] if ":assumed-role/" in arn else ctx.caller_role
    return {
        "arn": arn,
        "issuerArn": ctx.global_arn("iam", f"role/{role}"),
        "issuerId": f"AROA{hex_id(role).upper()}",
        "issuerName": role,
        "sessionName": "pulumi-session",
        "id": arn,
    }


def _region(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    region = ctx.region
    endpoint = ctx.endpoint("ec2")
    return {
        "name": region,
        "region": region,
        "endpoint": endpoint,
        "description": region,
        "id": region,
    }


def _partition(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    china = ctx.partition == "aws-cn"
    return {
        "partition": ctx.partition,
        "dnsSuffix": ctx.dns_suffix,
        "reverseDnsPrefix": "cn.com.amazonaws" if china else "com.amazonaws",
        "id": ctx.partition,
    }


#: How AZ IDs abbreviate the words of a region name (``ap-southeast-2`` -> ``apse2-az1``).
_ZONE_WORDS: Final = {
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "central": "c",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
    "gov": "g",
}


def zone_code(region: str) -> str:
    """The region's prefix of its AZ IDs: ``use1``, ``usw2``, ``euc1``, ``apse2``, ``cnnw1``.

    https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-availability-zones.html
    """
    geography, *words, number = region.split("-")
    return geography + "".join(_ZONE_WORDS.get(w, w[:1]) for w in words) + number


def _availability_zones(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {
        "names": [f"{ctx.region}{s}" for s in "abcd"],
        "zoneIds": [f"{zone_code(ctx.region)}-az{i}" for i in range(1, 5)],
        "groupNames": [ctx.region] * 4,
        "id": ctx.region,
    }


def _ecr_token(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """An ECR login: user ``AWS`` and a password, base64 ``AWS:<password>`` as the token."""
    registry = args.get("registryId") or ctx.account_id
    password = alnum("ecr-token", registry, length=64)
    return {
        "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
        "expiresAt": "2030-01-01T00:00:00Z",
        "password": password,
        "proxyEndpoint": f"https://{registry}.{ctx.endpoint('dkr.ecr')}",
        "userName": "AWS",
        "id": ctx.region,
    }


def _addon_version(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {
        "addonName": args["addonName"],
        "kubernetesVersion": args["kubernetesVersion"],
        "version": f"v1.{len(args['addonName'])}.0-eksbuild.1",
        "id": args["addonName"],
    }


def _vpc(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    vpc_id = args.get("id") or f"vpc-{hex_id('vpc')}"
    return {
        "id": vpc_id,
        "arn": ctx.arn("ec2", f"vpc/{vpc_id}"),
        "cidrBlock": "10.0.0.0/16",
        "state": "available",
    }


def _endpoint_service(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """What ``DescribeVpcEndpointServices`` finds for an AWS service of one endpoint type.

    Like EC2, an unknown service or a type it is not offered as (STS has no gateway) finds
    nothing, which the data source reports as an error. The name is the commercial and
    GovCloud form; the program never builds it itself, so a region whose names differ
    (China) needs no second copy of EC2's catalogue here.
    """
    service, service_type = str(args.get("service")), str(args.get("serviceType"))
    if service_type not in ENDPOINT_SERVICE_TYPES.get(service, ()):
        raise ValueError(
            f"no matching VPC endpoint service for {service!r} of type {service_type!r} "
            f"in {ctx.region}"
        )
    name = f"com.amazonaws.{ctx.region}.{service}"
    return {
        "service": service,
        "serviceName": name,
        "serviceType": service_type,
        "serviceId": f"vpce-svc-{hex_id(name)}",
        "privateDnsName": f"{service}.{ctx.region}.amazonaws.com",
        "acceptanceRequired": False,
        "id": name,
    }


def _ssm_parameter(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    name = args["name"]
    return {
        "name": name,
        "value": f"ami-{hex_id(name)}",
        "type": "String",
        "arn": ctx.arn("ssm", f"parameter{name}"),
        "id": name,
    }


CALLS: Final[Mapping[str, CallFn]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:iam/getSessionContext:getSessionContext": _session_context,
    "aws:index/getRegion:getRegion": _region,
    "aws:index/getPartition:getPartition": _partition,
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": _ecr_token,
    "aws:eks/getAddonVersion:getAddonVersion": _addon_version,
    "aws:ec2/getVpc:getVpc": _vpc,
    "aws:ec2/getVpcEndpointService:getVpcEndpointService": _endpoint_service,
    "aws:ssm/getParameter:getParameter": _ssm_parameter,
}
