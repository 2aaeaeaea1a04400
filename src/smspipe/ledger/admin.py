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
from smspipe.ledger.base import Delivery, Ledger, LedgerError, Merged, SentQuery


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
    #: numbers of the source's suppression list the target lacked (issue 14)
    optouts_added: int = 0

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
        if self.optouts_added:
            line += f"; {self.optouts_added} opted-out number{'' if self.optouts_added == 1 else 's'} added"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "added": self.merged.added,
            "present": self.merged.present,
            "conflicts": [{"key": key, "why": why} for key, why in self.merged.conflicts],
            "optouts_added": self.optouts_added,
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
            optouts_added = _copy_after_the_201(origin, destination)
        finally:
            destination.close()
    finally:
        origin.close()
    return Copied(shown_source, shown_target, merged, optouts_added)


def _copy_after_the_201(origin: Ledger, destination: Ledger) -> int:
    """The delivery status the source knows (a step forward only, as ever) and its suppression
    list (added to, never removed from): how many opted-out numbers the target lacked."""
    for record in origin.sent(SentQuery()):
        if record.status is not None:
            destination.update_delivery(
                record.sid,
                Delivery(
                    record.status,
                    error_code=record.error_code,
                    error_message=record.error_message,
                    price=record.price,
                    price_unit=record.price_unit,
                    date_sent=record.date_sent,
                    date_updated=record.date_updated,
                ),
            )
    by_source: dict[str, list[str]] = {}
    for entry in origin.optouts():
        by_source.setdefault(entry.source, []).append(entry.phone)
    return sum(destination.add_optouts(phones, source) for source, phones in by_source.items())
