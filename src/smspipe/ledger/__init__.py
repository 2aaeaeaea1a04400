"""The delivery ledger: what was sent, what is being sent, and by which run.

:func:`open_ledger` opens one by its target (a path: SQLite; issue 15 adds
``postgresql://`` URLs); :mod:`smspipe.ledger.base` is the contract every
backend keeps, :mod:`smspipe.ledger.sqlite` the embedded default.
"""

from __future__ import annotations

from pathlib import Path

from smspipe.ledger.base import (
    OPEN_STATES,
    Attempt,
    Counts,
    Delivery,
    FoundOutcome,
    Holder,
    KeyRow,
    KeyState,
    LeaseLost,
    Ledger,
    LedgerBusy,
    LedgerDamaged,
    LedgerError,
    LedgerFull,
    LedgerReadOnly,
    Message,
    OptOut,
    RunInfo,
    SentQuery,
    SentRecord,
    Settings,
)
from smspipe.spelling import setting

__all__ = [
    "OPEN_STATES",
    "Attempt",
    "Counts",
    "Delivery",
    "FoundOutcome",
    "Holder",
    "KeyRow",
    "KeyState",
    "LeaseLost",
    "Ledger",
    "LedgerBusy",
    "LedgerDamaged",
    "LedgerError",
    "LedgerFull",
    "LedgerReadOnly",
    "Message",
    "OptOut",
    "RunInfo",
    "SentQuery",
    "SentRecord",
    "Settings",
    "open_ledger",
]


def open_ledger(
    target: str | Path,
    *,
    read_only: bool = False,
    settings: Settings | None = None,
    run: RunInfo | None = None,
    verify: bool = True,
) -> Ledger | None:
    """The ledger at *target*, checked and ready; None when *read_only* and there is none yet.

    *verify* False skips checking the whole file (a server's one-row writes per request:
    the check costs a hundred times the write); damage met is refused all the same.

    Raises :class:`LedgerError` (exit 2) for a ledger that cannot be used as it
    is, :class:`LedgerFull` (exit 75) when the disk is full.
    """
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        raise LedgerError(
            f"the ledger {text.rsplit('@', maxsplit=1)[-1]}: PostgreSQL ledgers are not supported yet",
            hint=f"pass {setting('ledger')} with the path of an SQLite file",
        )
    from smspipe.ledger.sqlite import open_sqlite

    return open_sqlite(target, read_only=read_only, settings=settings, run=run, verify=verify)
