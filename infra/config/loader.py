"""``load_stack_config``: raw Pulumi config strings in, a validated ``StackConfig`` out.

The loader decides what the model cannot see for itself (the environment kind, the region, the
namespace a stack name gives, whether the API key is stored as a secret, which keys a pr stack
may set), fills in the environment's defaults (``infra/environments.py``) and validates. Every
problem, of one key or between keys, becomes one line ``<project>:<key> = <value>: <what is
allowed>`` of a single ``ConfigError``, so a bad stack file fails ``pulumi preview`` before a
single resource is declared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pulumi
from pydantic import ValidationError

from infra import environments, scaling_config
from infra.aws import eks_versions
from infra.config import fields as f
from infra.config.kinds import PROJECT, ConfigError, Environment, SecretStr
from infra.config.model import MAX_EXPIRY_HOURS, StackConfig
from infra.k8s import labels

#: Keys this program used to read, with what replaced them.
RETIRED_KEYS: Final = {
    "gpuNodeDesired": "GPU node groups start at gpuNodeMin and cluster-autoscaler sizes them "
    "(a desired size above the minimum made `pulumi up` wait on spot capacity and quota); "
    "remove it: `pulumi config rm gpuNodeDesired`",
}
#: Every key this program reads from its own namespace (anything else is a typo).
KNOWN_KEYS: Final = frozenset(
    {"environment", "apiKey"}
    | {str(field.alias) for field in StackConfig.model_fields.values() if field.alias}
    | scaling_config.keys()
)
#: Keys that only make sense on long-lived stacks; pr stacks borrow dev's cluster.
CLUSTER_ONLY_KEYS: Final = scaling_config.SCALING_CLUSTER_ONLY_KEYS | frozenset(
    {
        "availabilityZoneCount", "natGateways", "gpuInstanceTypes", "gpuCapacityType",
        "gpuNodeMin", "gpuNodeMax", "prGpuSlots", "upgradeSupportType", "ciRunner",
        "allowWorldOpenEndpoint", "deployRoleArns", "previewRoleArns", "ephemeralRoleArns",
        "systemNodeMin", "systemNodeDesired", "systemNodeMax", "vpcCidr", "existingVpcId",
        "existingPrivateSubnetIds", "existingPublicSubnetIds", "endpointPublicAccessCidrs",
        "adminRoleArns", "gpuRootVolumeGiB", "systemInstanceType", "kubernetesVersion",
        "clusterName",
    }
)  # fmt: skip
#: Project defaults in Pulumi.yaml that mean "the environment's default" (see infra/environments).
UNSET_SENTINELS: Final = ("", "-1", "[]")
#: Minimum length of an API key given through config (a generated one has 48 characters).
MIN_API_KEY_LENGTH: Final = 24

_PR_STACK = re.compile(r"^pr-(?P<number>[1-9]\d{0,8})$")
_DNS_LABEL = re.compile(labels.DNS_1123_LABEL)
_SCALING_KEYS: Final = scaling_config.keys()


def is_unset(raw_value: str) -> bool:
    """True for a config value that asks for the environment's default."""
    return raw_value.strip() in UNSET_SENTINELS


def environment_of(stack: str, raw: Mapping[str, str], project: str = PROJECT) -> Environment:
    """The environment kind: the ``environment`` key, or the stack name (dev, staging, prod, pr-N).

    Raises ConfigError when neither says which one it is.
    """
    value = raw.get(f"{project}:environment", "")
    allowed = ", ".join(e.value for e in Environment)
    if value:
        try:
            return Environment(value)
        except ValueError:
            raise ConfigError(
                stack, [f"{project}:environment = {value!r}: must be one of {allowed}"]
            ) from None
    if _PR_STACK.match(stack):
        return Environment.PR
    try:
        return Environment(stack)
    except ValueError:
        raise ConfigError(
            stack,
            [
                f"{project}:environment is not set and stack name {stack!r} is not one of "
                f"dev, staging, prod, pr-<number>; run `pulumi config set environment <{allowed}>`"
            ],
        ) from None


def load_stack_config(
    stack: str,
    raw: Mapping[str, str],
    *,
    project: str = PROJECT,
    secret_keys: frozenset[str] = frozenset(),
    now: datetime | None = None,
) -> StackConfig:
    """Validate raw config (``namespace:key`` -> string, objects JSON-encoded) into a StackConfig.

    Raises ConfigError listing every problem found.
    """
    environment = environment_of(stack, raw, project)
    moment = now or datetime.now(UTC)
    given = _given(raw, project)
    problems = _key_problems(given, environment, project)
    problems += _context_problems(stack, raw, environment)
    api_key, key_problems = _api_key(raw, project, secret_keys)
    problems += key_problems

    defaults = environments.defaults_for(environment)
    data = _inputs(stack, project, environment, raw, given, defaults, moment)
    data["api_key"] = api_key
    context = {"today": moment.date(), "given": frozenset(given)}
    config, model_problems = _validate(data, defaults, context, project)
    problems += model_problems
    if problems or config is None:
        raise ConfigError(stack, problems)
    return config.model_copy(update={"warnings": _warnings(config, moment)})


