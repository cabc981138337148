"""The AWS Load Balancer Controller serves the internal NLB, with the IAM its docs publish.

Sources:
- Install with Helm and EKS Pod Identity, controller v2.14.1 and its iam_policy.json:
  https://docs.aws.amazon.com/eks/latest/userguide/lbc-helm.html
- NLB annotations (``type: external`` hands the Service over, ``nlb-target-type: ip``):
  https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/service/nlb/
- Subnet discovery by ``kubernetes.io/role/internal-elb`` / ``kubernetes.io/role/elb``:
  https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/deploy/subnet_discovery/
- The controller keeps a finalizer on the Service until the NLB is gone, so the Service must be
  deleted while the controller still runs:
  https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/service/nlb/
- IAM evaluation (Action/Resource wildcards, Null and StringEquals conditions):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
"""

from __future__ import annotations

import fnmatch
import graphlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from infra.components import load_balancer_controller as lbc
from tests.stack_inventory import Inventory
from tools.mocks import ACCOUNT_ID

RELEASE = "kubernetes:helm.sh/v3:Release"
POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
CLUSTER_TAG = "elbv2.k8s.aws/cluster"


def _release(inv: Inventory) -> Any:
    (release,) = [r for r in inv.of_type(RELEASE) if r.inputs["chart"] == lbc.CHART[1]]
    return release


def _allowed(policy: Mapping[str, Any], action: str, resource: str, ctx: Mapping[str, str]) -> bool:
    """Whether an identity policy allows one request (Allow statements only, as this one has)."""

    def matches(patterns: str | list[str], value: str) -> bool:
        items = [patterns] if isinstance(patterns, str) else patterns
        return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in items)

    def condition_holds(condition: Mapping[str, Mapping[str, Any]]) -> bool:
        for operator, tests in condition.items():
            for key, expected in tests.items():
                if operator == "Null":
                    if (key not in ctx) != (expected == "true"):
                        return False
                elif operator == "StringEquals":
                    allowed = [expected] if isinstance(expected, str) else expected
                    if ctx.get(key) not in allowed:
                        return False
                else:
                    raise AssertionError(f"condition operator {operator} not modelled")
        return True

    return any(
        s["Effect"] == "Allow"
        and matches(s["Action"], action)
        and matches(s["Resource"], resource)
        and condition_holds(s.get("Condition", {}))
        for s in policy["Statement"]
    )


def _nlb_requests(partition: str) -> list[tuple[str, str, dict[str, str]]]:
    """What the controller calls to create an internal NLB with IP targets for one Service."""
    elb = f"arn:{partition}:elasticloadbalancing:us-west-2:{ACCOUNT_ID}"
    sg = f"arn:{partition}:ec2:us-west-2:{ACCOUNT_ID}:security-group/sg-0123"
    lb, tg = f"{elb}:loadbalancer/net/k8s-svc/0123", f"{elb}:targetgroup/k8s-svc/0123"
    owned = {f"aws:ResourceTag/{CLUSTER_TAG}": "c"}
    tagging = {f"aws:RequestTag/{CLUSTER_TAG}": "c"}
    return [
        ("ec2:DescribeSubnets", "*", {}),
        ("ec2:DescribeRouteTables", "*", {}),
        ("elasticloadbalancing:DescribeLoadBalancers", "*", {}),
        ("ec2:CreateSecurityGroup", "*", {}),
        ("ec2:CreateTags", sg, {**tagging, "ec2:CreateAction": "CreateSecurityGroup"}),
        ("ec2:AuthorizeSecurityGroupIngress", sg, owned),
        ("elasticloadbalancing:CreateLoadBalancer", lb, tagging),
        ("elasticloadbalancing:CreateTargetGroup", tg, tagging),
        (
            "elasticloadbalancing:AddTags",
            lb,
            {**tagging, "elasticloadbalancing:CreateAction": "CreateLoadBalancer"},
        ),
        ("elasticloadbalancing:CreateListener", lb, {}),
        ("elasticloadbalancing:ModifyLoadBalancerAttributes", lb, owned),
        ("elasticloadbalancing:RegisterTargets", tg, {}),
        ("elasticloadbalancing:DeregisterTargets", tg, {}),
        ("elasticloadbalancing:DeleteLoadBalancer", lb, owned),
    ]


@pytest.mark.parametrize("partition", ["aws", "aws-us-gov", "aws-cn"])
def test_the_published_policy_lets_the_controller_build_an_internal_nlb(partition: str) -> None:
    policy = json.loads(lbc.iam_policy(partition))
    for action, resource, ctx in _nlb_requests(partition):
        assert _allowed(policy, action, resource, ctx), (action, resource)


