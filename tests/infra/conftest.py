"""Fixtures of the whole-program tests (tests/stack_inventory.py)."""

from tests.stack_inventory import any_stack, long_lived, stack_run

__all__ = ["any_stack", "long_lived", "stack_run"]
