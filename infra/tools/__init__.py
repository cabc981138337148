"""Command-line tools around the Pulumi program (plan, manifests)."""
