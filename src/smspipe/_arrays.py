"""A top-level JSON array read item by item, in constant memory.

The input is read in chunks and decoded incrementally; each item is parsed
with the same scanner, hooks and checks as an NDJSON line, yielded, and its
text dropped. Memory holds one chunk and the item being parsed, whatever the
length of the array.

A bad item costs only itself: when an item cannot be parsed, the reader
reports it (line, column, index) and finds where it ends by bracket depth
(strings tracked, reset at a line break since no JSON string spans lines),
then goes on with the next item. What follows the closing ``]`` is read as
NDJSON, as after a first line holding a whole value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

from smspipe.documents import (
    _SURROGATE,
    _SURROGATE_ESCAPE,
    CHUNK,
    MAX_WHOLE_DOCUMENT,
    Document,
    Problem,
    _decoder,
    _describe_value_error,
    _duplicate_message,
    _DuplicateKey,
    _has_u_escape,
    _item_lines,
    _pairs_decoder,
    _refuse_lone_surrogate,
    json_kind,
    parse_json,
    read_lines,
)

_NOT_WHITESPACE = re.compile(r"[^ \t\r\n]")
_STRUCTURE = re.compile(r'[][{}",\n]')
_IN_STRING = re.compile(r'["\\\n]')
_NEXT_OBJECT = re.compile(r",[ \t\r\n]*\{")
# What may follow junk: the start of an item, a comma, the end of the array.
_TOKEN = re.compile(r'[][{",]')
# The first string after the opening braces of an item: its first key, even
# when what follows it is broken.
_FIRST_KEY = re.compile(r'\{[\s{\[]*"([^"\\]*)"')
# Keys only a top-level document starts with (no nested object of a request or
# a hub object does): what an item is recognised by when the first is broken.
_ENVELOPE_KEYS = (
    "request_id",
    "sms",
    "parameters",
    "order",
    "orders",
    "customer",
    "customers",
    "shipment",
    "shipments",
)
_UNREADABLE_REST = (
    "; the array's structure is broken from here (a quote, brace or bracket missing?), "
    "so the items after it could not be read: fix it and run again"
)
# A parse error this close to the end of what is buffered may only mean that
# the rest of the item has not been read yet.
_MARGIN = 16
# Indentation deeper than this is not a pretty-printed array's (a read drops it).
_MAX_INDENT = 256


def read_array(source: str, stream: IO[bytes]) -> Iterator[Document | Problem]:
    """The items of the JSON array *stream* starts with, then what follows it."""
    return _ArrayReader(source, stream).items()


def _complete_prefix(data: bytes) -> int:
    """How much of *data* ends on a whole UTF-8 character (a chunk may split one)."""
    size = len(data)
    for back in range(1, min(3, size) + 1):
        byte = data[size - back]
        if byte < 0x80:
            return size
        if byte >= 0xC0:  # the lead byte of the last character
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return size - back if needed > back else size
    return size


class _Depth:
    """Where a scan stands: the brackets open, in a string or not, and whether
    the brackets are known not to match (then only lines are trusted)."""

    __slots__ = ("closers", "damaged", "in_string")

    def __init__(self, damaged: bool) -> None:
        self.closers: list[str] = []
        self.in_string = False
        self.damaged = damaged

    def ends_item(self, char: str) -> bool:
        """Step over a structural character outside strings; True when it is the
        comma or bracket that ends the item (at the item's own level)."""
        if char == '"':
            self.in_string = True
        elif self.damaged:
            pass
        elif char in "[{":
            self.closers.append("]" if char == "[" else "}")
        elif not self.closers:
            return True
        elif char != ",":
            self.damaged = self.closers.pop() != char
        return False


def _inner_item(document: Document) -> Document | Problem:
    """An item of an array read as the outer array's: checked as one."""
    if type(document.value) is not dict:
        message = f"expected a JSON object, got {json_kind(document.value)}"
        return Problem(document.source, document.line, message, document.index)
    try:
        _refuse_lone_surrogate(document.value)  # and bytes that were not UTF-8, as surrogates
    except ValueError as exc:
        return Problem(document.source, document.line, str(exc), document.index)
    return document


def _is_name(key: object) -> bool:
    """A key such as JSON exports start their objects with (request_id, order)."""
    return isinstance(key, str) and 0 < len(key) <= 64 and key.replace("_", "a").isalnum() and key.isascii()


def _is_json(text: str) -> bool:
    try:
        parse_json(text)
    except ValueError:
        return False
    return True


def _lines_after(head: bytes, stream: IO[bytes]) -> Iterator[bytes]:
    """The lines of *head* then of *stream*, the last line of *head* completed."""
    parts = head.split(b"\n")
    for part in parts[:-1]:
        yield part + b"\n"
    if parts[-1]:
        yield parts[-1] + stream.readline()
    yield from stream


class _ArrayReader:
    """The state of one array being read: a text buffer and where we are in it."""

    def __init__(self, source: str, stream: IO[bytes]) -> None:
        self.source = source
        self.stream = stream
        self.read = getattr(stream, "read1", stream.read)  # what is there, not a full chunk
        self.buf = ""
        self.pos = 0
        self.pending = b""  # bytes of a character split by the end of a read
        self.eof = False
        # The buffer holds bytes that are not UTF-8 (as surrogate escapes).
        self.dirty = False
        # Line numbers: line is the number of the line holding buf[counted];
        # line_start is where that line starts in buf (negative once dropped).
        self.line = 1
        self.counted = 0
        self.line_start = 0
        self.truncated = False
        self.at_item = False
        self.opening_line = 1
        self.abandoned = False
        self.item_start = 0  # where the item last read started (negative once dropped)
        self.item_value: Any = None  # what it was, when it was read whole
        #: the first key of the first item: what an item is recognised by after a break
        self.first_keys: list[str] = []
        #: the column items start at, once one was seen to start its line
        self.indent: int | None = None

    # --- the buffer -------------------------------------------------------------

    def _more(self, wanted: int = 1) -> bool:
        """Read at least *wanted* more bytes (or to the end), dropping the text
        before ``pos``. False when nothing more could be read."""
        if self.eof:
            return False
        self._count_to(self.pos)
        drop = self._droppable()
        if drop:
            self.buf = self.buf[drop:]
            self.counted -= drop
            self.line_start -= drop
            self.item_start -= drop
            self.pos -= drop
            self.dirty = self.dirty and _SURROGATE.search(self.buf) is not None
        chunks = []
        got = 0
        while got < wanted:
            data = self.read(max(wanted - got, CHUNK))
            if not data:
                self.eof = True
                break
            chunks.append(data)
            got += len(data)
        if got:
            self.buf += self._decode(b"".join(chunks), final=self.eof)
        elif self.pending:
            self.buf += self._decode(b"", final=True)
            return True
        return got > 0

    def _droppable(self) -> int:
        """How much of the buffer a read may drop: what is before ``pos``, less the
        indentation ``pos`` stands after, so that the column an item starts at
        (how a broken item's end is found) survives the read."""
        newline = self.buf.rfind("\n", max(0, self.pos - _MAX_INDENT), self.pos)
        if newline >= 0 and not self.buf[newline + 1 : self.pos].strip(" \t"):
            return newline  # the line break kept too: it shows that a line starts there
        return self.pos

    def _decode(self, data: bytes, *, final: bool) -> str:
        if self.pending:
            data = self.pending + data
        self.pending = b""
        if not final:
            cut = _complete_prefix(data)
            if cut < len(data):
                self.pending = data[cut:]
                data = data[:cut]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.dirty = True
            return data.decode("utf-8", "surrogateescape")

    def _grow(self) -> bool:
        """More text for an item that is not whole yet (at least doubling it)."""
        held = len(self.buf) - self.pos
        if held > MAX_WHOLE_DOCUMENT:
            return False
        return self._more(max(CHUNK, held))

    def _count_to(self, index: int) -> None:
        if index > self.counted:
            newlines = self.buf.count("\n", self.counted, index)
            if newlines:
                self.line += newlines
                self.line_start = self.buf.rfind("\n", self.counted, index) + 1
            self.counted = index

    def _line_col(self, index: int) -> tuple[int, int]:
        self._count_to(index)
        return self.line, index - self.line_start + 1

    def _skip_whitespace(self) -> bool:
        """Move to the next character that is not whitespace; False at the end."""
        buf = self.buf
        if self.pos < len(buf) and buf[self.pos] not in " \t\r\n":
            return True
        while True:
            match = _NOT_WHITESPACE.search(self.buf, self.pos)
            if match is not None:
                self.pos = match.start()
                return True
            self.pos = len(self.buf)
            if not self._more():
                return False

    # --- the array --------------------------------------------------------------

    def items(self) -> Iterator[Document | Problem]:
        if not self._open():
            yield from self._after_array()  # not an array after all (the input changed?)
            return
        index = 0
        while True:
            upcoming = self._next_token()
            if not upcoming:
                yield from self._never_ends(index)
                return
            if upcoming == "]":
                self.pos += 1
                stray = self._stray_bracket(index)
                if stray is None:
                    yield from self._after_array()
                    return
                yield stray
                continue
            item = self._item(index)
            if isinstance(item, list):  # a [ lost in front of an item swallowed the rest
                yield from item
                return
            yield item
            index += 1
            if self._next_object():
                continue
            problem = self._separator(index - 1)
            if problem is not None:
                yield problem
            if self.abandoned:  # NDJSON whose first line is a broken array
                yield from self._after_array(self.opening_line + 1)
                return

    def _open(self) -> bool:
        """Step past the [ the input starts with (after a BOM and whitespace)."""
        self._more()
        if self.buf.startswith("\ufeff"):
            self.pos = 1
        if not self._skip_whitespace() or self.buf[self.pos] != "[":
            return False
        self.pos += 1
        self.opening_line = self._line_col(self.pos)[0]
        return True

    def _next_token(self) -> str:
        """What comes next: "]", "{" (an item, whatever it starts with), "" at the end."""
        if self.buf.startswith("{", self.pos):  # where the comma's fast path leaves us
            return "{"
        if not self._skip_whitespace():
            return ""
        return "]" if self.buf[self.pos] == "]" else "{"

    def _next_object(self) -> bool:
        """The common case after an item: a comma, then the next object (stepped to)."""
        if self.at_item:
            return False
        following = _NEXT_OBJECT.match(self.buf, self.pos)
        if following is None:
            return False
        self.pos = following.end() - 1
        return True

    def _separator(self, index: int) -> Problem | None:
        """Step over the comma after an item; a problem if there is none."""
        if self.at_item:  # a broken item was skipped up to the next one
            self.at_item = False
            return None
        if not self._skip_whitespace():
            return None  # the loop reports the missing "]"
        char = self.buf[self.pos]
        if char == "]":
            return None
        if char == ",":
            self.pos += 1
            if self._skip_whitespace() and self.buf[self.pos] == "]":
                line, column = self._line_col(self.pos)
                return Problem(
                    self.source, line, f"invalid JSON: a comma before ] (column {column}); remove it", index
                )
            return None
        line, column = self._line_col(self.pos)
        problem = Problem(
            self.source, line, f"invalid JSON: expected , or ] after item {index} (column {column})", index
        )
        if char != "{" or self.buf[self.pos - 1] not in " \t\r\n}":
            # Not an object after an object (a comma forgotten): the array's
            # structure is broken here. Only the start of a line may be trusted.
            if char == ":" and isinstance(self.item_value, str):
                self._note_first_key(self.item_value)  # "key": read as an item: its { was lost
            indent = self.indent
            if indent is None and self.item_start >= 0:
                indent = self._indent(self.item_start)
            if not self._skip_broken(indent, line, damaged=True):
                problem.message += _UNREADABLE_REST
            self.at_item = False  # positioned at an item: the loop reads it next
        return problem

    def _stray_bracket(self, index: int) -> Problem | None:
        """A ] followed on its line by more than whitespace does not end the
        array: one was added, or an item's [ lost. A problem (and ``pos`` at
        what may follow), or None when it is the end."""
        match = _NOT_WHITESPACE.search(self.buf, self.pos)
        if match is None or "\n" in self.buf[self.pos : match.start()]:
            return None
        line, column = self._line_col(self.pos - 1)
        problem = Problem(
            self.source, line, f"invalid JSON: a ] inside the array (column {column}); remove it", index
        )
        char = self.buf[match.start()]
        self.pos = match.start() + (char == ",")
        if char not in ",{" and not self._skip_broken(self.indent, line, damaged=True):
            problem.message += _UNREADABLE_REST
        self.at_item = False
        return problem

    def _never_ends(self, index: int) -> Iterator[Problem]:
        if not self.truncated:
            line, _ = self._line_col(len(self.buf))
            yield Problem(
                self.source,
                line,
                f"invalid JSON: the array ends after {index} items without its ] (truncated?)",
            )

    def _after_array(self, line: int | None = None) -> Iterator[Document | Problem]:
        """What follows the array (from ``pos``, on *line*), read as lines."""
        if line is None:
            line, _ = self._line_col(self.pos)
        rest = self.buf[self.pos :].encode("utf-8", "surrogateescape") + self.pending
        self.buf = ""
        yield from read_lines(self.source, _lines_after(rest, self.stream), line - 1)

    # --- one item -----------------------------------------------------------------

    def _item(self, index: int) -> Document | Problem | list[Document | Problem]:
        self.item_start = self.pos
        self.item_value = None
        try:
            value, end = self._parse(_decoder)
        except _DuplicateKey:
            return self._duplicate(index)
        except json.JSONDecodeError as exc:
            return self._malformed(index, exc.pos, self._json_error(exc))
        except RecursionError:
            return self._malformed(index, self.pos, "JSON nested too deeply")
        except ValueError as exc:  # NaN, an infinite float, a number with too many digits
            return self._malformed(index, self.pos, _describe_value_error(exc))
        start = self.pos  # _parse may have moved the buffer
        if index < 8 and type(value) is dict:
            self._first_items(index, start, value)
        self.item_value = value
        self.pos = end
        if type(value) is list and value:
            swallowed = self._swallowed(index, start, end, value)
            if swallowed is not None:
                return swallowed
        return self._checked(index, start, end, value)

    def _swallowed(
        self, index: int, start: int, end: int, items: list[Any]
    ) -> list[Document | Problem] | None:
        """An array item that runs to the end of the input, the array's own ]
        with it: a [ was added before an item, and what it holds are the
        array's other items, reported and read as such. None if not so."""
        line, column = self._line_col(start)
        text = self.buf[start:end]  # before a read drops it
        if self._skip_whitespace():
            return None
        problem = Problem(
            self.source,
            line,
            f"invalid JSON: a [ opens an array inside the array (column {column}) that runs to the "
            "end, the array's ] with it; remove it (its items were read as the array's)",
            index,
        )
        lines = _item_lines(text, line)
        found: list[Document | Problem] = [problem]
        for offset, value in enumerate(items):
            at = lines[offset] if offset < len(lines) else line
            found.append(_inner_item(Document(self.source, at, index + offset, value)))
        return found

    def _first_items(self, index: int, start: int, value: dict[str, Any]) -> None:
        """What the first items tell of the others: their column, their first keys."""
        if index <= 1 and self.indent is None:
            self.indent = self._indent(start)  # the first may follow the [ on its line
        if value:
            self._note_first_key(next(iter(value)))

    def _parse(self, decoder: json.JSONDecoder) -> tuple[Any, int]:
        """The value at ``pos``, reading on until it is whole."""
        scan = decoder.scan_once  # type: ignore[attr-defined]  # what raw_decode calls
        while True:
            start = self.pos
            try:
                value, end = scan(self.buf, start)
            except StopIteration as stop:
                error = json.JSONDecodeError("Expecting value", self.buf, stop.value)
                if not self._read_on(error):
                    raise self._rebased(error, start) from None
                continue
            except json.JSONDecodeError as exc:
                if not self._read_on(exc):
                    raise self._rebased(exc, start) from None
                continue
            if end >= len(self.buf) and type(value) not in (dict, list, str) and self._grow():
                continue  # a number at the end of the buffer may go on
            return value, end

    def _read_on(self, exc: json.JSONDecodeError) -> bool:
        """Whether the error may only mean the item is not all read, and more was."""
        return self._maybe_cut(exc) and self._grow()

    def _rebased(self, exc: json.JSONDecodeError, start: int) -> json.JSONDecodeError:
        """*exc* with its position in the buffer as it is now (a read drops what
        lies before the item)."""
        if start == self.pos:
            return exc
        return json.JSONDecodeError(exc.msg, self.buf, exc.pos - (start - self.pos))

    def _maybe_cut(self, exc: json.JSONDecodeError) -> bool:
        if self.eof:
            return False
        return exc.pos >= len(self.buf) - _MARGIN or exc.msg.startswith("Unterminated string")

    def _json_error(self, exc: json.JSONDecodeError) -> str:
        rest = self.buf[exc.pos :]
        if self.eof and len(rest) <= _MARGIN and not any(c in rest for c in ",]}"):
            self.truncated = True
            return "invalid JSON: the input ends inside this item (truncated?)"
        if exc.msg.startswith("Unterminated string"):
            return "invalid JSON: a string that never ends (truncated?)"
        return f"invalid JSON: {exc.msg}"

    def _malformed(self, index: int, at: int, message: str) -> Problem:
        """Report an item that cannot be read, then skip to its end."""
        start = self.pos
        indent = self.indent if self.indent is not None else self._indent(start)
        item_line = self._line_col(start)[0]
        self._note_first_key(_FIRST_KEY.match(self.buf, start))
        bad = _SURROGATE.search(self.buf, start, at + 1) if self.dirty else None
        if bad is not None:
            problem = self._not_utf8(index, bad)
        else:
            if len(self.buf) - start > MAX_WHOLE_DOCUMENT:
                message = f"an item bigger than {MAX_WHOLE_DOCUMENT // 2**20} MiB; split the array"
            line, column = self._line_col(min(at, len(self.buf)))
            problem = Problem(self.source, line, f"{message} (column {column})", index)
        truncated = self.truncated
        if not self._skip_broken(indent, item_line) and not truncated:
            problem.message += _UNREADABLE_REST
        if self.pos == start and self.pos < len(self.buf) and not self.at_item:
            self.pos += 1  # a stray closing bracket: step over it, or this would never end
        return problem

    def _note_first_key(self, found: re.Match[str] | str | None) -> None:
        """Remember the first key of an item (a broken one's, as its text shows it)."""
        key = found.group(1) if isinstance(found, re.Match) else found
        if _is_name(key) and key not in self.first_keys and len(self.first_keys) < 4:
            self.first_keys.append(str(key))

    def _indent(self, start: int) -> int | None:
        """The column an item starts at, when it starts its line (pretty-printed)."""
        line_start = self.buf.rfind("\n", 0, start) + 1
        if line_start == 0 or self.buf[line_start:start].strip(" \t"):
            return None  # its line began before what is buffered, or holds more
        return start - line_start

    def _not_utf8(self, index: int, bad: re.Match[str]) -> Problem:
        line, column = self._line_col(bad.start())
        byte = ord(bad.group()) - 0xDC00
        message = f"not valid UTF-8 (byte 0x{byte:02x} at column {column}); re-encode the input as UTF-8"
        return Problem(self.source, line, message, index)

    def _duplicate(self, index: int) -> Problem:
        try:
            _, end = self._parse(_pairs_decoder)
        except (ValueError, RecursionError):
            return self._malformed(index, self.pos, "invalid JSON")
        start = self.pos
        line, _ = self._line_col(start)
        self.pos = end
        return Problem(self.source, line, _duplicate_message(self.buf[start:end]), index)

    def _checked(self, index: int, start: int, end: int, value: Any) -> Document | Problem:
        buf = self.buf
        if self.dirty:
            bad = _SURROGATE.search(buf, start, end)
            if bad is not None:
                return self._not_utf8(index, bad)
        line, _ = self._line_col(start)
        if _has_u_escape(buf, start, end) and _SURROGATE_ESCAPE.search(buf, start, end) is not None:
            try:
                _refuse_lone_surrogate(value)
            except ValueError as exc:
                return Problem(self.source, line, str(exc), index)
        if type(value) is dict:
            return Document(self.source, line, index, value)
        return Problem(self.source, line, f"expected a JSON object, got {json_kind(value)}", index)

    def _skip_broken(self, indent: int | None, line: int, *, damaged: bool = False) -> bool:
        """Skip a broken item: by lines in a pretty-printed array, else by the
        first key of the array's items (see the two skips). An array broken on
        its first line, followed by lines that are objects of their own, was
        the first line of NDJSON: reading goes on from the next line."""
        if line == self.opening_line and self._objects_follow():
            self.abandoned = True
            return True
        if indent is None:
            return self._skip_on_the_line([*self.first_keys, *_ENVELOPE_KEYS])
        return self._skip_item(indent, damaged=damaged)

    def _skip_item(self, indent: int | None = None, *, damaged: bool = False) -> bool:
        """Move ``pos`` to the comma or bracket that ends the item it is in, by
        bracket depth outside strings; False when the input ends first.

        When the brackets do not match (or *damaged*: the structure is known
        broken) depth cannot be trusted, and the skip ends only at a line that
        starts with ``{`` no deeper than *indent* (the column items start at in
        a pretty-printed array) after a line ending with a comma: then
        ``at_item`` is set. So a fragment of a broken item is never read as
        an item of its own (which ``send`` would send).
        """
        depth = _Depth(damaged)
        index = self.pos
        while True:
            match = (_IN_STRING if depth.in_string else _STRUCTURE).search(self.buf, index)
            if match is None:
                index = self._scanned_all()
                if index < 0:
                    return False
                continue
            char, index = match.group(), match.end()
            if char == "\n":
                depth.in_string = False  # no JSON string holds a line break
                index = self._after_newline(match.start(), index, indent)
                if index < 0:
                    return True
            elif depth.in_string:
                index = self._string_char(char, index, depth)
                if index < 0:
                    return False
            elif depth.ends_item(char):
                if char != "]" or not self._inside_an_item(match.start(), indent):
                    self.pos = match.start()
                    return True
                depth.damaged = True  # not the end of the array: a bracket was lost

    def _after_newline(self, newline: int, index: int, indent: int | None) -> int:
        """-1 when the next line starts an item (``pos`` there), else where to go on."""
        before = self.pos
        if self._next_line_is_an_item(newline, indent):
            return -1
        return self.pos if self.pos != before else index  # it may have read on

    def _scanned_all(self) -> int:
        """Drop what was scanned and read on: where to go on from, -1 at the end."""
        self.pos = len(self.buf)
        if not self._more():
            self.truncated = True
            return -1
        return self.pos

    def _string_char(self, char: str, index: int, depth: _Depth) -> int:
        """After a quote or backslash in a string: where scanning goes on (-1: the end)."""
        if char != "\\":
            depth.in_string = False
            return index
        index += 1  # past the escaped character (a new read if it is not here yet)
        if index > len(self.buf):
            self.pos = len(self.buf)
            if not self._more():
                return -1
            index = self.pos + 1
        return index

    def _next_line_is_an_item(self, newline: int, indent: int | None) -> bool:
        """Whether the line after *newline* starts the next item: it starts with ``{``
        at the items' column, and this one ends with a comma that the scan did
        not see as one (a quote was lost)."""
        if indent is None or not self._ends_with_comma(newline):
            return False
        if self._item_starts(newline + 1, indent):
            self.at_item = True
            return True
        return False

    def _skip_on_the_line(self, first_keys: list[str]) -> bool:
        """In a one-line array, move to the next item after a broken one: an
        object whose first key is that of the array's first item, after a comma.

        Depth and quotes cannot be trusted once one is lost; a fragment (an
        order's line item, a request's sms) has keys of its own. The end of the
        array, a ] ending its line, ends the skip too. False at the end of the input.
        """
        keys = "|".join(re.escape(key) for key in first_keys)
        pattern = re.compile(r',\s*(\{\s*"(?:' + keys + r')"\s*:)|(\])[ \t\r]*(?:\n|\Z)')
        index = self.pos
        while True:
            match = pattern.search(self.buf, index)
            if match is None or (match.group(2) and not self.eof and match.end() >= len(self.buf)):
                self.pos = max(index, len(self.buf) - 256 - len(keys))  # a match may span reads
                if not self._more():
                    self.pos = len(self.buf)
                    self.truncated = True
                    return False
                index = self.pos
                continue
            if match.group(2):  # the array's own ]
                self.pos = match.start(2)
                return True
            self.pos = match.start(1)
            if self._parses_here():
                self.at_item = True
                return True
            index = self.pos + 1

    def _parses_here(self) -> bool:
        try:
            self._parse(_pairs_decoder)
        except (ValueError, RecursionError):
            return False
        return True

    def _objects_follow(self) -> bool:
        """Whether one of the next three lines is a JSON object of its own (``pos``
        is left at the start of the next line if so)."""
        lines: list[tuple[int, int]] = []  # from and to, counted from pos (which reads keep)
        begin = 0
        while len(lines) < 4:
            newline = self.buf.find("\n", self.pos + begin)
            if newline >= 0:
                lines.append((begin, newline - self.pos))
                begin = newline - self.pos + 1
            elif len(self.buf) - self.pos > CHUNK * 16 or not self._more():
                lines.append((begin, len(self.buf) - self.pos))
                break
        for line_begin, line_end in lines[1:]:
            text = self.buf[self.pos + line_begin : self.pos + line_end].strip()
            if text.startswith("{") and text.endswith("}") and _is_json(text):
                self.pos += lines[1][0]
                return True
        return False

    def _inside_an_item(self, bracket: int, indent: int | None) -> bool:
        """Whether a ] the depth count takes for the array's end is inside an item:
        a comma follows it, or it stands deeper than the items (more following)."""
        if self._comma_follows(bracket + 1):
            return True
        if indent is None or _NOT_WHITESPACE.search(self.buf, bracket + 1) is None:
            return False
        line_start = self.buf.rfind("\n", 0, bracket) + 1
        return line_start > 0 and bracket - line_start > indent

    def _comma_follows(self, index: int) -> bool:
        """Whether a comma follows *index* on its line (what is buffered of it)."""
        match = _NOT_WHITESPACE.search(self.buf, index)
        return match is not None and self.buf[match.start()] == ","

    def _ends_with_comma(self, newline: int) -> bool:
        """Whether the line ending at *newline* ends with a comma (quotes or not:
        no JSON string spans lines)."""
        buf = self.buf
        while newline > 0 and buf[newline - 1] in " \t\r":
            newline -= 1
        return newline > 0 and buf[newline - 1] == ","

    def _item_starts(self, index: int, indent: int) -> bool:
        """Whether the line at *index* starts, at the items' column, an object whose
        first key is one the items start with (``pos`` is left at it if so)."""
        self.pos = index
        while True:
            match = _NOT_WHITESPACE.search(self.buf, self.pos)
            if match is not None:
                break
            if not self._more():
                return False
        start = match.start()
        line_start = self.buf.rfind("\n", 0, start) + 1
        column = start - line_start
        # At the items' column once known; else no deeper than the broken item's.
        at_column = column == indent if indent == self.indent else column <= indent
        if self.buf[start] != "{" or not at_column or line_start < self.pos - 1:
            return False
        self.pos = start
        if self._starts_like_an_item():
            return True
        self.pos -= start - line_start  # back to the line's start: scanning goes on from there
        return False

    def _starts_like_an_item(self) -> bool:
        """Whether an object that starts as the items do is at ``pos``."""
        try:
            pairs, _ = self._parse(_pairs_decoder)
        except (ValueError, RecursionError):
            return False
        if not pairs:
            return False
        return not self.first_keys or pairs[0][0] in (*self.first_keys, *_ENVELOPE_KEYS)
