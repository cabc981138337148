"""The service's settings, read once from the environment and validated before anything starts.

:class:`Settings` is a pydantic model whose fields carry the contract's variable names
(``service.contract.ENV``) as validation aliases. Every bad value stops start-up with one message
that names the variable, the value given and what is allowed, all problems at once, so a
misconfigured Deployment fails fast and says why in its first log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic.fields import FieldInfo

from service import contract

_ENV = contract.ENV

MAX_BATCH_SIZE_LIMIT: Final = 4096
MAX_BATCH_TIMEOUT_MS: Final = 10_000.0
MIN_REQUEST_BYTES: Final = 1024
MAX_TORCH_THREADS: Final = 256
MAX_QUEUED_ROWS_LIMIT: Final = 1_000_000
MAX_DRAIN_PERIOD_SECONDS: Final = 300.0
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MODEL_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_SECRET_ARN: Final = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^\s]+$"  # noqa: S105 - a pattern


class SettingsError(ValueError):
    """One or more environment variables hold values the service cannot run with."""


def _integer(default: int, env: str, low: int, high: int) -> Any:
    return Field(
        default,
        validation_alias=env,
        ge=low,
        le=high,
        description=f"an integer from {low} to {high}",
    )


def _number(default: float, env: str, high: float, unit: str) -> Any:
    # allow_inf_nan=False: NaN would pass neither bound check in a config, so refuse it plainly.
    return Field(
        default,
        validation_alias=env,
        ge=0.0,
        le=high,
        allow_inf_nan=False,
        description=f"a number of {unit} from 0 to {high:g}",
    )


def _one_of(choices: tuple[str, ...], *, fold_case: bool = False) -> AfterValidator:
    def check(value: str) -> str:
        value = value.upper() if fold_case else value
        if value not in choices:
            raise ValueError("not one of the choices")
        return value

    return AfterValidator(check)


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _default_queue_bound(data: dict[str, Any]) -> int:
    # pydantic calls this only when every field before it validated (see _CONSEQUENTIAL).
    return contract.default_max_queued_rows(data["max_batch_size"])


#: Error types that follow from another problem already reported (the queue bound's default
#: cannot be computed from a bad MAX_BATCH_SIZE); they would only repeat it.
_CONSEQUENTIAL: Final = frozenset({"default_factory_not_called"})


_Stripped = BeforeValidator(_strip)


class Settings(BaseModel):
    """Validated runtime settings of the inference server (see ``service.contract.ENV``).

    Build it with :func:`load_settings` from an environment, or by field name in code and tests
    (the same validation runs either way).
    """

    # extra="forbid": a misspelt field in code is an error. The environment's many unrelated
    # variables never reach the model: load_settings passes only the contract's names.
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    port: int = _integer(contract.DEFAULT_PORT, _ENV.PORT, 1, 65535)
    host: str = contract.BIND_HOST
    model_name: Annotated[str, _Stripped] = Field(
        contract.DEFAULT_MODEL_NAME,
        validation_alias=_ENV.MODEL_NAME,
        pattern=_MODEL_NAME,
        description="1-128 letters, digits, '_', '.' or '-', starting alphanumeric",
    )
    model_uri: Annotated[str, _Stripped] = Field(
        contract.BUNDLED_MODEL_DIR,
        validation_alias=_ENV.MODEL_URI,
        min_length=1,
        description="a local path or an s3://bucket/key URI",
    )
    device: Annotated[str, _Stripped, _one_of(contract.DEVICES)] = Field(
        "auto", validation_alias=_ENV.DEVICE, description="one of " + ", ".join(contract.DEVICES)
    )
    max_batch_size: int = _integer(
        contract.DEFAULT_MAX_BATCH_SIZE, _ENV.MAX_BATCH_SIZE, 1, MAX_BATCH_SIZE_LIMIT
    )
    batch_timeout_ms: float = _number(
        contract.DEFAULT_BATCH_TIMEOUT_MS,
        _ENV.BATCH_TIMEOUT_MS,
        MAX_BATCH_TIMEOUT_MS,
        "milliseconds",
    )
    max_request_bytes: int = _integer(
        contract.DEFAULT_MAX_REQUEST_BYTES, _ENV.MAX_REQUEST_BYTES, MIN_REQUEST_BYTES, 2**31 - 1
    )
    api_key_secret_arn: Annotated[str | None, _Stripped] = Field(
        None,
        validation_alias=_ENV.API_KEY_SECRET_ARN,
        pattern=_SECRET_ARN,
        description="a Secrets Manager ARN like arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME",
    )
    aws_region: Annotated[str | None, _Stripped] = Field(
        None,
        validation_alias=_ENV.AWS_REGION,
        pattern=contract.AWS_REGION_PATTERN,
        description="an AWS region name like eu-west-1",
    )
    log_level: Annotated[str, _Stripped, _one_of(LOG_LEVELS, fold_case=True)] = Field(
        contract.DEFAULT_LOG_LEVEL,
        validation_alias=_ENV.LOG_LEVEL,
        description="one of " + ", ".join(LOG_LEVELS),
    )
    torch_threads: int = _integer(
        contract.DEFAULT_TORCH_THREADS, _ENV.TORCH_THREADS, 1, MAX_TORCH_THREADS
    )
    #: Rows the batcher may hold queued; past it requests get 503 + Retry-After at once. Unset,
    #: it follows the batch size (``contract.default_max_queued_rows``), so it comes after it.
    max_queued_rows: int = Field(
        default_factory=_default_queue_bound,
        validation_alias=_ENV.MAX_QUEUED_ROWS,
        ge=1,
        le=MAX_QUEUED_ROWS_LIMIT,
        description=f"an integer from 1 to {MAX_QUEUED_ROWS_LIMIT}",
    )
    #: Seconds after SIGTERM during which the listener stays open and answers ``Connection: close``.
    drain_period_seconds: float = _number(
        float(contract.SHUTDOWN.drain_period_seconds),
        _ENV.DRAIN_PERIOD_SECONDS,
        MAX_DRAIN_PERIOD_SECONDS,
        "seconds",
    )


#: Field of each environment variable the settings read, in the model's order.
_FIELD_OF_VARIABLE: Final[dict[str, str]] = {
    info.validation_alias: name
    for name, info in Settings.model_fields.items()
    if isinstance(info.validation_alias, str)
}


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from ``environ``; raise :class:`SettingsError` naming every bad one.

    Unset (or empty) variables take the contract's defaults; ``MODEL_URI`` falls back to the
    bundled model directory and ``MAX_QUEUED_ROWS`` to ``contract.default_max_queued_rows``.
    Variables the service does not read are ignored: a process environment holds many.
    """
    given = {name: environ[name] for name in _FIELD_OF_VARIABLE if environ.get(name)}
    try:
        return Settings.model_validate(given)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, given)) from None


def _describe(error: ValidationError, given: Mapping[str, str]) -> str:
    """One ``NAME='value' is not allowed: expected ...`` per bad variable, in the model's order."""
    problems: list[str] = []
    for item in error.errors():
        if item["type"] in _CONSEQUENTIAL:
            continue
        variable = str(item["loc"][0]) if item["loc"] else ""
        field: FieldInfo | None = Settings.model_fields.get(_FIELD_OF_VARIABLE.get(variable, ""))
        allowed = field.description if field is not None else None
        raw = given.get(variable, item["input"])
        problem = f"{variable}={raw!r} is not allowed: expected {allowed or item['msg']}"
        if problem not in problems:
            problems.append(problem)
    return "invalid configuration: " + "; ".join(problems)
