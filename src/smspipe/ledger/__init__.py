"""The delivery ledger: what was sent, what is being sent, and by which run.

:func:`open_ledger` opens one by its target (a path: SQLite; a ``postgresql://``
URL: PostgreSQL, for several hosts); :mod:`smspipe.ledger.base` is the contract
every backend keeps, :mod:`smspipe.ledger.sqlite` the embedded default,
:mod:`smspipe.ledger.postgres` the shared one.
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
    LedgerRetry,
    LedgerUnavailable,
    Merged,
    Message,
    OptOut,
    RunInfo,
    SentQuery,
    SentRecord,
    Settings,
    StoredKey,
)

#: what a PostgreSQL ledger's URL starts with
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

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
    "LedgerRetry",
    "LedgerUnavailable",
    "Merged",
    "Message",
    "OptOut",
    "RunInfo",
    "SentQuery",
    "SentRecord",
    "Settings",
    "StoredKey",
    "is_postgres",
    "open_ledger",
]


def is_postgres(target: str | Path) -> bool:
    """Is *target* a PostgreSQL URL (else it is the path of an SQLite file)?"""
    return str(target).startswith(POSTGRES_SCHEMES)


def open_ledger(
    target: str | Path,
    *,
    read_only: bool = False,
    settings: Settings | None = None,
    run: RunInfo | None = None,
    verify: bool = True,
) -> Ledger | None:
    """The ledger at *target*, checked and ready; None when *read_only* and there is none yet.

    *target*: the path of an SQLite file, or a ``postgresql://`` URL (psycopg is
    imported only then). Raises :class:`LedgerError` (exit 2) for a ledger that
    cannot be used as it is, :class:`LedgerFull` or :class:`LedgerUnavailable`
    (exit 75) for one that cannot be written or reached now.

    *verify* False skips checking the whole file (a server's one-row writes per request:
    the check costs a hundred times the write); damage met is refused all the same.
    """
    if is_postgres(target):
        from smspipe.ledger.postgres import open_postgres

        return open_postgres(str(target), read_only=read_only, settings=settings, run=run)
    from smspipe.ledger.sqlite import open_sqlite

    return open_sqlite(target, read_only=read_only, settings=settings, run=run, verify=verify)
