"""How a message names a setting: as the caller writes it.

The core's messages name settings as the Python API takes them
(``max_segments``, ``ledger``; ``sender`` for the ``from`` setting, a Python
keyword), and call the caller's own values "arguments". The command line writes
them otherwise (``--max-segments``, "flags"): it installs its spelling for the
length of a command (:func:`using`), one mapping from setting to flag, so that
a message worded in the core reads right wherever it is shown, and nothing
rewrites text afterwards.

Config file keys and environment variables are written as they are (`from`,
``SMSPIPE_FROM``): they are the same for every caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import NamedTuple


class Spelling(NamedTuple):
    """The words of one kind of caller."""

    #: one of the caller's own values: "argument" (Python), "flag" (the command line)
    given: str = "argument"
    #: several of them
    given_plural: str = "arguments"
    #: setting -> how the caller writes it, where that is not the setting's name
    names: Mapping[str, str] = MappingProxyType({})

    def setting(self, name: str) -> str:
        return self.names.get(name, name)


#: The Python API's words (smspipe.api): keyword arguments named as the settings.
PYTHON = Spelling(
    names={
        "from": "sender",
        "force": "force=True",
        "no_ledger": "ledger=False",
        "allow_insecure_http": "allow_insecure_http=True",
    }
)

_current = [PYTHON]
_lock = threading.Lock()


def setting(name: str) -> str:
    """How the caller writes setting *name*: ``max_segments``, or ``--max-segments`` on the command line."""
    return _current[-1].setting(name)


def given(*, plural: bool = False) -> str:
    """What the caller's own values are called: "argument(s)", or "flag(s)" on the command line."""
    spelling = _current[-1]
    return spelling.given_plural if plural else spelling.given


@contextmanager
def using(spelling: Spelling) -> Iterator[None]:
    """Word messages with *spelling* until the block ends (the whole process: the
    engine's threads word messages too)."""
    with _lock:
        _current.append(spelling)
    try:
        yield
    finally:
        with _lock:
            _current.remove(spelling)
