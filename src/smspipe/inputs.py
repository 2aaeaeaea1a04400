"""What the Python API reads: paths, file objects and Python objects, as documents.

- a path (``str`` or ``os.PathLike``; ``"-"`` is stdin): read by the one reader
  (:mod:`smspipe.documents`), as the command line reads it;
- a file object, binary or text: the same reader, named by its ``name``;
- a Python object (a dict, or a list of dicts): taken as its JSON text, so
  that every rule of the reader applies to it alike (no NaN, no lone
  surrogate…); a value that is not JSON is a :class:`~smspipe.documents.Problem`.
  Python objects are numbered in order, as the lines of one input named
  ``<python>`` (``<python>:3`` is the third).

*inputs* is one of these, or an iterable of them (a list, a generator: read
lazily, so a generator of dicts streams in constant memory).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, TypeAlias

from smspipe import documents
from smspipe.documents import Document, Problem

#: the name of the input Python objects are read from
PYTHON_SOURCE = "<python>"
_CHUNK = 64 * 1024
#: one input: a path, a file object, or a document as a Python object
Input: TypeAlias = str | os.PathLike[str] | IO[str] | IO[bytes] | Mapping[str, Any] | list[Any]
#: what the API's functions read: one input, or an iterable of them
Inputs: TypeAlias = Input | Iterable[Input]


def as_list(inputs: Inputs) -> Iterable[Any]:
    """*inputs* as an iterable of single inputs."""
    if (
        isinstance(inputs, str | os.PathLike | Mapping)
        or _is_file(inputs)
        or not isinstance(inputs, Iterable)
    ):
        return [inputs]  # one input (something else: read() says why)
    return inputs


def check(inputs: Iterable[Any]) -> None:
    """Fail fast (exit 2) on a path that cannot be opened, before any work is done.

    Only for a list or a tuple: a generator is not read twice.
    """
    if isinstance(inputs, list | tuple):
        documents.check_inputs(os.fspath(item) for item in inputs if isinstance(item, str | os.PathLike))


def read(inputs: Iterable[Any]) -> Iterator[Document | Problem]:
    """Every document of every input, in order; a Problem for each unusable one."""
    objects = 0
    for item in inputs:
        if isinstance(item, str | os.PathLike):
            yield from documents.read_values([os.fspath(item)])
        elif _is_file(item):
            yield from _read_file(item)
        else:
            objects += 1
            yield from _read_object(item, objects)


def _is_file(value: Any) -> bool:
    return callable(getattr(value, "read", None))


def _read_file(stream: Any) -> Iterator[Document | Problem]:
    name = getattr(stream, "name", None)
    source = name if isinstance(name, str) and name else "<stream>"
    text = isinstance(stream, io.TextIOBase) or getattr(stream, "encoding", None) is not None
    binary = io.BufferedReader(_TextAsBytes(stream)) if text else stream
    yield from documents._read_stream(source, binary)


def _read_object(value: Any, number: int) -> Iterator[Document | Problem]:
    """A Python object, as the reader would read its JSON text on line *number*."""
    import json

    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        yield Problem(PYTHON_SOURCE, number, f"not a JSON value ({_reason(exc)}): give dicts, lists, str…")
        return
    try:
        parsed = documents.parse_json(text)
    except ValueError as exc:
        yield Problem(PYTHON_SOURCE, number, str(exc))
        return
    if isinstance(parsed, dict):
        yield Document(PYTHON_SOURCE, number, None, parsed)
    elif isinstance(parsed, list):
        for index, item in enumerate(parsed):
            if isinstance(item, dict):
                yield Document(PYTHON_SOURCE, number, index, item)
            else:
                kind = documents.json_kind(item)
                yield Problem(PYTHON_SOURCE, number, f"expected a JSON object, got {kind}", index)
    else:
        kind = documents.json_kind(parsed)
        yield Problem(PYTHON_SOURCE, number, f"expected a JSON object or an array of objects, got {kind}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply, or circular"
    text = str(exc)
    return text[:120] if text else type(exc).__name__


class _TextAsBytes(io.RawIOBase):
    """A text stream read as UTF-8 bytes, for the reader (which reads bytes)."""

    def __init__(self, text: Any) -> None:
        self._text = text
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._text.read(_CHUNK)
            if not chunk:
                return 0
            # A lone surrogate becomes bytes that are not UTF-8: the reader says so.
            self._pending = chunk.encode("utf-8", "surrogatepass")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
