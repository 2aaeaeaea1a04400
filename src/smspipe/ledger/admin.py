"""Looking after ledgers: make or migrate one's schema, move history from one to another.

The core of ``smspipe ledger migrate`` and ``smspipe ledger copy`` (the CLI
parses, calls these, and renders what they return).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smspipe.errors import ExitCode
from smspipe.ledger import is_postgres, open_ledger
from smspipe.ledger.base import LedgerError, Merged


def describe(target: str | Path) -> str:
    """*target* as it may be shown (a URL without its password)."""
    if is_postgres(target):
        from smspipe.ledger.postgres import describe as describe_url

        return describe_url(str(target))
    return str(Path(target).expanduser())


@dataclass(frozen=True, slots=True)
class Migrated:
    location: str
    #: the schema found (None: there was no ledger)
    found: int | None
    #: the schema now
    now: int

    def summary(self) -> str:
        if self.found is None:
            return f"ledger {self.location}: made, schema {self.now}"
        if self.found == self.now:
            return f"ledger {self.location}: schema {self.now}, nothing to do"
        return f"ledger {self.location}: migrated from schema {self.found} to {self.now}"


def migrate(target: str | Path) -> Migrated:
    """Make the ledger at *target*, or bring its schema up to this smspipe's."""
    if is_postgres(target):
        from smspipe.ledger import postgres

        found, now = postgres.migrate(str(target))
    else:
        from smspipe.ledger import sqlite

        found, now = sqlite.migrate(target)
    return Migrated(describe(target), found, now)


@dataclass(frozen=True, slots=True)
class Copied:
    source: str
    target: str
    merged: Merged

    @property
    def exit_code(self) -> ExitCode:
        """1 when some key was left as it was in the target (another history there)."""
        return ExitCode.INVALID if self.merged.conflicts else ExitCode.OK

    def summary(self) -> str:
        merged = self.merged
        line = (
            f"copied {merged.added} key{'' if merged.added == 1 else 's'} from {self.source} to "
            f"{self.target}; {merged.present} already there"
        )
        if merged.conflicts:
            line += (
                f"; {len(merged.conflicts)} left as they are in the target, which holds another "
                "history for them (nothing is overwritten)"
            )
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "added": self.merged.added,
            "present": self.merged.present,
            "conflicts": [{"key": key, "why": why} for key, why in self.merged.conflicts],
        }


def copy(source: str | Path, target: str | Path) -> Copied:
    """Add the history of the ledger at *source* to the one at *target* (made if need be).

    Keys the target lacks are added whole, with their messages; keys it holds
    with the same history are left be (a second copy adds nothing); keys it
    holds with another history are left as they are and reported. A key the
    source's run left open is an orphan in the target: its next run settles it.
    Copy when no run is using the source.
    """
    shown_source, shown_target = describe(source), describe(target)
    if shown_source == shown_target:
        raise LedgerError(f"the ledger {shown_source} is both the source and the target of the copy")
    origin = open_ledger(source, read_only=True)
    if origin is None:
        raise LedgerError(f"there is no ledger at {shown_source}", hint="check the source (SRC)")
    try:
        destination = open_ledger(target)
        assert destination is not None
        try:
            merged = destination.merge(origin.history())
        finally:
            destination.close()
    finally:
        origin.close()
    return Copied(shown_source, shown_target, merged)
