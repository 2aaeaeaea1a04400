"""The document reader every command shares.

An input is a path or ``-`` (stdin). It holds one JSON value (an object or an
array of objects, possibly pretty-printed over many lines) or NDJSON, which is
read line by line in constant memory. Every problem becomes a :class:`Problem`
with its source and line, and reading goes on with the next line or input.
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from smspipe.errors import InputError, UsageError

STDIN = "-"
BOM = b"\xef\xbb\xbf"
# A pretty-printed document bigger than this is surely not one JSON value;
# reading it whole would defeat constant memory, so it is read as NDJSON.
MAX_WHOLE_DOCUMENT = 64 * 1024 * 1024


# Not frozen: one is made per line read, and a frozen dataclass takes three
# times as long to build (0.48 us against 0.14).
@dataclass(slots=True)
class Document:
    """One JSON value read from an input, with where it came from."""

    source: str
    line: int
    #: position within a top-level array (None for NDJSON or a single object)
    index: int | None
    value: Any

    @property
    def where(self) -> str:
        return location(self.source, self.line, self.index)


@dataclass(slots=True)
class Problem:
    """Something in an input that is not a usable document."""

    source: str
    line: int
    message: str
    index: int | None = None

    @property
    def where(self) -> str:
        return location(self.source, self.line, self.index)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def location(source: str, line: int, index: int | None = None) -> str:
    name = "<stdin>" if source == STDIN else source
    return f"{name}:{line}" if index is None else f"{name}:{line}[{index}]"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (use null or a number)")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]}{'…' if len(text) > 20 else ''} is out of range")
    return value


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)


def parse_json(text: str) -> Any:
    """Parse strict JSON: no NaN/Infinity, no infinite floats, bounded depth.

    Raises ValueError with a one-line message for anything malformed.
    """
    # Inline for the common case: no whitespace before the value, a newline after it.
    start = 0 if text[:1] not in _WHITESPACE else _skip_ws(text, 0)
    try:
        value, end = _decoder.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise ValueError(_describe_json_error(exc)) from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:  # huge integers (int max str digits), NaN, inf
        message = str(exc).split(";")[0]
        if "digits" in message or "integer string conversion" in message:
            message = "a number with too many digits"
        raise ValueError(message) from None
    size = len(text)
    if end != size and not (end == size - 1 and text[end] == "\n") and _skip_ws(text, end) != size:
        raise ValueError(f"extra data after the JSON value (column {end + 1})")
    return value


_WHITESPACE = frozenset(" \t\r\n")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _describe_json_error(exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(exc.doc) and exc.doc.strip():
        return "invalid JSON: the document ends too early (truncated?)"
    if exc.msg.startswith("Unterminated string"):
        return f"invalid JSON: a string starting at column {exc.colno} never ends (truncated?)"
    if exc.lineno == 1:
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    return f"invalid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"


def _open_binary(source: str, stdin: IO[bytes] | None) -> IO[bytes]:
    if source == STDIN:
        if stdin is not None:
            return stdin
        return sys.stdin.buffer
    try:
        return open(source, "rb")
    except FileNotFoundError:
        raise InputError(
            f"{source}: no such file", hint="check the path, or use - to read from stdin"
        ) from None
    except IsADirectoryError:
        raise InputError(f"{source}: is a directory", hint="give the path of a file") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot open: {exc.strerror}") from None


def check_inputs(sources: Iterable[str]) -> None:
    """Fail fast (exit 2) on a missing or unreadable input before any work is done."""
    for source in sources:
        if source != STDIN:
            _open_binary(source, None).close()


def read_values(sources: Iterable[str], stdin: IO[bytes] | None = None) -> Iterator[Document | Problem]:
    """Yield every top-level JSON value (array items one by one) of every input."""
    for source in sources:
        stream = _open_binary(source, stdin)
        try:
            yield from _read_stream(source, stream)
        finally:
            if source != STDIN:
                stream.close()


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8")


def _read_stream(source: str, stream: IO[bytes]) -> Iterator[Document | Problem]:
    lines = iter(stream)
    lineno = 0
    first: bytes | None = None
    for raw in lines:
        lineno += 1
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        if raw.strip():
            first = raw
            break
    if first is None:
        return  # an empty input is zero documents

    first_line = lineno
    try:
        first_text = _decode(first)
    except UnicodeDecodeError as exc:
        yield Problem(source, lineno, _describe_unicode_error(exc))
        yield from _read_ndjson(source, lines, lineno)
        return
    try:
        value = parse_json(first_text)
    except ValueError as first_error:
        # Not a complete value on its first line: a pretty-printed document,
        # or NDJSON whose first line is broken. Read the rest to tell which.
        yield from _read_multiline(source, first_line, first_text, lines, str(first_error))
        return
    yield from _emit(source, first_line, value)
    yield from _read_ndjson(source, lines, lineno)


def _read_ndjson(source: str, lines: Iterator[bytes], lineno: int) -> Iterator[Document | Problem]:
    for raw in lines:
        lineno += 1
        if not raw or raw.isspace():  # what not raw.strip() says, without a copy
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Problem(source, lineno, _describe_unicode_error(exc))
            continue
        try:
            value = parse_json(text)
        except ValueError as exc:
            yield Problem(source, lineno, str(exc))
            continue
        if isinstance(value, dict):  # the common case, without a generator of its own
            yield Document(source, lineno, None, value)
        else:
            yield from _emit(source, lineno, value)


def _read_multiline(
    source: str, first_line: int, first_text: str, lines: Iterator[bytes], first_error: str
) -> Iterator[Document | Problem]:
    chunks = [first_text.encode()]
    size = len(chunks[0])
    for raw in lines:
        chunks.append(raw)
        size += len(raw)
        if size > MAX_WHOLE_DOCUMENT:
            break
    data = b"".join(chunks)
    if size > MAX_WHOLE_DOCUMENT:
        # Too big for one value: treat it as NDJSON after all (constant memory).
        yield Problem(source, first_line, first_error)
        rest = io.BytesIO(data[len(chunks[0]) :])
        yield from _read_ndjson(source, _chain(iter(rest), lines), first_line)
        return
    try:
        text = _decode(data)
    except UnicodeDecodeError as exc:
        line = first_line + data[: exc.start].count(b"\n")
        yield Problem(source, line, _describe_unicode_error(exc))
        return
    try:
        value = parse_json(text)
    except ValueError as whole_error:
        if _looks_like_ndjson(text):
            yield Problem(source, first_line, first_error)
            yield from _read_ndjson(source, iter(io.BytesIO(data[len(chunks[0]) :])), first_line)
        else:
            line, message = _locate(whole_error, first_line)
            yield Problem(source, line, message)
        return
    yield from _emit(source, first_line, value, text)


def _chain(first: Iterator[bytes], second: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from second


def _looks_like_ndjson(text: str) -> bool:
    """True when some later line is a complete JSON object of its own."""
    for line in text.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                parse_json(stripped)
            except ValueError:
                continue
            return True
    return False


def _locate(error: ValueError, first_line: int) -> tuple[int, str]:
    """Turn "(line L column C)" of a whole-document error into the input's line."""
    message = str(error)
    marker = "(line "
    if marker in message:
        head, _, tail = message.rpartition(marker)
        number = tail.split(" ", 1)[0]
        if number.isdigit():
            column = tail.split("column ", 1)[-1].rstrip(")")
            return first_line + int(number) - 1, f"{head.rstrip()} (column {column})"
    return first_line, message


