"""How far `send` has read its input files: bytes read of bytes to read.

A progress bar can show a total, a percentage and an ETA only when it knows
how much there is: regular files, whose sizes add up. On a pipe the total is
unknown and the bar only pulses. The count is taken where the reader reads
(``readinto`` of each file), so the documents' parsing is untouched.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from typing import IO, Any

from smspipe.documents import STDIN


class InputBytes:
    """Bytes read so far of the *total* the input files hold."""

    def __init__(self, paths: list[str], total: int) -> None:
        self.paths = paths
        self.total = total
        self.read = 0

    def files(self) -> Iterator[IO[bytes]]:
        """The files, opened one at a time as the reader reaches them, counting what it reads."""
        for path in self.paths:
            with io.BufferedReader(_CountingFile(path, self)) as stream:
                yield stream


def input_bytes(sources: list[Any]) -> InputBytes | None:
    """The count for *sources* when every one is a regular file (else None: a pipe, stdin, --to)."""
    total = 0
    for source in sources:
        if not isinstance(source, str) or source == STDIN:
            return None
        try:
            info = os.stat(source)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):  # a named pipe, /dev/stdin: its size says nothing
            return None
        total += info.st_size
    return InputBytes(list(sources), total)


class _CountingFile(io.FileIO):
    def __init__(self, path: str, count: InputBytes) -> None:
        super().__init__(path, "rb")
        self._count = count

    def readinto(self, buffer: Any) -> int | None:
        size = super().readinto(buffer)
        if size:
            self._count.read += size
        return size
