"""The service's settings, read once from the environment and validated before anything starts.

Every bad value stops start-up with one message that names the variable, the value given and
what is allowed, so a misconfigured Deployment fails fast and says why in its first log line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from service import contract

_ENV = contract.ENV
_T = TypeVar("_T")

MAX_BATCH_SIZE_LIMIT = 4096
MAX_BATCH_TIMEOUT_MS = 10_000.0
MIN_REQUEST_BYTES = 1024
MAX_TORCH_THREADS = 256
MAX_QUEUED_ROWS_LIMIT = 1_000_000
MAX_DRAIN_PERIOD_SECONDS = 300.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^\s]+$")
_REGION = re.compile(contract.AWS_REGION_PATTERN)


class SettingsError(ValueError):
    """One or more environment variables hold values the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    """Validated runtime settings of the inference server (see ``service.contract.ENV``)."""

    port: int = contract.DEFAULT_PORT
    host: str = contract.BIND_HOST
    model_name: str = contract.DEFAULT_MODEL_NAME
    model_uri: str = contract.BUNDLED_MODEL_DIR
    device: str = "auto"
    max_batch_size: int = contract.DEFAULT_MAX_BATCH_SIZE
    batch_timeout_ms: float = contract.DEFAULT_BATCH_TIMEOUT_MS
    max_request_bytes: int = contract.DEFAULT_MAX_REQUEST_BYTES
    api_key_secret_arn: str | None = None
    aws_region: str | None = None
    log_level: str = contract.DEFAULT_LOG_LEVEL
    torch_threads: int = contract.DEFAULT_TORCH_THREADS
    #: Rows the batcher may hold queued; past it requests get 503 + Retry-After at once.
    max_queued_rows: int = contract.DEFAULT_MAX_QUEUED_ROWS
    #: Seconds after SIGTERM during which the listener stays open and answers ``Connection: close``.
    drain_period_seconds: float = float(contract.SHUTDOWN.drain_period_seconds)


def _int_in_range(low: int, high: int) -> tuple[Callable[[str], int], str]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not low <= value <= high:
            raise ValueError
        return value

    return parse, f"an integer from {low} to {high}"


def _float_in_range(
    low: float, high: float, unit: str = "milliseconds"
) -> tuple[Callable[[str], float], str]:
    def parse(raw: str) -> float:
        value = float(raw.strip())
        # NaN fails both comparisons, so it is rejected here too.
        if not low <= value <= high:
            raise ValueError
        return value

    return parse, f"a number of {unit} from {low:g} to {high:g}"


def _one_of(
    choices: tuple[str, ...], *, fold_case: bool = False
) -> tuple[Callable[[str], str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if fold_case else raw.strip()
        if value not in choices:
            raise ValueError
        return value

    return parse, "one of " + ", ".join(choices)


def _matching(pattern: re.Pattern[str], description: str) -> tuple[Callable[[str], str], str]:
    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw.strip()):
            raise ValueError
        return raw.strip()

    return parse, description


_NON_EMPTY = _matching(re.compile(r"\S.*", re.DOTALL), "a local path or an s3://bucket/key URI")


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from ``environ``; raise :class:`SettingsError` naming every bad one.

    Unset (or empty) variables take the contract's defaults; ``MODEL_URI`` falls back to the
    bundled model directory and ``MAX_QUEUED_ROWS`` to ``contract.default_max_queued_rows``.
    """
    problems: list[str] = []

    def read(name: str, rule: tuple[Callable[[str], _T], str], default: _T) -> _T:
        raw = environ.get(name)
        if raw is None or raw == "":
            return default
        parse, allowed = rule
        try:
            return parse(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not allowed: expected {allowed}")
            return default

    defaults = Settings()
    settings = Settings(
        port=read(_ENV.PORT, _int_in_range(1, 65535), defaults.port),
        model_name=read(
            _ENV.MODEL_NAME,
            _matching(_MODEL_NAME, "1-128 letters, digits, '_', '.' or '-', starting alphanumeric"),
            defaults.model_name,
        ),
        model_uri=read(_ENV.MODEL_URI, _NON_EMPTY, defaults.model_uri),
        device=read(_ENV.DEVICE, _one_of(contract.DEVICES), defaults.device),
        max_batch_size=read(
            _ENV.MAX_BATCH_SIZE, _int_in_range(1, MAX_BATCH_SIZE_LIMIT), defaults.max_batch_size
        ),
        batch_timeout_ms=read(
            _ENV.BATCH_TIMEOUT_MS,
            _float_in_range(0.0, MAX_BATCH_TIMEOUT_MS),
            defaults.batch_timeout_ms,
        ),
        max_request_bytes=read(
            _ENV.MAX_REQUEST_BYTES,
            _int_in_range(MIN_REQUEST_BYTES, 2**31 - 1),
            defaults.max_request_bytes,
        ),
        api_key_secret_arn=read(
            _ENV.API_KEY_SECRET_ARN,
            _matching(
                _SECRET_ARN,
                "a Secrets Manager ARN like arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME",
            ),
            None,
        ),
        aws_region=read(
            _ENV.AWS_REGION, _matching(_REGION, "an AWS region name like eu-west-1"), None
        ),
        log_level=read(_ENV.LOG_LEVEL, _one_of(LOG_LEVELS, fold_case=True), defaults.log_level),
        torch_threads=read(
            _ENV.TORCH_THREADS, _int_in_range(1, MAX_TORCH_THREADS), defaults.torch_threads
        ),
    )
    max_batch_size = settings.max_batch_size
    settings = replace(
        settings,
        max_queued_rows=read(
            _ENV.MAX_QUEUED_ROWS,
            _int_in_range(1, MAX_QUEUED_ROWS_LIMIT),
            contract.default_max_queued_rows(max_batch_size),
        ),
        drain_period_seconds=read(
            _ENV.DRAIN_PERIOD_SECONDS,
            _float_in_range(0.0, MAX_DRAIN_PERIOD_SECONDS, "seconds"),
            defaults.drain_period_seconds,
        ),
    )
    if problems:
        raise SettingsError("invalid configuration: " + "; ".join(problems))
    return settings