def _given(raw: Mapping[str, str], project: str) -> dict[str, str]:
    """Keys of our namespace the stack sets (sentinels of known keys count as not set)."""
    given: dict[str, str] = {}
    for full_key, value in raw.items():
        namespace, _, name = full_key.partition(":")
        if namespace != project or name in ("environment", "apiKey"):
            continue
        if name in KNOWN_KEYS and is_unset(value):
            continue
        given[name] = value
    return given


def _key_problems(given: dict[str, str], environment: Environment, project: str) -> list[str]:
    """pr stacks may not set the cluster's keys (unless at Pulumi.yaml's project default)."""
    if environment is not Environment.PR:
        return []
    problems = []
    for name in sorted(given.keys() & CLUSTER_ONLY_KEYS):
        default = environments.COMMON_DEFAULTS.get(name)
        if given[name] in (json.dumps(default), str(default)):
            continue
        problems.append(
            f"{project}:{name} = {given[name]!r}: not allowed on pr stacks: they reuse the "
            "cluster of clusterStack"
        )
    return problems


def _context_problems(stack: str, raw: Mapping[str, str], environment: Environment) -> list[str]:
    """The provider's region, and the namespace the stack name gives."""
    problems = []
    region = raw.get("aws:region", "")
    if not region:
        problems.append("aws:region is not set: run `pulumi config set aws:region us-west-2`")
    elif not f.REGION.match(region):
        problems.append(f"aws:region = {region!r}: not an AWS region name such as us-west-2")
    namespace = _namespace(stack, environment)
    if not _DNS_LABEL.match(namespace):
        problems.append(
            f"stack name {stack!r} gives namespace {namespace!r}, not a DNS-1123 label "
            "(lowercase letters, digits and -, at most 63 characters)"
        )
    return problems


def _namespace(stack: str, environment: Environment) -> str:
    return f"inference-{stack}" if environment is Environment.PR else "inference"


def _api_key(
    raw: Mapping[str, str], project: str, secret_keys: frozenset[str]
) -> tuple[SecretStr | None, list[str]]:
    """The API key, only from a secret config value, never echoed in a message."""
    full = f"{project}:apiKey"
    if full not in raw:
        return None, []
    command = "pulumi config set --secret apiKey <value>"
    if full not in secret_keys:
        # The value would sit in plain text in the stack file and in state: refuse it.
        return None, [
            f"{full} is stored in plain text; remove it (`pulumi config rm apiKey`) and run "
            f"`{command}`"
        ]
    value = raw[full]
    if len(value) < MIN_API_KEY_LENGTH:
        return None, [
            f"{full} = [secret]: {len(value)} characters, at least {MIN_API_KEY_LENGTH} "
            f"required; run `{command}` with a longer key, or `pulumi config rm apiKey` to have "
            "one generated"
        ]
    return SecretStr(value), []


def _inputs(
    stack: str,
    project: str,
    environment: Environment,
    raw: Mapping[str, str],
    given: dict[str, str],
    defaults: dict[str, Any],
    moment: datetime,
) -> dict[str, Any]:
    """What the model validates: defaults, then the stack's keys, then what follows from both."""
    values = {**defaults, **given}
    if environment is Environment.PR:
        values = {k: v for k, v in values.items() if k not in CLUSTER_ONLY_KEYS or k in defaults}
    values["clusterName"] = values.get("clusterName") or f"{project}-{stack}"
    if environment is Environment.PR and not values.get("expiresAt"):
        hours = str(values.get("expiryHours", "")).strip()
        if hours.isdigit() and 1 <= int(hours) <= MAX_EXPIRY_HOURS:
            start = moment.replace(second=0, microsecond=0)
            values["expiresAt"] = start + timedelta(hours=int(hours))
    data: dict[str, Any] = {k: v for k, v in values.items() if k not in _SCALING_KEYS}
    data["scaling"] = {k: v for k, v in values.items() if k in _SCALING_KEYS}
    data.update(
        project=project,
        stack=stack,
        environment=environment,
        region=raw.get("aws:region", ""),
        namespace=_namespace(stack, environment),
    )
    return data


