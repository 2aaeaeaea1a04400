"""What Twilio's common error codes mean, and what to do: a table shipped with the package.

``smspipe status`` and ``send --wait`` show it beside each failure. A code not
in the table is shown with Twilio's own message and its docs link.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import NamedTuple

TABLE = Path(__file__).resolve().parent / "data" / "twilio_errors.json"


class Explanation(NamedTuple):
    code: int
    meaning: str
    action: str

    @property
    def docs(self) -> str:
        return f"https://www.twilio.com/docs/errors/{self.code}"


@cache
def _table() -> dict[int, Explanation]:
    entries = json.loads(TABLE.read_text(encoding="utf-8"))
    return {
        int(code): Explanation(int(code), entry["meaning"], entry["action"])
        for code, entry in entries.items()
        if code.isdigit()
    }


def explain(code: int | None) -> Explanation | None:
    """The meaning of *code* and what to do, when the table knows it."""
    if code is None:
        return None
    return _table().get(code)


def codes() -> frozenset[int]:
    return frozenset(_table())
