"""Reading the API key from Secrets Manager (a moto server) and checking it on requests."""

from __future__ import annotations

import json

import boto3
import pytest

from service.api_key import ApiKeyError, ApiKeyGuard, fetch_api_key, key_from_secret
from service.errors import UnauthorizedError
from tests.conftest import MOTO_REGION

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf"


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        ("plain-key", "plain-key"),
        ("  padded-key\n", "padded-key"),
        ('{"api_key": "json-key"}', "json-key"),
        ('{"api_key": "json-key", "other": 1}', "json-key"),
    ],
)
def test_key_from_secret_accepts_text_and_json(secret: str, key: str) -> None:
    assert key_from_secret(secret, ARN) == key


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (None, "has no SecretString"),
        ("", "is empty"),
        ("{not json", "is not valid JSON"),
        ('{"token": "abc"}', "without a non-empty string 'api_key'"),
        ('{"api_key": ""}', "without a non-empty string 'api_key'"),
    ],
)
def test_unusable_secrets_are_named_without_their_value(secret: str | None, expected: str) -> None:
    with pytest.raises(ApiKeyError) as caught:
        key_from_secret(secret, ARN)
    assert expected in str(caught.value)
    assert ARN in str(caught.value)
    assert "abc" not in str(caught.value)


@pytest.fixture
def secrets(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return boto3.client("secretsmanager", region_name=MOTO_REGION, endpoint_url=moto_server)


def test_fetches_the_key_from_secrets_manager(secrets: object) -> None:
    client = secrets
    plain = client.create_secret(Name="plain-key", SecretString="k-123")  # type: ignore[attr-defined]
    as_json = client.create_secret(  # type: ignore[attr-defined]
        Name="json-key", SecretString=json.dumps({"api_key": "k-456"})
    )
    assert fetch_api_key(plain["ARN"], MOTO_REGION) == "k-123"
    assert fetch_api_key(as_json["ARN"], MOTO_REGION) == "k-456"


def test_a_missing_secret_names_the_arn_and_the_aws_error_code(secrets: object) -> None:
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-XyZ123"
    with pytest.raises(ApiKeyError) as caught:
        fetch_api_key(missing, MOTO_REGION)
    assert missing in str(caught.value)
    assert "ResourceNotFoundException" in str(caught.value)


def test_the_guard_compares_keys_and_hides_them() -> None:
    guard = ApiKeyGuard("sekret-é")
    assert "sekret" not in repr(guard)
    # Starlette hands header values over decoded as latin-1; UTF-8 keys still compare equal.
    guard.check("sekret-é".encode().decode("latin-1"), None)
    guard.check(None, "Bearer " + "sekret-é".encode().decode("latin-1"))
    guard.check(None, "bearer  " + "sekret-é".encode().decode("latin-1"))
    for header, authorization in [
        (None, None),
        ("wrong", None),
        (None, "Basic sekret-é"),
        (None, "Bearer "),
    ]:
        with pytest.raises(UnauthorizedError):
            guard.check(header, authorization)
    ApiKeyGuard(None).check(None, None)  # no key configured: everything passes
