"""The API key: read once from AWS Secrets Manager at start-up, checked on inference routes.

The secret holds the key either as plain text or as JSON ``{"api_key": "..."}``. Errors name the
secret's ARN and the AWS error code, never the key; the key itself lives only inside
:class:`ApiKeyGuard`, whose ``repr`` does not show it, so it cannot leak into logs by accident.
"""

from __future__ import annotations

import hmac
import json

from service.contract import API_KEY_HEADER
from service.errors import UnauthorizedError

API_KEY_FIELD = "api_key"


class ApiKeyError(RuntimeError):
    """The API key could not be read from Secrets Manager, or the secret holds no usable key."""


def key_from_secret(secret_string: str | None, secret_arn: str) -> str:
    """The API key in a secret's value: the plain string, or the ``api_key`` of a JSON object."""
    if secret_string is None:
        raise ApiKeyError(
            f"secret {secret_arn} has no SecretString; store the key as text or as "
            f'{{"{API_KEY_FIELD}": "..."}} (binary secrets are not supported)'
        )
    text = secret_string.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise ApiKeyError(
                f"secret {secret_arn} starts with '{{' but is not valid JSON"
            ) from None
        key = document.get(API_KEY_FIELD) if isinstance(document, dict) else None
        if not isinstance(key, str) or not key.strip():
            raise ApiKeyError(
                f"secret {secret_arn} is a JSON object without a non-empty string "
                f"{API_KEY_FIELD!r} field"
            )
        return key.strip()
    if not text:
        raise ApiKeyError(f"secret {secret_arn} is empty")
    return text


def fetch_api_key(secret_arn: str, region: str | None) -> str:
    """Read the API key from Secrets Manager (boto3 honours ``AWS_ENDPOINT_URL``, e.g. moto)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("secretsmanager", region_name=region)
        response = client.get_secret_value(SecretId=secret_arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        raise ApiKeyError(
            f"cannot read the API key from Secrets Manager secret {secret_arn}: AWS error {code}"
        ) from None
    except BotoCoreError as exc:
        raise ApiKeyError(
            f"cannot read the API key from Secrets Manager secret {secret_arn}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    secret_string = response.get("SecretString")
    return key_from_secret(secret_string if isinstance(secret_string, str) else None, secret_arn)


class ApiKeyGuard:
    """Checks the API key of a request; lets everything through when no key is configured."""

    def __init__(self, key: str | None) -> None:
        self._key = None if key is None else key.encode("utf-8")

    @property
    def enabled(self) -> bool:
        """Whether requests must carry the key."""
        return self._key is not None

    def __repr__(self) -> str:
        return f"ApiKeyGuard(enabled={self.enabled})"

    def check(self, header_key: str | None, authorization: str | None) -> None:
        """Raise :class:`UnauthorizedError` unless the key header or a Bearer token holds the key.

        Header values arrive decoded as latin-1, so they are compared as the bytes the client
        sent; ``hmac.compare_digest`` keeps the comparison constant-time.
        """
        if self._key is None:
            return
        presented: str | None = header_key
        if presented is None and authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                presented = token.strip()
        if presented is None:
            raise UnauthorizedError(
                f"this route needs the API key in the {API_KEY_HEADER} header or as "
                "'Authorization: Bearer <key>'"
            )
        if not hmac.compare_digest(presented.encode("latin-1", "replace"), self._key):
            raise UnauthorizedError("the API key is not valid")
