"""Delivery tooling: offline plan diffs, PR comments, ephemeral stacks and their sweeper.

Every module here is importable without the Pulumi CLI; the ones that drive Pulumi do it through
the Automation API behind small protocols so that tests can inject fakes. The workflows in
``.github/workflows`` call these modules (``python -m tools.delivery <command>``) instead of
repeating their logic in shell.
"""
