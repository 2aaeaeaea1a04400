"""Rendering: NDJSON for pipes, rich for terminals, plain lines on stderr.

rich is imported only when something is rendered to a terminal, so that a
piped ``validate`` starts fast.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from smspipe._fastpaths import use_reference
from smspipe.cli import _json_fast
from smspipe.errors import redact

if TYPE_CHECKING:
    from rich.console import Console


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# Characters that some line readers (Python's str.splitlines, JavaScript) take
# for line breaks, escaped so that one NDJSON record is always one line; and lone
# surrogates (a "\ud800" in a JSON input), which no UTF-8 stream can take: escaped
# as JSON writes them, so that the record still reads back as it was.
_ODD_CHARACTERS = "[\x85\u2028\u2029\ud800-\udfff]"
_odd: list[re.Pattern[str]] = []  # compiled on the first non-ASCII text, not at start-up


def _escape_odd(text: str) -> str:
    """*text* (not ASCII) with odd line breaks and lone surrogates escaped as \\uXXXX."""
    if not _odd:
        _odd.append(re.compile(_ODD_CHARACTERS))
    odd = _odd[0]
    return odd.sub(_escaped, text) if odd.search(text) is not None else text


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


_ENCODER = _json_fast.ENCODER
_c_encode = None if use_reference("json") else _json_fast.c_encode


def dumps(value: Any) -> str:
    """Compact JSON for one NDJSON line: UTF-8 kept; odd line breaks and lone surrogates escaped."""
    if _c_encode is not None and type(value) is dict:
        try:  # _json_fast.encode_dict, inlined: this runs once a record
            text = "".join(_c_encode(value, 0))
        except BaseException:
            _json_fast.forget()
            raise
    else:
        text = _ENCODER.encode(value)
    return text if text.isascii() else _escape_odd(text)


def write_json_line(value: Any, stream: IO[str] | None = None, *, flush: bool = False) -> None:
    """One NDJSON record, with every secret this process knows masked: a record
    may quote a value a user pasted a token into (a phone, a text, a URL)."""
    out = sys.stdout if stream is None else stream
    out.write(redact(dumps(value)) + "\n")
    if flush:
        out.flush()


def write_document_line(value: Any, stream: IO[str], *, flush: bool = False) -> None:
    """One of the user's own documents, as read (``--failed FILE``: a re-run needs
    the credentials a document carries in ``parameters``)."""
    stream.write(dumps(value) + "\n")
    if flush:
        stream.flush()


def write_json_pretty(value: Any, stream: IO[str] | None = None) -> None:
    out = sys.stdout if stream is None else stream
    text = json.dumps(value, ensure_ascii=False, indent=2)
    out.write((text if text.isascii() else _escape_odd(text)) + "\n")


def printable(text: str) -> str:
    """*text* with lone surrogates escaped (\\ud800): writable to any UTF-8 stream."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def err(line: str) -> None:
    """A plain line on stderr, secrets masked."""
    sys.stderr.write(printable(redact(line)) + "\n")


def warn(line: str) -> None:
    """A warning on stderr: ``smspipe: warning: …``."""
    err(f"smspipe: warning: {line}")


def _drop(line: str) -> None:
    pass


def warnings(*, quiet: bool) -> Callable[[str], None]:
    """Where a command's warnings go: stderr, or nowhere under -q. Never the API's
    default (a log record, which an unconfigured logging module prints bare)."""
    return _drop if quiet else warn


def guard_streams() -> None:
    """The last guard: stdout and stderr escape what they cannot encode, never raise.

    Every writer here escapes lone surrogates already; this covers the others
    (rich's tables, a library's message), so that no string crashes a command.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        # strict raises; surrogateescape (a C locale) raises too, or writes bytes that are not UTF-8
        if reconfigure is not None and getattr(stream, "errors", None) in ("strict", "surrogateescape"):
            with contextlib.suppress(ValueError, OSError):  # one that cannot change now: leave it
                reconfigure(errors="backslashreplace")


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
        held.append(printable(redact(line)) + "\n")
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

    # Markup and highlighting off: user and API text is printed as it is. NO_COLOR
    # (https://no-color.org) means no style at all: rich's own no_color keeps bold
    # and dim, a console without a colour system renders none.
    # Every byte a console writes is redacted: a table quotes values a user may
    # have pasted a token into.
    file: Any = _RedactingStream(stderr=stderr)
    if no_color():
        return Console(
            file=file, markup=False, highlight=False, emoji=False, soft_wrap=True, color_system=None
        )
    return Console(file=file, markup=False, highlight=False, emoji=False, soft_wrap=True)


class _RedactingStream:
    """sys.stdout or sys.stderr as they are when written to, secrets masked."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr

    @property
    def _target(self) -> IO[str]:
        return sys.stderr if self._stderr else sys.stdout

    def write(self, text: str) -> int:
        return self._target.write(redact(text))

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno: the stream's own
        return getattr(self._target, name)


def no_color() -> bool:
    import os

    return bool(os.environ.get("NO_COLOR"))


def plural(count: int, word: str, plural_word: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural_word or word + 's')}"
