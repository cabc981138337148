"""Single-key rules: how one raw config string becomes a typed value, or says what is allowed.

Each helper returns a pydantic ``BeforeValidator``/``AfterValidator`` for an ``Annotated`` field
of ``StackConfig``. A refusal is a ``PydanticCustomError`` whose message is the "what is
allowed" part; ``infra.config.loader`` prefixes the key and the value, so every message reads
``<project>:<key> = <value>: <what is allowed>``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, TypeVar

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from infra.aws import gpu_instances, limits
from service import contract

_E = TypeVar("_E", bound=StrEnum)

#: Error type of a single-key refusal (its message is what is allowed).
VALUE_ERROR: Final = "config_value"
#: Stands for the key's name in a message; the loader puts the name in.
KEY: Final = "{key}"

#: x86_64 NVIDIA instance families the AL2023_x86_64_NVIDIA AMI supports.
GPU_FAMILIES: Final = tuple(gpu_instances.ACCELERATOR_BY_FAMILY)
INSTANCE_TYPE: Final = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9]+)$")
REGION: Final = re.compile(contract.AWS_REGION_PATTERN)
IAM_ROLE_ARN: Final = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_ASSUMED_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:sts::\d{12}:assumed-role/")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$")
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w .:/=+@-]{0,256}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
EXPIRES_AT_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


#: A cross-key problem: the key to name, its value, and what is allowed.
Problem = tuple[str, object, str]
#: Error type of cross-key problems; its context holds the ``Problem`` triples.
RULES_ERROR: Final = "config_rules"


def rules_error(problems: list[Problem]) -> PydanticCustomError:
    """One pydantic error carrying every cross-key problem found (the loader lists each)."""
    return PydanticCustomError(
        RULES_ERROR, "{count} cross-key problem(s)", {"count": len(problems), "problems": problems}
    )


def refuse(allowed: str, *parsed: object) -> PydanticCustomError:
    """The error a field validator raises: ``allowed`` says what the key accepts.

    ``parsed`` is the value as parsed, when the message should show it rather than the raw text
    (``logRetentionDays = 10``, not ``'10'``, once it is known to be a number).
    """
    context: dict[str, object] = {"allowed": allowed}
    if parsed:
        context["parsed"] = parsed[0]
    return PydanticCustomError(VALUE_ERROR, "{allowed}", context)


def between(low: int, high: int) -> BeforeValidator:
    """An integer from ``low`` to ``high`` (config strings such as ``" 3"`` included)."""
    allowed = f"must be an integer from {low} to {high}"

    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise refuse(allowed)
        try:
            number = int(str(value).strip())
        except ValueError:
            raise refuse(allowed) from None
        if not low <= number <= high:
            raise refuse(allowed)
        return number

    return BeforeValidator(parse)


def one_of(enum: type[_E]) -> BeforeValidator:
    """A member of ``enum``, by value."""
    allowed = f"must be one of {', '.join(member.value for member in enum)}"

    def parse(value: object) -> _E:
        try:
            return enum(str(value))
        except ValueError:
            raise refuse(allowed) from None

    return BeforeValidator(parse)


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise refuse("must be true or false")
    return text == "true"


#: ``true`` or ``false`` (pydantic alone would also take yes, on, 1 ...).
BOOLEAN: Final = BeforeValidator(_boolean)


def _string_list(value: object) -> object:
    """A list given as JSON text (how the engine passes it) or already parsed (a default)."""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
    if not isinstance(parsed, list | tuple) or not all(isinstance(v, str) for v in parsed):
        raise refuse(f'must be a list of strings (pulumi config set --path "{KEY}[0]" VALUE)')
    return tuple(parsed)


#: A list of strings; each entry is then checked by the item type.
STRING_LIST: Final = BeforeValidator(_string_list)


def matches(check: Callable[[str], bool], allowed: str) -> AfterValidator:
    """A string that is empty (unset) or passes ``check``."""

    def validate(value: str) -> str:
        if value and not check(value):
            raise refuse(allowed)
        return value

    return AfterValidator(validate)


def pattern(regex: str, allowed: str) -> AfterValidator:
    """A string that is empty (unset) or matches ``regex``."""
    compiled = re.compile(regex)
    return matches(lambda v: bool(compiled.match(v)), allowed)


def empty_is_none(value: object) -> object:
    """``""`` means unset for optional strings."""
    return None if value == "" else value


def vpc_cidr(value: str) -> str:
    """A private IPv4 network of /16 to /20."""
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise refuse("must be an IPv4 network such as 10.0.0.0/16") from None
    if not 16 <= network.prefixlen <= 20:
        raise refuse("prefix length must be /16 to /20 (EKS pods take VPC addresses)")
    if not network.is_private:
        raise refuse("must be a private (RFC 1918) range")
    return value


def subnet_id(value: str) -> str:
    """One existing subnet id."""
    if not _SUBNET_ID.match(value):
        raise refuse("each entry must look like subnet-0123456789abcdef0")
    return value


def unique(values: tuple[str, ...]) -> tuple[str, ...]:
    """No entry twice."""
    if len(set(values)) != len(values):
        raise refuse("subnet ids must be unique")
    return values


def cidr(value: str) -> str:
    """One IPv4 or IPv6 network."""
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise refuse("each entry must be a CIDR like 203.0.113.7/32") from None
    return value


def role_arn(value: str) -> str:
    """An IAM role ARN (access entries name the role, never a session)."""
    if _ASSUMED_ROLE_ARN.match(value):
        raise refuse("an STS session ARN; give the role: arn:aws:iam::<account>:role/<name>")
    if not IAM_ROLE_ARN.match(value):
        raise refuse("each entry must be an IAM role ARN (arn:aws:iam::<account>:role/...)")
    return value


def gpu_instance_type(value: str) -> str:
    """A GPU instance type of a supported family, in a size that exists."""
    match = INSTANCE_TYPE.match(value)
    if not match or match["family"] not in GPU_FAMILIES:
        raise refuse(f"not an x86_64 NVIDIA GPU instance type; families: {', '.join(GPU_FAMILIES)}")
    if value not in gpu_instances.GPU_INSTANCES:
        family = match["family"]
        sizes = sorted(t for t in gpu_instances.GPU_INSTANCES if t.startswith(f"{family}."))
        raise refuse(f"no such {family} size; sizes: {sizes}")
    return value


def at_least_one(values: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty list."""
    if not values:
        raise refuse("at least one GPU instance type is required")
    return values


