"""The plan diff sees URNs and aliases the way the Pulumi engine does.

A component's URN holds its type token, and each child's URN holds the types of all its
ancestors. Renaming a component's type (or a child's parent) is therefore a new URN for the
component and every child: without an alias, `pulumi up` deletes and recreates them all; with
``aliases=[pulumi.Alias(type_=<old token>)]`` on the component, the children inherit the alias and
nothing is replaced (https://www.pulumi.com/docs/iac/concepts/options/aliases/, "Refactoring
with aliases": https://www.pulumi.com/docs/iac/operations/stack-management/refactoring-with-
aliases/; the inheritance rule: pulumi/runtime/resource.py ``all_aliases`` in the Python SDK).

The programs are run under the same mocks and runner as the plan tool, so the URNs and alias
specs are the ones the SDK really sends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from tools.delivery.plan_diff import diff_inventories
from tools.plan import inventory, run_program

OLD = "torch-eks:infra:Thing"
NEW = "torch-eks-inference:network:Thing"
CONFIG = {"aws:region": "us-west-2", "torch-eks-inference:environment": "pr"}


class _Thing(pulumi.ComponentResource):
    def __init__(self, type_: str, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_, name, None, opts)
        aws.cloudwatch.LogGroup(
            f"{name}-logs", retention_in_days=7, opts=pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({})


def _plan(program: Callable[[], None]) -> list[dict[str, Any]]:
    return inventory(run_program("dev", config=CONFIG, program=program))


def _base() -> None:
    _Thing(OLD, "thing")


def test_type_rename_without_alias_deletes_and_recreates_component_and_child() -> None:
    def head() -> None:
        _Thing(NEW, "thing")

    diff = diff_inventories(_plan(_base), _plan(head))

    assert sorted(key.type for key, _ in diff.added) == ["aws:cloudwatch/logGroup:LogGroup", NEW]
    assert sorted(key.type for key, _ in diff.removed) == ["aws:cloudwatch/logGroup:LogGroup", OLD]


def test_type_rename_with_alias_changes_nothing_and_the_child_inherits_it() -> None:
    def head() -> None:
        _Thing(NEW, "thing", pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=OLD)]))

    diff = diff_inventories(_plan(_base), _plan(head))

    assert diff.empty, diff
    assert diff.aliased == 2  # the component through its own alias, the log group inherited


def test_alias_naming_another_type_does_not_match() -> None:
    def head() -> None:
        other = "torch-eks:infra:Other"
        _Thing(NEW, "thing", pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=other)]))

    diff = diff_inventories(_plan(_base), _plan(head))

    assert len(diff.added) == 2
    assert len(diff.removed) == 2


def test_moving_a_child_under_a_new_component_needs_a_parent_alias() -> None:
    def base() -> None:
        aws.cloudwatch.LogGroup("logs", retention_in_days=7)

    def head(alias: bool) -> Callable[[], None]:
        def program() -> None:
            wrapper = pulumi.ComponentResource(NEW, "wrapper")
            stack = pulumi.runtime.get_root_resource()
            aliases = [pulumi.Alias(parent=stack)] if alias else []
            aws.cloudwatch.LogGroup(
                "logs",
                retention_in_days=7,
                opts=pulumi.ResourceOptions(parent=wrapper, aliases=aliases),
            )

        return program

    without = diff_inventories(_plan(base), _plan(head(alias=False)))
    with_alias = diff_inventories(_plan(base), _plan(head(alias=True)))

    assert [key.name for key, _ in without.removed] == ["logs"]
    assert sorted(key.name for key, _ in without.added) == ["logs", "wrapper"]
    assert not with_alias.removed
    assert [key.name for key, _ in with_alias.added] == ["wrapper"]
    assert with_alias.aliased == 1