def _describe_unicode_error(exc: UnicodeDecodeError) -> str:
    return (
        f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}); "
        "re-encode the input as UTF-8"
    )


def _emit(source: str, line: int, value: Any, text: str | None = None) -> Iterator[Document | Problem]:
    if isinstance(value, dict):
        yield Document(source, line, None, value)
    elif isinstance(value, list):
        item_lines = _item_lines(text, line) if text is not None else None
        for index, item in enumerate(value):
            item_line = item_lines[index] if item_lines and index < len(item_lines) else line
            if isinstance(item, dict):
                yield Document(source, item_line, index, item)
            else:
                yield Problem(source, item_line, f"expected a JSON object, got {json_kind(item)}", index)
    else:
        yield Problem(source, line, f"expected a JSON object or an array of objects, got {json_kind(value)}")


def _item_lines(text: str, first_line: int) -> list[int]:
    """The line on which each item of a top-level JSON array starts."""
    lines: list[int] = []
    pos = _skip_ws(text, 0) + 1  # past "["
    line = first_line + text.count("\n", 0, pos)
    while True:
        start = _skip_ws(text, pos)
        line += text.count("\n", pos, start)
        if start >= len(text) or text[start] == "]":
            return lines
        lines.append(line)
        try:
            _, end = _decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            return lines
        line += text.count("\n", start, end)
        pos = _skip_ws(text, end)
        line += text.count("\n", end, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1


def json_kind(value: Any) -> str:
    """A value's JSON type with its article, for messages: "a string", "an array"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def unwrap(doc: Document, singular: str, plural: str) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """Split a document into its items: ``{singular: {...}}``, ``{plural: [...]}`` or bare.

    Yields ``(path, item, envelope)``: the JSON path of the item within the
    document (``order``, ``orders[2]``, or empty for a bare object), the item,
    and the enclosing object's other keys (request_id, parameters).
    """
    value = doc.value
    for key in (singular,) if singular == plural else (singular, plural):
        if key in value:
            inner = value[key]
            envelope = {k: v for k, v in value.items() if k != key}
            if isinstance(inner, list):
                for index, item in enumerate(inner):
                    yield f"{key}[{index}]", item, envelope
            else:
                yield key, inner, envelope
            return
    yield "", value, {}


def input_sources(paths: list[str] | None, stdin_is_terminal: bool, example: str) -> list[str]:
    """The inputs to read: the paths given, else stdin when it is piped.

    Refuses (exit 2) when there is none, or when a file cannot be opened, before
    any work is done; *example* shows the command reading stdin.
    """
    if paths:
        sources = paths
    elif stdin_is_terminal:
        raise UsageError("no input", hint=f"give a file path, or pipe documents to stdin ({example})")
    else:
        sources = [STDIN]
    check_inputs(sources)
    return sources
