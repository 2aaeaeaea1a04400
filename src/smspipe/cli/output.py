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


# What _ENCODER.encode builds on every call (a C encoder, and a Python closure it
# does not even use), built once. Its circular-reference markers are emptied
# again by the encoder on success, and by us on failure.
_markers: dict[int, Any] = {}
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode = (
    None
    if _make_encoder is None
    else _make_encoder(
        _markers, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
)


def dumps(value: Any) -> str:
    """Compact JSON for one NDJSON line: UTF-8 kept, odd line breaks escaped."""
    if _c_encode is not None and type(value) is dict:
        try:
            text = "".join(_c_encode(value, 0))
        except BaseException:
            _markers.clear()
            raise
    else:
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


class ErrLines:
    """Lines for stderr (secrets masked), written in batches when it is not a terminal.

    A line-buffered stderr makes a write system call per line, which adds up
    over thousands of warnings. Lines keep their order; :meth:`flush` (also on
    leaving a ``with`` block) writes what is held. On a terminal every line is
    written at once.
    """

    def __init__(self, size: int = 256) -> None:
        self._held: list[str] | None = None if is_terminal(sys.stderr) else []
        self._size = size

    def add(self, line: str) -> None:
        held = self._held
        if held is None:
            err(line)
            return
        held.append(redact(line) + "\n")
        if len(held) >= self._size:
            self.flush()

    def flush(self) -> None:
        if self._held:
            sys.stderr.write("".join(self._held))
            self._held.clear()

    def __enter__(self) -> ErrLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    # Markup and highlighting off: user and API text is printed as it is.
    return Console(stderr=stderr, markup=False, highlight=False, emoji=False, soft_wrap=True)


def plural(count: int, word: str, plural_word: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural_word or word + 's')}"
