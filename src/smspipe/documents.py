"""The document reader every command shares.

An input is a path or ``-`` (stdin). It holds one JSON value (an object, or an
array of objects, possibly pretty-printed over many lines) or NDJSON. NDJSON is
read line by line and a JSON array item by item, both in constant memory; a
single pretty-printed object is read whole (up to :data:`MAX_WHOLE_DOCUMENT`).
Every problem becomes a :class:`Problem` with its source and line, and reading
goes on with the next line, item or input.

Nothing that Python cannot write out again leaves this module: a document
holding a lone surrogate (``"\\ud800"``), a key given twice, or bytes that are
not UTF-8 is a :class:`Problem`, not a :class:`Document`.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from smspipe._patterns import LazyPattern
from smspipe.errors import InputError, UsageError

STDIN = "-"
BOM = b"\xef\xbb\xbf"
# A pretty-printed document bigger than this is surely not one JSON value;
# reading it whole would defeat constant memory, so it is read as NDJSON.
# An item of a JSON array may be as big.
MAX_WHOLE_DOCUMENT = 64 * 1024 * 1024
#: bytes read at a time from an input holding a JSON array
CHUNK = 64 * 1024


# Not frozen: one is made per line read, and a frozen dataclass takes several
# times as long to build.
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


# --- parsing one JSON text -------------------------------------------------------


class _DuplicateKey(Exception):
    """An object names a key twice (raised from inside the JSON scanner)."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (use null or a number)")


def _parse_float(text: str, _float: type[float] = float, _finite: Any = math.isfinite) -> float:
    # Called for every float of every document: the builtins are bound as defaults.
    value = _float(text)
    if not _finite(value):
        raise ValueError(f"number {text[:20]}{'…' if len(text) > 20 else ''} is out of range")
    return value


def _object(
    pairs: list[tuple[str, Any]], _dict: type[dict[str, Any]] = dict, _len: Any = len
) -> dict[str, Any]:
    # Every object of every document passes here: a duplicate key would
    # otherwise be dropped silently by dict, the last value winning. (The
    # builtins are bound as defaults: no global lookup per object.)
    value = _dict(pairs)
    if _len(value) != _len(pairs):
        raise _DuplicateKey
    return value


_decoder = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_parse_float, object_pairs_hook=_object
)


_scan: Any = _decoder.scan_once  # type: ignore[attr-defined]


class _Pairs(list[tuple[str, Any]]):
    """An object as its key-value pairs, duplicates kept: for locating one."""


_pairs_decoder = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_parse_float, object_pairs_hook=_Pairs
)

# A \u escape of a UTF-16 surrogate: the only way JSON text can hold one that
# is not half of a pair. Documents whose text has none need no deeper look.
_SURROGATE_ESCAPE = LazyPattern(r"\\u[dD][89a-fA-F]")
_SURROGATE = LazyPattern("[\ud800-\udfff]")


def parse_json(text: str) -> Any:
    """Parse strict JSON: no NaN/Infinity, no infinite floats, bounded depth,
    no duplicate keys, no lone surrogates.

    Raises ValueError with a one-line message for anything malformed.
    """
    # Inline for the common case: no whitespace before the value, a newline after it.
    start = 0 if text[:1] not in _WHITESPACE else _skip_ws(text, 0)
    try:
        value, end = _scan(text, start)  # what raw_decode does, less a Python frame
    except StopIteration as stop:
        exc = json.JSONDecodeError("Expecting value", text, stop.value)
        raise ValueError(_describe_json_error(exc)) from None
    except json.JSONDecodeError as exc:
        raise ValueError(_describe_json_error(exc)) from None
    except _DuplicateKey:
        raise ValueError(_duplicate_message(text)) from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:  # huge integers (int max str digits), NaN, inf
        raise ValueError(_describe_value_error(exc)) from None
    size = len(text)
    if end != size and not (end == size - 1 and text[end] == "\n") and _skip_ws(text, end) != size:
        raise ValueError(f"extra data after the JSON value (column {end + 1})")
    if _has_u_escape(text) and _SURROGATE_ESCAPE.search(text) is not None:
        _refuse_lone_surrogate(value)
    return value


