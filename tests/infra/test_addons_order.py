"""Add-ons a node needs from its first second come before compute, on create and on destroy.

Sources:
- terraform-aws-eks ``before_compute``: ``aws_eks_addon.before_compute`` is created with no
  node-group dependency, the other add-ons (``aws_eks_addon.this``) depend on the node groups
  (terraform-aws-modules/terraform-aws-eks, main.tf); its examples set it for vpc-cni and
  eks-pod-identity-agent.
- A node without the VPC CNI never becomes Ready (no pod networking), and pods that start before
  the Pod Identity agent get no credentials:
  https://docs.aws.amazon.com/eks/latest/userguide/managing-vpc-cni.html,
  https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html
- The engine creates a resource after everything in its dependencies and deletes it before them:
  https://www.pulumi.com/docs/iac/concepts/options/dependson/
"""

from __future__ import annotations

import graphlib
import json

from tests.stack_inventory import Inventory
from tools.mocks import Registration

ADDON = "aws:eks/addon:Addon"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
BEFORE_COMPUTE = ("vpc-cni", "eks-pod-identity-agent")


def _engine_orders(inv: Inventory) -> tuple[list[str], list[str]]:
    """The order ``pulumi up`` creates and ``pulumi destroy`` deletes, from the dependency graph."""
    known = {r.urn for r in inv.registrations}
    graph = {r.urn: {d for d in r.dependencies if d in known} for r in inv.registrations}
    create = list(graphlib.TopologicalSorter(graph).static_order())
    return create, list(reversed(create))


def _addon(inv: Inventory, name: str) -> Registration:
    (found,) = [r for r in inv.of_type(ADDON) if r.inputs["addonName"] == name]
    return found


def test_node_groups_depend_on_the_cni_and_pod_identity_addons(long_lived: Inventory) -> None:
    groups = long_lived.of_type(NODE_GROUP)
    # The system group and one GPU group per family.
    assert len(groups) >= 2
    for addon in BEFORE_COMPUTE:
        urn = _addon(long_lived, addon).urn
        assert all(urn in g.dependencies for g in groups), addon


def test_they_are_created_before_and_deleted_after_every_node_group(
    long_lived: Inventory,
) -> None:
    create, destroy = _engine_orders(long_lived)
    groups = [g.urn for g in long_lived.of_type(NODE_GROUP)]
    for addon in BEFORE_COMPUTE:
        urn = _addon(long_lived, addon).urn
        assert all(create.index(urn) < create.index(g) for g in groups), addon
        assert all(destroy.index(urn) > destroy.index(g) for g in groups), addon


def test_node_hosted_addons_still_wait_for_the_system_nodes(long_lived: Inventory) -> None:
    system = next(g.urn for g in long_lived.of_type(NODE_GROUP) if "system" in g.name)
    for addon in ("coredns", "metrics-server", "amazon-cloudwatch-observability"):
        assert system in _addon(long_lived, addon).dependencies, addon


def test_vpc_cni_keeps_network_policy_enforcement(long_lived: Inventory) -> None:
    # Moving the add-on must not lose its settings.
    settings = json.loads(_addon(long_lived, "vpc-cni").inputs["configurationValues"])
    assert settings == {"enableNetworkPolicy": "true"}
