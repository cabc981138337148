"""Write one benchmark's section into ``benchmarks/results.md`` without touching the others.

Several benchmarks (service, container, ...) share one results file; each owns the text between
its own pair of HTML comment markers, so re-running one benchmark keeps the others' figures.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.md"
_HEADER = (
    "# Benchmark results\n\n"
    "Written by the scripts in `benchmarks/`; each section says how it was measured.\n"
)


def write_section(name: str, markdown: str, results: Path = RESULTS) -> None:
    """Replace (or append) the section called ``name`` in the results file with ``markdown``."""
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"section name {name!r} must match [a-z0-9-]+")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = results.read_text() if results.exists() else _HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)


def read_section(name: str, results: Path = RESULTS) -> str | None:
    """The text of the section called ``name`` in the results file, or ``None``."""
    if not results.exists():
        return None
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    found = re.search(re.escape(start) + r"(.*?)" + re.escape(end), results.read_text(), re.DOTALL)
    return found.group(1) if found else None