def _has_u_escape(text: str, start: int = 0, end: int | None = None) -> bool:
    # A one-character search first: many times quicker than a two-character
    # one, and most documents hold no backslash at all.
    return text.find("\\", start, end) != -1 and text.find("\\u", start, end) != -1


def _describe_value_error(exc: ValueError) -> str:
    message = str(exc).split(";")[0]
    if "digits" in message or "integer string conversion" in message:
        message = "a number with too many digits"
    return message


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


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{_printable(key)}" if parent else _printable(key)


def _printable(text: str) -> str:
    """Text safe to print and to encode: surrogates and controls as escapes."""
    if text.isprintable() and _SURROGATE.search(text) is None:
        return text
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def _duplicate_message(text: str) -> str:
    """Where the first duplicate key of *text* is (re-read keeping every pair)."""
    found = None
    with contextlib.suppress(ValueError, RecursionError):
        found = _first_duplicate(_pairs_decoder.raw_decode(text, _skip_ws(text, 0))[0])
    if found is None:  # cannot happen for text that raised _DuplicateKey; worded anyway
        return "duplicate key in an object; give each key once"
    path, key = found
    return (
        f"duplicate key {_printable(key)!r} at {_path(path, key)}: the object gives it twice, "
        "so which value is meant is unclear; keep one"
    )


def _first_duplicate(value: Any) -> tuple[str, str] | None:
    """(path of the object, key) of the first key given twice, in document order."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, _ in node:
                if key in seen:
                    return path, key
                seen.add(key)
            stack.extend((_path(path, k), v) for k, v in reversed(node))
        elif isinstance(node, list):
            stack.extend((_path(path, i), v) for i, v in reversed(list(enumerate(node))))
    return None


def _refuse_lone_surrogate(value: Any) -> None:
    """Raise ValueError naming the first string (or key) holding a lone surrogate."""
    found = _first_lone_surrogate(value)
    if found is None:
        return  # only valid pairs (an emoji written as \ud83d\ude00)
    path, char, in_key = found
    what = f"the key {path}" if in_key else path or "the top-level value"
    raise ValueError(
        f"lone surrogate \\u{ord(char):04x} at {what}: a \\u escape between \\ud800 and \\udfff "
        "must be half of a UTF-16 pair (\\ud83d\\ude00 is one character); fix or remove it "
        "where the data was exported"
    )


def _first_lone_surrogate(value: Any) -> tuple[str, str, bool] | None:
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if type(node) is str:
            match = _SURROGATE.search(node)
            if match is not None:
                return path, match.group(), False
        elif type(node) is dict:
            for key in node:
                match = _SURROGATE.search(key)
                if match is not None:
                    return _path(path, key), match.group(), True
            stack.extend((_path(path, k), v) for k, v in reversed(node.items()))
        elif type(node) is list:
            stack.extend((_path(path, i), v) for i, v in reversed(list(enumerate(node))))
    return None


# --- inputs ----------------------------------------------------------------------


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


def _read_stream(source: str, stream: IO[bytes]) -> Iterator[Document | Problem]:
    if _starts_with_array(stream):
        from smspipe._arrays import read_array

        yield from read_array(source, stream)
    else:
        yield from read_lines(source, iter(stream), 0)


def _starts_with_array(stream: IO[bytes]) -> bool:
    """Whether the input's first character is ``[``, read without consuming it."""
    head = b""
    peek = getattr(stream, "peek", None)
    try:
        if peek is not None:
            head = peek(CHUNK)
        elif stream.seekable():
            start = stream.tell()
            head = stream.read(CHUNK)
            stream.seek(start)
    except (OSError, ValueError):
        return False
    return head.removeprefix(BOM).lstrip(b" \t\r\n")[:1] == b"["


