"""The service's API key in Secrets Manager, readable only by the service's pods.

(Named for what it holds, not ``secrets``: infra/ is first on ``sys.path`` when Pulumi runs
the program, and a ``secrets.py`` there would shadow the standard library's.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.aws.iam import AccountContext, account_root_statement, document, pod_identity_trust
from infra.components.types import component_options, type_token
from infra.config import SecretStr

#: The only actions the service's role may perform.
SECRET_READ_ACTION: Final = "secretsmanager:GetSecretValue"  # noqa: S105 - an IAM action
KEY_DECRYPT_ACTION: Final = "kms:Decrypt"
GENERATED_KEY_LENGTH: Final = 48


def reader_policy(secret_arn: str, key_arn: str, region: str) -> str:
    """Read one secret, and decrypt with one key only when Secrets Manager asks on our behalf."""
    return document(
        [
            {
                "Sid": "ReadTheApiKey",
                "Effect": "Allow",
                "Action": SECRET_READ_ACTION,
                "Resource": secret_arn,
            },
            {
                "Sid": "DecryptThroughSecretsManager",
                "Effect": "Allow",
                "Action": KEY_DECRYPT_ACTION,
                "Resource": key_arn,
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
                },
            },
        ]
    )


@dataclass(frozen=True)
class ApiKeySecretArgs:
    """Inputs of ``ApiKeySecret``."""

    secret_name: str
    #: A key from ``pulumi config set --secret apiKey``; ``None`` generates one.
    api_key: SecretStr | None
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    namespace: str
    service_account: str
    recovery_window_days: int
    deletion_protection: bool
    tags: Mapping[str, str]


class ApiKeySecret(pulumi.ComponentResource):
    """KMS key + secret + the Pod Identity role and association that let the pods read it.

    The API key is only ever an ``Output.secret``: encrypted in state, masked in every preview.
    """

    secret_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ApiKeySecretArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("secrets", "ApiKeySecret")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        self._name, self._args = name, args
        self._ctx = AccountContext(self)
        self._child = pulumi.ResourceOptions(parent=self)
        key, secret = self._key_and_secret()
        aws.secretsmanager.SecretVersion(
            f"{name}-version", secret_id=secret.id, secret_string=self._value(), opts=self._child
        )
        role, association = self._reader(secret, key)
        # The ARN is handed out only once the association exists: a pod created earlier would
        # never get credentials injected, so whatever uses the ARN must wait for it.
        self.secret_arn = pulumi.Output.all(secret.arn, association.association_arn).apply(
            lambda v: str(v[0])
        )
        self.key_arn = key.arn
        self.role_arn = role.arn
        self.register_outputs(
            {"secret_arn": self.secret_arn, "key_arn": self.key_arn, "role_arn": self.role_arn}
        )

    def _key_and_secret(self) -> tuple[aws.kms.Key, aws.secretsmanager.Secret]:
        """The secret's own KMS key, and the secret (both protected where the stack asks)."""
        name, args, ctx = self._name, self._args, self._ctx
        protected = pulumi.ResourceOptions(parent=self, protect=args.deletion_protection)
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Secrets Manager secret {args.secret_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30 if args.deletion_protection else 7,
            policy=pulumi.Output.all(ctx.partition, ctx.account_id).apply(
                lambda v: document([account_root_statement(v[0], v[1])])
            ),
            tags=dict(args.tags),
            opts=protected,
        )
        secret = aws.secretsmanager.Secret(
            f"{name}-secret",
            # A prefix, not a fixed name: a deleted secret keeps its name for its whole recovery
            # window (7-30 days), so `destroy` then `up`, or a replacement, would collide with it
            # (https://docs.aws.amazon.com/secretsmanager/latest/userguide/manage_delete-restore-secret.html).
            # The service finds the secret by ARN, never by name.
            name_prefix=f"{args.secret_name}-",
            description="API key the inference service requires on its inference routes",
            kms_key_id=key.arn,
            recovery_window_in_days=args.recovery_window_days,
            tags=dict(args.tags),
            opts=protected,
        )
        return key, secret

    def _value(self) -> pulumi.Output[str]:
        """The configured key, or a generated one; a secret Output either way."""
        if self._args.api_key is not None:
            return pulumi.Output.secret(self._args.api_key.reveal())
        generated = random.RandomPassword(
            f"{self._name}-value",
            length=GENERATED_KEY_LENGTH,
            # Header-safe: letters and digits only.
            special=False,
            opts=self._child,
        )
        return pulumi.Output.secret(generated.result)

    def _reader(
        self, secret: aws.secretsmanager.Secret, key: aws.kms.Key
    ) -> tuple[aws.iam.Role, aws.eks.PodIdentityAssociation]:
        """The Pod Identity role allowed to read this one secret, and its association."""
        name, args, ctx = self._name, self._args, self._ctx
        role = aws.iam.Role(
            f"{name}-reader-role",
            assume_role_policy=pulumi.Output.all(ctx.account_id, args.cluster_arn).apply(
                lambda v: pod_identity_trust(v[0], v[1])
            ),
            description=f"Pods of {args.namespace}/{args.service_account}: read the API key",
            tags=dict(args.tags),
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{name}-reader-policy",
            role=role.id,
            policy=pulumi.Output.all(secret.arn, key.arn, ctx.region).apply(
                lambda v: reader_policy(v[0], v[1], v[2])
            ),
            opts=self._child,
        )
        association = aws.eks.PodIdentityAssociation(
            f"{name}-pod-identity",
            cluster_name=args.cluster_name,
            namespace=args.namespace,
            service_account=args.service_account,
            role_arn=role.arn,
            tags=dict(args.tags),
            # One association per namespace + service account: the old one must go first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        return role, association
