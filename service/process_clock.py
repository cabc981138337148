"""Seconds since this process started, from the kernel's own record (Linux ``/proc``).

Start-up phases are logged against it, so the time spent before the first line of Python runs
(interpreter start, ``site``, the first imports) is counted too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def seconds_since_process_start() -> float | None:
    """Seconds since the kernel started this process (10 ms resolution); None off Linux."""
    try:
        # Field 22 (starttime, in clock ticks since boot) is the 20th after the command name,
        # which may itself contain spaces, hence the split on its closing parenthesis.
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return round(time.clock_gettime(time.CLOCK_BOOTTIME) - started, 3)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
