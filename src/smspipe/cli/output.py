"""Rendering: NDJSON for pipes, rich for terminals, plain lines on stderr.

rich is imported only when something is rendered to a terminal, so that a
piped ``validate`` starts fast.
"""

from __future__ import annotations

import json
import sys
from typing import IO, TYPE_CHECKING, Any

from smspipe.errors import redact

if TYPE_CHECKING:
    from rich.console import Console


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# Characters that some line readers (Python's str.splitlines, JavaScript) take
# for line breaks: escaped, so that one NDJSON record is always one line.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


# json.dumps with these options builds a new encoder on every call; one will do.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON for one NDJSON line: UTF-8 kept, odd line breaks escaped."""
    text = _ENCODER.encode(value)
    if not text.isascii():
        for char, escaped in _LINE_BREAKS.items():
            if char in text:
                text = text.replace(char, escaped)
    return text


def write_json_line(value: Any, stream: IO[str] | None = None, *, flush: bool = False) -> None:
    out = sys.stdout if stream is None else stream
    out.write(dumps(value) + "\n")
    if flush:
        out.flush()


def write_json_pretty(value: Any, stream: IO[str] | None = None) -> None:
    out = sys.stdout if stream is None else stream
    out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def err(line: str) -> None:
    """A plain line on stderr, secrets masked."""
    sys.stderr.write(redact(line) + "\n")


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    # Markup and highlighting off: user and API text is printed as it is.
    return Console(stderr=stderr, markup=False, highlight=False, emoji=False, soft_wrap=True)


def plural(count: int, word: str, plural_word: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural_word or word + 's')}"
