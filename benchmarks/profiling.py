"""Sample a running server with py-spy and boil the stacks down to where its time goes.

py-spy attaches to the server's process from outside (no code change, little overhead) and
records every thread's Python stack ``rate`` times a second, idle or not (``--idle``), so a
function's share of a thread's samples is its share of that thread's wall time. Native code
shows under the Python frame that called it: time in uvloop's C event loop (epoll waits
included) appears as ``Runner.run``, a worker blocked on a condition as ``Condition.wait``, torch
kernels under the Python frame that invoked them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

RATE_HZ: Final = 200
#: "thread (1234): inference-worker" roots every stack recorded with ``--threads``.
_THREAD_FRAME: Final = re.compile(r"^thread \((?:0x)?[0-9a-fA-F]+\)(?:: (?P<name>.*))?$")
# "function (path/to/file.py:123)" -> "function (file.py)": lines split one function apart.
_FRAME: Final = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


class ProfileError(RuntimeError):
    """py-spy is missing, could not attach, or wrote nothing."""


@dataclass
class ThreadProfile:
    """Where one thread's samples went."""

    name: str
    samples: int = 0
    #: Samples whose innermost Python frame is this function (native code it calls included).
    own: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Profile:
    """A parsed py-spy recording."""

    seconds: float
    rate_hz: int
    threads: dict[str, ThreadProfile]

    @property
    def expected_samples(self) -> float:
        """Samples a thread that never idled would have."""
        return self.seconds * self.rate_hz


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['func']} ({Path(match['file']).name})"


def parse_raw(text: str, seconds: float, rate_hz: int) -> Profile:
    """Parse py-spy's ``--format raw --threads`` output (collapsed stacks with counts)."""
    threads: dict[str, ThreadProfile] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit() or not stack_text:
            raise ProfileError(f"not a py-spy raw line: {line[:200]!r}")
        frames = stack_text.split(";")
        thread_match = _THREAD_FRAME.match(frames[0])
        if thread_match is not None:
            name = thread_match["name"] or frames[0]
            frames = frames[1:]
        else:
            name = "(all threads)"
        count = int(count_text)
        profile = threads.setdefault(name, ThreadProfile(name))
        profile.samples += count
        names = [_short(frame) for frame in frames]
        if names:
            profile.own[names[-1]] += count
    return Profile(seconds, rate_hz, threads)


def record(
    pid: int, seconds: float, output: Path, rate_hz: int = RATE_HZ, *, gil: bool = False
) -> Profile:
    """Sample process ``pid`` (and its threads) for ``seconds`` and return the parsed profile.

    By default every thread is sampled, idle or not. With ``gil`` only the thread holding the
    GIL is, so each thread's samples measure how long it held the GIL.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise ProfileError("py-spy is not installed (pip install py-spy)")
    command = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(round(seconds), 1)),
        "--rate",
        str(rate_hz),
        "--format",
        "raw",
        "--threads",
        "--gil" if gil else "--idle",
        "--nonblocking",
        "--output",
        str(output),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0 or not output.exists():
        raise ProfileError(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
    return parse_raw(output.read_text(), max(round(seconds), 1), rate_hz)


def summarize(profile: Profile, threads: tuple[str, ...], top: int = 8) -> str:
    """Markdown: for each named thread, the innermost frames that took most of its wall time."""
    parts = []
    for name in threads:
        thread = profile.threads.get(name)
        if thread is None or thread.samples == 0:
            parts.append(f"- thread `{name}`: no samples")
            continue
        own = ", ".join(
            f"`{frame}` {count / thread.samples:.0%}"
            for frame, count in thread.own.most_common(top)
        )
        parts.append(f"- thread `{name}` ({thread.samples} samples): {own}")
    return "\n".join(parts)


def summarize_gil(profile: Profile, top: int = 5) -> str:
    """Markdown: how much of the wall time the GIL was held, by which thread, doing what."""
    expected = profile.expected_samples
    held = sum(thread.samples for thread in profile.threads.values())
    lines = [f"- GIL held {held / expected:.0%} of the wall time" if expected else "- no samples"]
    for thread in sorted(profile.threads.values(), key=lambda t: t.samples, reverse=True):
        if thread.samples < 0.01 * expected:
            continue  # held for under 1 % of the time: noise
        frames = ", ".join(
            f"`{frame}` {count / expected:.0%}" for frame, count in thread.own.most_common(top)
        )
        lines.append(f"- by `{thread.name}` {thread.samples / expected:.0%}: {frames}")
    return "\n".join(lines)
