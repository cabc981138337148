"""Build policy arguments exactly as the policy runtime does, and collect what policies report.

The engine sends inputs as a protobuf ``Struct``; the runtime turns it into a dict with
``MessageToDict`` (so every number becomes a float), ``deserialize_properties`` (secrets, assets)
and wraps it in ``unknown_checking_proxy``; then it builds ``ResourceValidationArgs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

PROJECT = "torch-eks-inference"
#: What the engine sends for a value only known after deployment (e.g. an image digest).
UNKNOWN = UNKNOWN_STRING_VALUE


def as_engine_sends(inputs: Mapping[str, Any]) -> Any:
    struct = struct_pb2.Struct()
    struct.update(dict(inputs))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def validation_args(
    resource_type: str,
    inputs: Mapping[str, Any],
    *,
    stack: str = "dev",
    name: str = "r",
    config: Mapping[str, Any] | None = None,
    provider_inputs: Mapping[str, Any] | None = None,
) -> ResourceValidationArgs:
    urn = f"urn:pulumi:{stack}::{PROJECT}::{resource_type}::{name}"
    opts = PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=None,
    )
    provider = PolicyProviderResource(
        "pulumi:providers:aws",
        as_engine_sends(provider_inputs or {}),
        f"urn:pulumi:{stack}::{PROJECT}::pulumi:providers:aws::default",
        "default",
    )
    return ResourceValidationArgs(
        resource_type, as_engine_sends(inputs), urn, name, opts, provider, dict(config or {})
    )


def violations(policy: Policy, args: ResourceValidationArgs) -> list[str]:
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))  # type: ignore[attr-defined,misc]
    return found