def _validate(
    data: dict[str, Any], defaults: dict[str, Any], context: dict[str, Any], project: str
) -> tuple[StackConfig | None, list[str]]:
    """The model, or every problem: each bad key, then the cross-key rules among the good ones.

    pydantic runs the cross-key rules only once every key is valid; so when some are not, they
    are put back to their defaults and validated again, and the rules that fail then (without
    mentioning a bad key) are reported too: all problems at once, as the reader always did.
    """
    try:
        return StackConfig.model_validate(data, context=context), []
    except ValidationError as error:
        problems, bad_keys = _problems_of(error, project)
    if not bad_keys:
        return None, problems
    retry = {k: v for k, v in data.items() if k not in bad_keys}
    retry["scaling"] = {k: v for k, v in data["scaling"].items() if k not in bad_keys}
    for key in bad_keys & defaults.keys():
        (retry["scaling"] if key in _SCALING_KEYS else retry)[key] = defaults[key]
    try:
        StackConfig.model_validate(retry, context=context)
    except ValidationError as error:
        more, _ = _problems_of(error, project)
        problems += [p for p in more if not any(key in p for key in bad_keys)]
    return None, problems


def _problems_of(error: ValidationError, project: str) -> tuple[list[str], set[str]]:
    """pydantic's errors as ``<project>:<key> = <value>: <allowed>`` lines, and the bad keys."""
    problems: list[str] = []
    bad_keys: set[str] = set()
    for item in error.errors(include_url=False):
        context = item.get("ctx") or {}
        if item["type"] == f.RULES_ERROR:
            problems += [_line(project, *problem) for problem in context["problems"]]
            continue
        key = next((str(p) for p in reversed(item["loc"]) if isinstance(p, str)), "")
        bad_keys.add(key)
        if item["type"] == "extra_forbidden":
            allowed = RETIRED_KEYS.get(key) or (
                f"unknown key; known keys: {', '.join(sorted(KNOWN_KEYS))}"
            )
        elif item["type"] == f.VALUE_ERROR:
            allowed = str(context["allowed"]).replace(f.KEY, key)
        else:
            allowed = str(item["msg"])
        problems.append(_line(project, key, context.get("parsed", item["input"]), allowed))
    return problems, bad_keys


def _line(project: str, key: str, value: object, allowed: str) -> str:
    return f"{project}:{key} = {value!r}: {allowed}"


def _warnings(config: StackConfig, moment: datetime) -> tuple[str, ...]:
    """Valid but costly or soon-due choices: a version in (or near) extended support."""
    if config.is_ephemeral:
        return ()
    version = config.kubernetes_version
    warning = eks_versions.support_warning(version, moment.date())
    if warning is None:
        return ()
    return (f"{config.project}:kubernetesVersion = {version!r}: {warning}",)


def require_image_ref(cfg: StackConfig) -> str | None:
    """The image a long-lived stack runs, ``None`` for dev's explicit bootstrap (``none``).

    Unset is a ConfigError that names the command setting it: a missing image must never
    quietly become "no service".
    """
    from infra.config.model import IMAGE_REF_NONE

    if cfg.image_ref == IMAGE_REF_NONE:
        return None
    if cfg.image_ref is None:
        raise ConfigError(
            cfg.stack,
            [
                f"{cfg.project}:imageRef is not set: long-lived stacks run the image CI built "
                "and pushed once, by digest. `python -m tools.delivery.deploy --stack "
                f"{cfg.stack} --image REPO@sha256:<64 hex>` sets it; by hand: `pulumi config "
                f"set imageRef REPO@sha256:<64 hex> -s {cfg.stack}`. For dev's first up, "
                "before CI has pushed anything: `pulumi config set imageRef none -s dev`"
            ],
        )
    return cfg.image_ref


def raw_config_from_pulumi() -> tuple[dict[str, str], frozenset[str]]:
    """Every config value the engine passed to this program, and which keys are secret.

    The language host hands them to the program process as ``PULUMI_CONFIG`` and
    ``PULUMI_CONFIG_SECRET_KEYS`` (pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go,
    ``pulumiConfigVar``); ``pulumi up`` and the Automation API on this folder both run through
    it, and the offline runner (tools/mocks/runner.py) passes config the same way. Only the
    SDK's public functions read them, so no SDK internals are needed here.
    """
    raw = {str(k): str(v) for k, v in pulumi.runtime.get_config_env().items()}
    return raw, frozenset(pulumi.runtime.get_config_secret_keys_env())


def from_pulumi() -> StackConfig:
    """The running stack's validated configuration (what ``__main__`` calls first)."""
    raw, secret_keys = raw_config_from_pulumi()
    config = load_stack_config(
        pulumi.get_stack(), raw, project=pulumi.get_project(), secret_keys=secret_keys
    )
    for warning in config.warnings:
        pulumi.log.warn(warning)
    return config
