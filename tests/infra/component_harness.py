"""Run a few Pulumi components under mocks and return what they registered.

The whole-program tests use the project's realistic mocks; the component tests only need every
registration with its inputs, and computed outputs that look like AWS's (an ARN, an id), so
they stay independent of the rest of the program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tools.manifests import RecordedResource

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs (plus an ARN) and remember every registration."""

    def __init__(self) -> None:
        self.resources: list[RecordedResource] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(RecordedResource(args.typ, args.name, dict(args.inputs)))
        outputs = dict(args.inputs)
        service = args.typ.split(":")[1].split("/")[0] if args.typ.startswith("aws:") else ""
        if args.typ == "kubernetes:core/v1:Service" and outputs["spec"]["type"] == "LoadBalancer":
            # What the cloud controller writes once the NLB exists.
            hostname = f"{args.name}.elb.{REGION}.amazonaws.com"
            outputs["status"] = {"loadBalancer": {"ingress": [{"hostname": hostname}]}}
        if service:
            outputs.setdefault("arn", f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{args.name}")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        raise AssertionError(f"the components under test must not invoke {args.token}")


def run_under_mocks(program: Callable[[], None]) -> list[RecordedResource]:
    """Run ``program`` (which declares resources) to completion and return its registrations."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="torch-eks-inference", stack="test", preview=False)
    _sync_await(run_pulumi_func(program))
    return mocks.resources


def only(resources: list[RecordedResource], type_: str, name: str | None = None) -> dict[str, Any]:
    """The inputs of the single resource of ``type_`` (and logical ``name``, when given)."""
    matches = [r for r in resources if r.type == type_ and (name is None or r.name == name)]
    assert len(matches) == 1, f"expected one {type_} {name or ''}, got {len(matches)}"
    return dict(matches[0].inputs)


def all_of(resources: list[RecordedResource], type_: str) -> list[dict[str, Any]]:
    """The inputs of every resource of ``type_``."""
    return [dict(r.inputs) for r in resources if r.type == type_]
