"""Regular expressions compiled when first used.

A character class over a wide range (``[\\ud800-\\udfff]``) takes Python's
``re`` long to compile: at import, every command would pay for
checks that only odd input ever reaches. After the first use a pattern's
methods are plain attributes, as quick to reach as a compiled pattern's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any


class LazyPattern:
    """``re.compile(pattern, flags)``, done on the first search."""

    __slots__ = ("_source", "finditer", "match", "search")

    search: Callable[..., re.Match[str] | None]
    match: Callable[..., re.Match[str] | None]
    finditer: Callable[..., Iterator[re.Match[str]]]

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._source = (pattern, flags)

    def __getattr__(self, name: str) -> Any:  # only while not compiled yet
        if name not in ("search", "match", "finditer"):
            raise AttributeError(name)
        compiled = re.compile(*self._source)
        self.search = compiled.search
        self.match = compiled.match
        self.finditer = compiled.finditer
        return getattr(compiled, name)
