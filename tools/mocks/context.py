"""What every output table and function answer receives: the account, the region, the resource.

The per-provider tables (``aws``, ``kubernetes``, ``docker``, ``random``) map a Pulumi type token
to ``function(inputs, ctx) -> outputs``. ``ctx`` is a ``Context``: the resource's type, logical
name and import id, plus the account the mocks stand for (id, region, partition, the role that
runs `pulumi`, the optional stateful ``SimulatedAccount``) and the outputs of referenced stacks.

Values are derived from hashes of names and inputs, never random, so two runs of the same program
give the same inventory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tools.mocks.simulated_account import SimulatedAccount

ACCOUNT_ID: Final = "123456789012"
DEPLOYER_ROLE: Final = "PulumiDeployer"
#: The key under which an output table returns the physical id (the engine pops it).
ID: Final = "__id"


class MockRejectedError(ValueError):
    """What the real service would answer with an error for these inputs."""


@dataclass(frozen=True)
class Secret:
    """A computed output the provider marks secret (a generated password, a token)."""

    value: Any


@dataclass(frozen=True)
class Context:
    """The resource (or function) being answered and the account answering it."""

    region: str
    account_id: str
    partition: str
    caller_role: str
    typ: str = ""
    name: str = ""
    #: The physical id of a resource being read or imported (``get``, StackReference).
    resource_id: str | None = None
    account: SimulatedAccount | None = None
    stack_outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secret_outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def arn(self, service: str, resource: str) -> str:
        """A regional ARN of this account: ``arn:<partition>:<service>:<region>:<acct>:<res>``."""
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"

    def global_arn(self, service: str, resource: str) -> str:
        """An ARN of a global service (IAM): no region field."""
        return f"arn:{self.partition}:{service}::{self.account_id}:{resource}"

    @property
    def dns_suffix(self) -> str:
        """The domain of the partition's endpoints: ``amazonaws.com.cn`` in the China regions.

        https://docs.amazonaws.cn/en_us/general/latest/gr/rande.html
        """
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"

    def endpoint(self, service: str) -> str:
        """The host of a regional service endpoint: ``<service>.<region>.<dns suffix>``."""
        return f"{service}.{self.region}.{self.dns_suffix}"

    def autoname(self, inputs: Mapping[str, Any], key: str = "name") -> str:
        """The explicit name input, or Pulumi's auto-name for the logical name."""
        return str(inputs.get(key) or autoname(self.name))


#: ``function(inputs, ctx) -> outputs`` for one resource type (``ID`` in outputs: the id).
OutputFn = Callable[[dict[str, Any], Context], dict[str, Any]]
#: ``function(args, ctx) -> result`` for one provider function (invoke).
CallFn = Callable[[dict[str, Any], Context], dict[str, Any]]


def hex_id(*parts: object, length: int = 17) -> str:
    """Lower-case hex derived from ``parts`` (the shape of EC2 ids after their prefix)."""
    text = "\0".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def uuid_of(*parts: object) -> str:
    """A UUID-shaped id derived from ``parts`` (KMS key ids, EKS cluster ids ...)."""
    h = hex_id(*parts, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def alnum(*parts: object, length: int) -> str:
    """Letters and digits derived from ``parts`` (generated passwords, ARN suffixes)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    digest = hashlib.sha512("\0".join(str(p) for p in parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def autoname(name: str, *parts: object) -> str:
    """Pulumi's auto-naming: the logical name plus seven characters."""
    return f"{name}-{hex_id(name, *parts, length=7)}"
