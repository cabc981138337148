"""Tooling around the program and the service.

Plan, manifests, mocks, preflight, delivery, container, demo. Nothing under infra/ or service/
imports this package; it imports them.
"""