def test_it_may_not_delete_load_balancers_it_did_not_create() -> None:
    policy = json.loads(lbc.iam_policy("aws"))
    lb = f"arn:aws:elasticloadbalancing:us-west-2:{ACCOUNT_ID}:loadbalancer/net/other/1"
    assert not _allowed(policy, "elasticloadbalancing:DeleteLoadBalancer", lb, {})


def test_a_commercial_policy_would_not_work_in_govcloud() -> None:
    # Why the partition matters: a resource-scoped statement never matches another partition.
    policy = json.loads(lbc.iam_policy("aws"))
    tg = f"arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:{ACCOUNT_ID}:targetgroup/k8s/1"
    assert not _allowed(policy, "elasticloadbalancing:RegisterTargets", tg, {})
    with pytest.raises(ValueError, match="partition"):
        lbc.iam_policy("aws-iso")


def test_the_controller_gets_that_policy_through_pod_identity(long_lived: Inventory) -> None:
    (association,) = [
        r.inputs
        for r in long_lived.of_type(POD_IDENTITY)
        if r.inputs["serviceAccount"] == lbc.SERVICE_ACCOUNT
    ]
    assert association["namespace"] == "kube-system"
    (role,) = [
        r
        for r in long_lived.of_type("aws:iam/role:Role")
        if r.outputs.get("arn") == association["roleArn"]
    ]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    (inline,) = [
        r.inputs
        for r in long_lived.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.inputs["role"] == role.id
    ]
    assert json.loads(inline["policy"]) == json.loads(lbc.iam_policy("aws"))


def test_release_is_pinned_and_told_its_cluster_region_and_vpc(long_lived: Inventory) -> None:
    release = _release(long_lived)
    repo, _chart, version = lbc.CHART
    assert (release.inputs["repositoryOpts"]["repo"], release.inputs["version"]) == (repo, version)
    assert release.inputs["namespace"] == "kube-system"
    values = release.inputs["values"]
    (vpc,) = long_lived.of_type("aws:ec2/vpc:Vpc")
    assert values["clusterName"] == f"torch-eks-inference-{long_lived.run.stack}"
    # Without these it would ask IMDS, which the nodes' hop limit of 1 keeps from pods.
    assert (values["region"], values["vpcId"]) == ("us-west-2", vpc.id)
    assert values["serviceAccount"] == {"create": True, "name": lbc.SERVICE_ACCOUNT}
    association = next(
        r.urn
        for r in long_lived.of_type(POD_IDENTITY)
        if r.inputs["serviceAccount"] == lbc.SERVICE_ACCOUNT
    )
    assert association in release.dependencies


def test_subnets_carry_the_tags_the_controller_discovers(long_lived: Inventory) -> None:
    subnets = [r.inputs["tags"] for r in long_lived.of_type("aws:ec2/subnet:Subnet")]
    private = [t for t in subnets if t.get("kubernetes.io/role/internal-elb") == "1"]
    public = [t for t in subnets if t.get("kubernetes.io/role/elb") == "1"]
    assert private
    assert public
    assert len(private) + len(public) == len(subnets)
    assert not [t for t in private if "kubernetes.io/role/elb" in t]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_nlb_service_is_deleted_while_the_controller_still_runs(
    stack: str, stack_run: Callable[[str], Inventory]
) -> None:
    inv = stack_run(stack)
    (service,) = inv.of_type("kubernetes:core/v1:Service")
    assert service.inputs["spec"]["type"] == "LoadBalancer"
    known = {r.urn for r in inv.registrations}
    graph = {
        r.urn: {d for d in (*r.dependencies, r.parent_urn or "") if d in known}
        for r in inv.registrations
    }
    destroy = list(reversed(list(graphlib.TopologicalSorter(graph).static_order())))
    assert destroy.index(service.urn) < destroy.index(_release(inv).urn)


def test_the_policy_fits_in_a_roles_inline_policy_quota(long_lived: Inventory) -> None:
    # IAM refuses a role whose inline policies exceed 10,240 characters in total, not counting
    # whitespace: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
    (association,) = [
        r.inputs
        for r in long_lived.of_type(POD_IDENTITY)
        if r.inputs["serviceAccount"] == lbc.SERVICE_ACCOUNT
    ]
    (role,) = [
        r
        for r in long_lived.of_type("aws:iam/role:Role")
        if r.outputs.get("arn") == association["roleArn"]
    ]
    inline = [
        r.inputs["policy"]
        for r in long_lived.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.inputs["role"] == role.id
    ]
    assert sum(len("".join(p.split())) for p in inline) <= 10_240
