"""bench/RESULTS.md, written section by section: each bench replaces its own."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(text: str, section: str) -> None:
    """Put *text* in RESULTS.md in place of the section headed *section* (else at the end)."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = current.find(section)
    if start >= 0:
        following = current.find("\n## ", start + len(section))
        current = current[:start] + current[following + 1 :] if following != -1 else current[:start]
    RESULTS.write_text(current.rstrip("\n") + "\n\n" + text)
