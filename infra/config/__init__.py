"""One typed, validated view of a stack's configuration (``load_stack_config``).

- ``infra/environments.py``: every default, per environment kind (the one place they live).
- ``kinds``: the choices (enums), ``ConfigError``, ``SecretStr`` and ``NodeScaling``.
- ``fields``: single-key rules (pydantic validators) and their "what is allowed" texts.
- ``model``: ``StackConfig``, a frozen pydantic model with camelCase aliases, and the rules
  between keys.
- ``loader``: raw Pulumi config in, ``StackConfig`` or one ``ConfigError`` with every problem out.
"""

from infra.config.fields import GPU_FAMILIES
from infra.config.kinds import (
    PROJECT,
    CapacityType,
    CiRunner,
    ConfigError,
    Environment,
    ImageVariant,
    NatPolicy,
    NodeScaling,
    SecretStr,
    ServiceType,
)
from infra.config.loader import (
    CLUSTER_ONLY_KEYS,
    KNOWN_KEYS,
    MIN_API_KEY_LENGTH,
    RETIRED_KEYS,
    UNSET_SENTINELS,
    environment_of,
    from_pulumi,
    is_unset,
    load_stack_config,
    raw_config_from_pulumi,
    require_image_ref,
)
from infra.config.model import (
    ACCESS_ROLE_KEYS,
    IMAGE_REF,
    IMAGE_REF_NONE,
    MAX_EXPIRY_HOURS,
    ROLLOUT_MAX_SURGE,
    StackConfig,
    gpus_of,
    partition_of,
)
from infra.environments import COMMON_DEFAULTS, ENVIRONMENT_DEFAULTS

__all__ = [
    "ACCESS_ROLE_KEYS",
    "CLUSTER_ONLY_KEYS",
    "COMMON_DEFAULTS",
    "ENVIRONMENT_DEFAULTS",
    "GPU_FAMILIES",
    "IMAGE_REF",
    "IMAGE_REF_NONE",
    "KNOWN_KEYS",
    "MAX_EXPIRY_HOURS",
    "MIN_API_KEY_LENGTH",
    "PROJECT",
    "RETIRED_KEYS",
    "ROLLOUT_MAX_SURGE",
    "UNSET_SENTINELS",
    "CapacityType",
    "CiRunner",
    "ConfigError",
    "Environment",
    "ImageVariant",
    "NatPolicy",
    "NodeScaling",
    "SecretStr",
    "ServiceType",
    "StackConfig",
    "environment_of",
    "from_pulumi",
    "gpus_of",
    "is_unset",
    "load_stack_config",
    "partition_of",
    "raw_config_from_pulumi",
    "require_image_ref",
]
