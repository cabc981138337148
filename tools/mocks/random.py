"""The random provider: generated values, marked secret as ``pulumi_random`` marks them.

``RandomPassword.result`` and ``bcryptHash`` are secret outputs of the provider (pulumi_random's
``random_password.py`` registers them with ``additional_secret_outputs=["bcryptHash", "result"]``),
so they never reach state or the plan in clear text. Values derive from the logical name, so
they are stable across runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tools.mocks.context import ID, Context, OutputFn, Secret, alnum


def _password(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    length = int(inputs.get("length") or 32)
    value = alnum("password", ctx.name, length=length)
    return {
        ID: "none",
        "result": Secret(value),
        "bcryptHash": Secret(f"$2a$10${alnum(value, length=53)}"),
    }


RESOURCES: Final[Mapping[str, OutputFn]] = {"random:index/randomPassword:RandomPassword": _password}