def is_cpu_instance_type(value: str) -> bool:
    """An instance type without accelerators (what the system nodes run on)."""
    match = INSTANCE_TYPE.match(value)
    return bool(match) and not value.startswith(("p", "g", "inf", "trn"))


def image_replica(value: object) -> tuple[str, str]:
    """``REGION`` or ``ACCOUNT_ID:REGION`` as (account id or "", region)."""
    if isinstance(value, tuple):
        return (str(value[0]), str(value[1]))
    account, _, region = str(value).rpartition(":")
    if not REGION.match(region) or (account and not _ACCOUNT_ID.match(account)):
        raise refuse("each entry is REGION or ACCOUNT_ID:REGION")
    return (account, region)


def tag(value: object) -> tuple[str, str]:
    """One ``KEY=VALUE`` AWS tag (the aws: prefix is AWS's own)."""
    if isinstance(value, tuple):
        return (str(value[0]), str(value[1]))
    key, sep, text = str(value).partition("=")
    if not sep or not _TAG_KEY.match(key) or not _TAG_VALUE.match(text):
        raise refuse("each entry must be KEY=VALUE (AWS tag characters)")
    if key.lower().startswith("aws:"):
        raise refuse("the aws: prefix is reserved by AWS")
    return (key, text)


def expires_at(value: object) -> datetime | None:
    """An ISO-8601 UTC timestamp such as 2026-11-28T21:00:00Z; empty for none."""
    if value in ("", None):
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.strptime(str(value), EXPIRES_AT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise refuse("must be an ISO-8601 UTC timestamp like 2026-11-28T21:00:00Z") from None


def in_choices(choices: tuple[int, ...], allowed: str) -> AfterValidator:
    """An integer from a fixed set (after its range check)."""

    def validate(value: int) -> int:
        if value not in choices:
            raise refuse(allowed, value)
        return value

    return AfterValidator(validate)


def recovery_days(value: int) -> int:
    """0 (delete at once) or Secrets Manager's recovery window."""
    if 0 < value < limits.SECRET_RECOVERY_DAYS_MIN:
        raise refuse(
            f"Secrets Manager allows 0 or {limits.SECRET_RECOVERY_DAYS_MIN}-"
            f"{limits.SECRET_RECOVERY_DAYS_MAX} days",
            value,
        )
    return value