def read_lines(source: str, lines: Iterator[bytes], lineno: int) -> Iterator[Document | Problem]:
    """NDJSON, or one (pretty-printed) value, from *lines* following line *lineno*."""
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
    try:
        value = parse_json(first.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as first_error:
        # Not a complete value on its first line: a pretty-printed document,
        # or NDJSON whose first line is broken. Read on to tell which.
        yield from _read_multiline(source, lineno, first, lines, first_error)
        return
    yield from _emit(source, lineno, value)
    yield from _read_ndjson(source, lines, lineno)


def _read_ndjson(source: str, lines: Iterator[bytes], lineno: int) -> Iterator[Document | Problem]:
    scan = _scan
    for raw in lines:
        lineno += 1
        if not raw or raw.isspace():  # what not raw.strip() says, without a copy
            continue
        # The common line, inline: one object and its newline, no \u escape.
        # Anything else (or any error) takes the full path, which words it.
        if raw[0] == 0x7B and raw[-1] == 0x0A:
            try:
                text = raw.decode("utf-8")
                value, end = scan(text, 0)
            except (ValueError, StopIteration, RecursionError, _DuplicateKey):
                pass
            else:
                if end == len(text) - 1 and type(value) is dict and not _has_u_escape(text):
                    yield Document(source, lineno, None, value)
                    continue
        yield from _read_line(source, lineno, raw)


def _read_line(source: str, lineno: int, raw: bytes) -> Iterator[Document | Problem]:
    try:
        value = parse_json(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        yield Problem(source, lineno, describe_unicode_error(exc))
        return
    except ValueError as exc:
        yield Problem(source, lineno, str(exc))
        return
    yield from _emit(source, lineno, value)


def _read_multiline(
    source: str, first_line: int, first: bytes, lines: Iterator[bytes], first_error: ValueError
) -> Iterator[Document | Problem]:
    """A value over several lines; or NDJSON with a broken first line.

    Each line is decoded on its own, so that bytes that are not UTF-8 on one
    line of NDJSON cost only that line.
    """
    raws = [first]
    size = len(first)
    for raw in lines:
        raws.append(raw)
        size += len(raw)
        if size > MAX_WHOLE_DOCUMENT:
            # Too big for one value: NDJSON after all (constant memory).
            yield _first_problem(source, first_line, first_error)
            yield from _read_ndjson(source, _chain(iter(raws[1:]), lines), first_line)
            return
    texts, undecodable = _decode_lines(raws)
    if undecodable is None:
        text = "".join(texts)
        try:
            value = parse_json(text)
        except ValueError as whole_error:
            if not _looks_like_ndjson(texts[1:]):
                line, message = _locate(whole_error, first_line)
                yield Problem(source, line, message)
                return
        else:
            yield from _emit(source, first_line, value, text)
            return
    elif not _looks_like_ndjson(texts[1:]):
        offset, error = undecodable
        yield Problem(source, first_line + offset, describe_unicode_error(error))
        return
    yield _first_problem(source, first_line, first_error)
    yield from _read_ndjson(source, iter(raws[1:]), first_line)


def _first_problem(source: str, line: int, error: ValueError) -> Problem:
    if isinstance(error, UnicodeDecodeError):
        return Problem(source, line, describe_unicode_error(error))
    return Problem(source, line, str(error))


def _decode_lines(raws: list[bytes]) -> tuple[list[str], tuple[int, UnicodeDecodeError] | None]:
    """Each line decoded ("" for one that is not UTF-8), and the first such line."""
    texts: list[str] = []
    undecodable: tuple[int, UnicodeDecodeError] | None = None
    for offset, raw in enumerate(raws):
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            texts.append("")
            if undecodable is None:
                undecodable = (offset, exc)
    return texts, undecodable


def _chain(first: Iterator[bytes], second: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from second


def _looks_like_ndjson(lines: list[str]) -> bool:
    """True when some line is a complete JSON object of its own."""
    for line in lines:
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


def describe_unicode_error(exc: UnicodeDecodeError) -> str:
    """The first byte that is not UTF-8, and its column (in characters) on its line."""
    data: bytes = exc.object
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    column = len(data[line_start : exc.start].decode("utf-8", "replace")) + 1
    return f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); re-encode the input as UTF-8"


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
            _, end = _pairs_decoder.raw_decode(text, start)
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
