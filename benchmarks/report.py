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


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, markdown: str, results: Path = RESULTS) -> None:
    """Replace (or append) the section called ``name`` in the results file with ``markdown``."""
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"section name {name!r} must match [a-z0-9-]+")
    start, end = _markers(name)
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = results.read_text() if results.exists() else _HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)


def section_of(text: str, name: str) -> str | None:
    """Section ``name`` of ``text``, from its start marker to its end marker (not included).

    ``None`` if ``text`` has no such section; one whose end marker is missing runs to the end.
    """
    start, end = _markers(name)
    begin = text.find(start)
    if begin < 0:
        return None
    stop = text.find(end, begin)
    return text[begin : stop if stop >= 0 else len(text)]


def read_section(name: str, results: Path = RESULTS) -> str | None:
    """The text between the markers of section ``name`` in the results file, or ``None``."""
    section = section_of(results.read_text(), name) if results.exists() else None
    return None if section is None else section[len(_markers(name)[0]) :]
