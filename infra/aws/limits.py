"""Values AWS APIs accept, each written once (the config, the components and tests import them).

Sources, read 2026-12-01:
- CloudWatch Logs ``PutRetentionPolicy``: ``retentionInDays`` must be one of the listed values
  (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html).
- Secrets Manager ``DeleteSecret``: ``RecoveryWindowInDays`` is 7 to 30, or the deletion is
  immediate with ``ForceDeleteWithoutRecovery`` (the provider's ``recoveryWindowInDays: 0``)
  (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html).
"""

from __future__ import annotations

from typing import Final

#: Values CloudWatch Logs accepts for a log group's retention, in days.
CLOUDWATCH_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
#: Secrets Manager's recovery window of a deleted secret (0 means "delete at once").
SECRET_RECOVERY_DAYS_MIN: Final = 7
SECRET_RECOVERY_DAYS_MAX: Final = 30
