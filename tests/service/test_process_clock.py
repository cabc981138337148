"""The start-up clock counts from the kernel's start of the process, not from the first import."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import REPO_ROOT


def test_a_process_that_slept_before_importing_reports_its_whole_age() -> None:
    code = (
        "import time; time.sleep(0.5)\n"
        "from service.process_clock import seconds_since_process_start\n"
        "print(seconds_since_process_start())"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    elapsed = time.monotonic() - started
    age = float(done.stdout)
    # The sleep happened before the module was imported, and is counted (10 ms ticks).
    assert 0.5 <= age <= elapsed + 0.02
