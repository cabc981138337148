"""`make preflight`: read-only checks of an AWS account before the first `pulumi up`."""
