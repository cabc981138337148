"""Settings from the environment: the contract's defaults, and one clear message per bad value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service import contract
from service.settings import Settings, SettingsError, load_settings

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:inference-api-key-AbCdEf"


def test_defaults_come_from_the_contract() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.port == contract.DEFAULT_PORT
    assert settings.model_uri == contract.BUNDLED_MODEL_DIR
    assert settings.model_name == contract.DEFAULT_MODEL_NAME
    assert settings.max_batch_size == contract.DEFAULT_MAX_BATCH_SIZE
    assert settings.batch_timeout_ms == contract.DEFAULT_BATCH_TIMEOUT_MS
    assert settings.api_key_secret_arn is None


def test_every_variable_is_read() -> None:
    env = contract.ENV
    settings = load_settings(
        {
            env.PORT: "9000",
            env.MODEL_NAME: "resnet-50",
            env.MODEL_URI: "s3://models/resnet/1",
            env.DEVICE: "cuda",
            env.MAX_BATCH_SIZE: "64",
            env.BATCH_TIMEOUT_MS: "2.5",
            env.MAX_REQUEST_BYTES: "1048576",
            env.API_KEY_SECRET_ARN: ARN,
            env.AWS_REGION: "eu-west-1",
            env.LOG_LEVEL: "debug",
            env.TORCH_THREADS: "4",
            env.MAX_QUEUED_ROWS: "500",
            env.DRAIN_PERIOD_SECONDS: "2.5",
        }
    )
    assert settings == Settings(
        port=9000,
        model_name="resnet-50",
        model_uri="s3://models/resnet/1",
        device="cuda",
        max_batch_size=64,
        batch_timeout_ms=2.5,
        max_request_bytes=1048576,
        api_key_secret_arn=ARN,
        aws_region="eu-west-1",
        log_level="DEBUG",
        torch_threads=4,
        max_queued_rows=500,
        drain_period_seconds=2.5,
    )


def test_the_queue_bound_follows_the_batch_size_unless_set() -> None:
    # Two full batches by default, so a bigger MAX_BATCH_SIZE never makes every request a 503.
    settings = load_settings({contract.ENV.MAX_BATCH_SIZE: "100"})
    assert settings.max_queued_rows == contract.DEFAULT_QUEUED_BATCHES * 100
    # Batching off must not turn 5 concurrent requests into 503s.
    unbatched = load_settings({contract.ENV.MAX_BATCH_SIZE: "1"})
    assert unbatched.max_queued_rows == contract.DEFAULT_MAX_QUEUED_ROWS == 64
    assert Settings().drain_period_seconds == contract.SHUTDOWN.drain_period_seconds


def test_shutdown_timings_that_overrun_the_grace_period_are_refused() -> None:
    with pytest.raises(ValueError, match="shutdown needs 41 s but the grace period is 30 s"):
        contract.Shutdown(drain_seconds=26)


def test_empty_values_mean_unset() -> None:
    assert load_settings({contract.ENV.MODEL_URI: "", contract.ENV.PORT: ""}) == Settings()


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("MAX_BATCH_SIZE", "0", "an integer from 1 to 4096"),
        ("MAX_BATCH_SIZE", "many", "an integer from 1 to 4096"),
        ("DEVICE", "gpu", "one of auto, cpu, cuda"),
        ("PORT", "abc", "an integer from 1 to 65535"),
        ("PORT", "70000", "an integer from 1 to 65535"),
        ("BATCH_TIMEOUT_MS", "-1", "a number of milliseconds from 0 to 10000"),
        ("BATCH_TIMEOUT_MS", "nan", "a number of milliseconds from 0 to 10000"),
        ("MAX_REQUEST_BYTES", "10", "an integer from 1024"),
        ("LOG_LEVEL", "chatty", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("MODEL_NAME", "../etc", "letters, digits"),
        ("API_KEY_SECRET_ARN", "my-secret", "a Secrets Manager ARN"),
        ("AWS_REGION", "Europe", "an AWS region name"),
        ("TORCH_THREADS", "0", "an integer from 1 to 256"),
        ("MAX_QUEUED_ROWS", "0", "an integer from 1 to 1000000"),
        ("DRAIN_PERIOD_SECONDS", "-1", "a number of seconds from 0 to 300"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(
    name: str, value: str, allowed: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    message = str(caught.value)
    assert f"{name}={value!r}" in message
    assert allowed in message


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"MAX_BATCH_SIZE": "0", "DEVICE": "gpu"})
    assert "MAX_BATCH_SIZE='0'" in str(caught.value)
    assert "DEVICE='gpu'" in str(caught.value)


def test_values_are_read_without_surrounding_whitespace() -> None:
    env = contract.ENV
    settings = load_settings({env.PORT: " 9000 ", env.LOG_LEVEL: " warning\n", env.DEVICE: "cpu "})
    assert (settings.port, settings.log_level, settings.device) == (9000, "WARNING", "cpu")


def test_only_the_contracts_variable_names_are_read() -> None:
    # A process environment holds many unrelated variables; none of them is an error, and the
    # fields' own names (lower case) are not a second way in.
    settings = load_settings({"PATH": "/usr/bin", "HOME": "/root", "port": "1", "device": "gpu"})
    assert settings == Settings()


def test_settings_built_in_code_are_validated_and_misspelt_fields_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(port=0)
    with pytest.raises(ValidationError, match="max_batch"):
        Settings.model_validate({"max_batch": 8})
    assert Settings(max_batch_size=100).max_queued_rows == contract.DEFAULT_QUEUED_BATCHES * 100


def test_a_bad_batch_size_is_reported_once_not_again_through_the_queue_bound() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"MAX_BATCH_SIZE": "many"})
    message = str(caught.value)
    assert message.count("is not allowed") == 1
    assert "MAX_QUEUED_ROWS" not in message


def test_all_problems_come_in_the_order_of_the_contract() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                "DRAIN_PERIOD_SECONDS": "forever",
                "AWS_REGION": "mars-1",
                "PORT": "0",
                "LOG_LEVEL": "loud",
                "MODEL_URI": "  ",
            }
        )
    message = str(caught.value)
    order = ["PORT=", "MODEL_URI=", "AWS_REGION=", "LOG_LEVEL=", "DRAIN_PERIOD_SECONDS="]
    positions = [message.index(name) for name in order]
    assert positions == sorted(positions)
    assert message.count("is not allowed") == len(order)
    assert "AWS_REGION='mars-1' is not allowed: expected an AWS region name" in message


@pytest.mark.parametrize(
    "region", ["eu-west-1", "us-gov-west-1", "us-isob-east-1", "ap-southeast-5"]
)
def test_the_region_pattern_is_the_contracts(region: str) -> None:
    assert load_settings({contract.ENV.AWS_REGION: region}).aws_region == region
