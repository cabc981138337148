"""The mock engine: one ``pulumi.runtime.Mocks`` that answers by provider and type from tables.

A resource's type token names its provider (``aws:eks/cluster:Cluster`` -> ``aws``); the
provider's table (``tools.mocks.aws``, ``kubernetes``, ``docker``, ``random``) gives its computed
outputs, a provider's ``generic`` answers its types without an entry, and Pulumi's own types
(providers, StackReference) are answered here. Functions (invokes) dispatch the same way
(``tools.mocks.aws_functions``). A ``SimulatedAccount``, when given, keeps state across runs and
refuses what AWS refuses; the runner (``tools.mocks.runner``) hands it every registration.

``Registration`` is the one record of what a run declared, used by the plan tool, the manifest
renderer and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi

from infra.config import partition_of
from tools.mocks import aws, aws_functions, docker, kubernetes, random
from tools.mocks.context import (
    ACCOUNT_ID,
    DEPLOYER_ROLE,
    ID,
    CallFn,
    Context,
    OutputFn,
    Secret,
    hex_id,
    uuid_of,
)
from tools.mocks.simulated_account import SimulatedAccount

#: Resource output tables per provider (the first segment of the type token).
RESOURCES: Final[Mapping[str, Mapping[str, OutputFn]]] = {
    "aws": aws.RESOURCES,
    "kubernetes": kubernetes.RESOURCES,
    "docker": docker.RESOURCES,
    "random": random.RESOURCES,
}
#: What a provider answers for a type its table does not list.
GENERIC: Final[Mapping[str, OutputFn]] = {"aws": aws.generic, "kubernetes": kubernetes.generic}
#: Function (invoke) tables per provider.
CALLS: Final[Mapping[str, Mapping[str, CallFn]]] = {"aws": aws_functions.CALLS}


@dataclass(frozen=True)
class Registration:
    """One resource the program declared (or read), as the engine saw it."""

    urn: str
    type: str
    name: str
    parent_urn: str | None
    inputs: Mapping[str, Any]
    #: Inputs merged with the computed outputs the mocks answered.
    outputs: Mapping[str, Any] = field(default_factory=dict)
    #: The physical id the mocks gave the resource.
    id: str = ""
    #: URNs this resource explicitly depends on (depends_on, expanded by the SDK).
    dependencies: tuple[str, ...] = ()
    protect: bool = False
    #: The resource asked to be deleted before its replacement is created.
    delete_before_replace: bool = False
    read: bool = False
    custom: bool = True

    @property
    def parent_name(self) -> str | None:
        """Logical name of the parent (None for resources directly under the stack)."""
        if self.parent_urn is None or self.parent_urn.split("::")[2] == "pulumi:pulumi:Stack":
            return None
        return self.parent_urn.rsplit("::", 1)[-1]


def _stack_reference(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """A StackReference reads the referenced stack's outputs (and which of them are secret)."""
    target = str(ctx.resource_id or inputs.get("name") or ctx.name)
    short = target.rsplit("/", 1)[-1]
    outputs = ctx.stack_outputs.get(target) or ctx.stack_outputs.get(short)
    if outputs is None:
        raise KeyError(f"no outputs mocked for referenced stack {target!r}")
    secret_names = list(ctx.secret_outputs.get(target) or ctx.secret_outputs.get(short) or ())
    return {ID: target, "name": target, "outputs": dict(outputs), "secretOutputNames": secret_names}


def _provider(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """An explicit provider instance: the engine gives it a UUID."""
    return {ID: uuid_of(ctx.typ, ctx.name)}


def _table_entry(typ: str) -> OutputFn | None:
    if typ == "pulumi:pulumi:StackReference":
        return _stack_reference
    if typ.startswith("pulumi:providers:"):
        return _provider
    provider = typ.split(":", 1)[0]
    return RESOURCES.get(provider, {}).get(typ) or GENERIC.get(provider)


@dataclass
class ProgramMocks(pulumi.runtime.Mocks):
    """Realistic answers for every resource type and function the program uses.

    ``stack_outputs`` maps a referenced stack name to the outputs a StackReference to it sees
    (pr-* stacks read the dev stack's cluster this way).
    """

    region: str = "us-west-2"
    account_id: str = ACCOUNT_ID
    stack_outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secret_outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: When given, every creation is checked against (and recorded in) this account's state.
    account: SimulatedAccount | None = None

    @property
    def caller_role(self) -> str:
        """The IAM role whose session runs `pulumi`."""
        return self.account.caller_role if self.account is not None else DEPLOYER_ROLE

    @property
    def partition(self) -> str:
        """The partition of the region: every ARN the mocks answer carries it, as AWS's do.

        https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html (aws, aws-cn,
        aws-us-gov).
        """
        return partition_of(self.region)

    def context(self, typ: str = "", name: str = "", resource_id: str | None = None) -> Context:
        """What a table function sees for one resource (or function) of this account."""
        return Context(
            region=self.region,
            account_id=self.account_id,
            partition=self.partition,
            caller_role=self.caller_role,
            typ=typ,
            name=name,
            resource_id=resource_id,
            account=self.account,
            stack_outputs=self.stack_outputs,
            secret_outputs=self.secret_outputs,
        )

    def outputs(
        self, typ: str, name: str, inputs: Mapping[str, Any], resource_id: str | None = None
    ) -> dict[str, Any]:
        """The computed outputs of one resource (``ID``: its physical id), or the service's error.

        Component resources and types of providers without a table get none.
        """
        answer = _table_entry(typ)
        if answer is None:
            return {}
        return answer(dict(inputs), self.context(typ, name, resource_id))

    def answer(self, token: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """The result of one provider function; ``NotImplementedError`` for one not modelled."""
        function = CALLS.get(token.split(":", 1)[0], {}).get(token)
        if function is None:
            raise NotImplementedError(f"ProgramMocks has no answer for function {token}")
        return function(dict(args), self.context(token))

    def registered(
        self, urn: str, typ: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any], read: bool
    ) -> None:
        """One finished registration: the simulated account (if any) applies it or refuses it.

        Raises what AWS would answer (``PlatformError``); the registration, and so the run,
        fails with it.
        """
        if self.account is not None:
            self.account.on_register(urn, typ, inputs, outputs, read=read)

    # ------------------------------------------------------------------ pulumi.runtime.Mocks
    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """Answer a provider function the program invokes."""
        return self.answer(args.token, args.args), []

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        """Answer a registration: the physical id and the inputs merged with computed outputs."""
        inputs = dict(args.inputs)
        outputs = self.outputs(args.typ, args.name, inputs, args.resource_id)
        rid = outputs.pop(ID, None) or f"{args.name}-{hex_id(args.typ, args.name, length=8)}"
        for key, value in outputs.items():
            if isinstance(value, Secret):
                outputs[key] = pulumi.Output.secret(value.value)
        return rid, {**inputs, **outputs}
