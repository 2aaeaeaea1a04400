"""Secrets from outside the command line: a file, or one line of stdin.

A secret given as a flag value shows in ``ps`` and in the shell's history.
``--auth-token-file PATH`` / ``--api-secret-file PATH`` read it from a file
(mode 600 advised; one trailing newline stripped, as ``echo`` and editors add
one), and ``-`` reads one line of stdin where stdin does not carry documents.
The CLI decides which (:mod:`smspipe.cli.options`); this module reads.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from smspipe.errors import UsageError, register_secret


def strip_newline(text: str) -> str:
    """*text* without one trailing newline (\\n or \\r\\n)."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def read_secret_file(path: Path, *, what: str) -> tuple[str, list[str]]:
    """The secret *path* holds, and warnings (a file others can read).

    *what* names it in messages ("auth token"). Refused: a file that cannot be
    read, an empty one, one of several lines.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"{what} file {path}: cannot read it ({exc.strerror or exc})",
            hint="give the path of a file that holds only the secret",
        ) from None
    try:
        text = strip_newline(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise UsageError(f"{what} file {path}: not UTF-8 text", hint="write the secret alone in it") from None
    register_secret(text)
    if not text.strip():
        raise UsageError(f"{what} file {path} is empty", hint="write the secret in it, alone on one line")
    if "\n" in text or "\r" in text:
        raise UsageError(
            f"{what} file {path} holds more than one line", hint="write the secret alone on one line"
        )
    return text, _permission_warnings(path, what)


def read_secret_line(stream: IO[str], *, what: str) -> str:
    """One line of *stream* (stdin piped): the secret, without its newline."""
    text = strip_newline(stream.readline())
    register_secret(text)
    if not text.strip():
        raise UsageError(
            f"no {what} on stdin", hint=f"pipe the {what} in: printf '%s' \"$TOKEN\" | smspipe …"
        )
    return text


def _permission_warnings(path: Path, what: str) -> list[str]:
    if os.name == "nt":
        return []
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [
            f"{what} file {path} is accessible to group or others "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        ]
    return []
