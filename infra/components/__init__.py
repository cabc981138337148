"""Pulumi components: one ComponentResource per concern, composed by infra/__main__.py."""
