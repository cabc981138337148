"""Fixtures of the benchmark tests: ``wrk`` is needed by some, and CI can insist on it."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def wrk() -> str:
    """The path of ``wrk``; skips without it, but fails when ``REQUIRE_WRK=1``."""
    path = shutil.which("wrk")
    if path is None:
        if os.environ.get("REQUIRE_WRK") == "1":
            pytest.fail("REQUIRE_WRK=1 but wrk is not installed (apt-get install -y wrk)")
        pytest.skip("wrk is not installed (apt-get install -y wrk); REQUIRE_WRK=1 makes this fail")
    return path
