"""The delivery ledger: an SQLite file that remembers what was sent, so nothing is sent twice.

One row per message key (the document's ``request_id``, else a hash of what
would be sent). Its state:

- ``pending``: claimed by a run that is about to call Twilio, or is calling it.
- ``sent``: Twilio created the message (``sid``).
- ``failed``: Twilio rejected it for good (``error_code``); a later run tries again
  (the document may have been corrected under the same request_id).
- ``unknown``: the call may have reached Twilio and the message log could not
  tell; the next run looks it up before anything is resent.

A row is claimed inside ``BEGIN IMMEDIATE``, so two processes never both
claim one key. Each run holds an exclusive lock on a file of its own
(``<ledger>.runs/<run id>.lock``) for as long as it lives; a ``pending`` or
``unknown`` row whose owner's lock can be taken was left by a run that died
(``kill -9``, a power cut), and is reconciled against Twilio's message log
before it is sent again.

The body is kept only while a row is pending or unknown (reconciliation
matches on it), and cleared once the outcome is known.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO

from smspipe.errors import ConfigError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    key                   TEXT PRIMARY KEY,
    state                 TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'unknown')),
    account_sid           TEXT,
    recipient             TEXT NOT NULL,
    sender                TEXT,
    messaging_service_sid TEXT,
    body                  TEXT,
    body_sha256           TEXT NOT NULL,
    sid                   TEXT,
    segments              INTEGER,
    error_code            INTEGER,
    error_message         TEXT,
    owner                 TEXT,
    attempts              INTEGER NOT NULL DEFAULT 0,
    attempted_at          REAL,
    updated_at            REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries (state)
    WHERE state IN ('pending', 'unknown');
CREATE INDEX IF NOT EXISTS deliveries_sid ON deliveries (sid) WHERE sid IS NOT NULL;
"""


class State(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


class ClaimResult(StrEnum):
    #: the row is ours: send
    CLAIMED = "claimed"
    #: already sent (row.sid): skip
    ALREADY_SENT = "already-sent"
    #: another live run (or this one) holds it: skip
    BUSY = "busy"
    #: left pending/unknown by a dead run, now ours: reconcile before sending
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Entry:
    """What the ledger records about a message before it is sent."""

    key: str
    account_sid: str | None
    to: str
    sender: str | None
    messaging_service_sid: str | None
    body: str

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    state: State
    account_sid: str | None
    to: str
    sender: str | None
    messaging_service_sid: str | None
    body: str | None
    sid: str | None
    segments: int | None
    error_code: int | None
    error_message: str | None
    owner: str | None
    attempts: int
    attempted_at: float | None

    @classmethod
    def from_db(cls, record: sqlite3.Row) -> Row:
        return cls(
            key=record["key"],
            state=State(record["state"]),
            account_sid=record["account_sid"],
            to=record["recipient"],
            sender=record["sender"],
            messaging_service_sid=record["messaging_service_sid"],
            body=record["body"],
            sid=record["sid"],
            segments=record["segments"],
            error_code=record["error_code"],
            error_message=record["error_message"],
            owner=record["owner"],
            attempts=record["attempts"],
            attempted_at=record["attempted_at"],
        )


@dataclass(frozen=True, slots=True)
class Claim:
    result: ClaimResult
    row: Row | None = None
    #: for BUSY: who holds it ("this run" or "pid 1234 on host")
    holder: str | None = None


class Ledger:
    """The SQLite ledger. Thread-safe: one connection per thread."""

    def __init__(self, path: Path, *, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.run_id = run_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._dead_owners: set[str] = set()
        self._run_lock: IO[bytes] | None = None
        self._open()

    # --- opening -------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._runs_dir.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the ledger directory {self.path.parent}: {exc.strerror}",
                hint="pass --ledger PATH, set `ledger` in the config, or use --no-ledger",
            ) from None
        self._take_run_lock()
        try:
            # Two runs starting at once must not both switch a new file to WAL:
            # SQLite answers "database is locked" at once there, without waiting.
            with open(self._runs_dir / "init.lock", "wb") as init_lock:
                _lock_file(init_lock, blocking=True)
                if not self.path.exists():
                    # It holds phone numbers and, while pending, message texts: owner only.
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
                connection = self._connection()
                connection.execute("PRAGMA journal_mode = WAL")
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise ConfigError(
                        f"the ledger {self.path} was written by a newer smspipe (schema {version})",
                        hint="upgrade smspipe, or pass --ledger with another path",
                    )
                if version < SCHEMA_VERSION:
                    connection.executescript(
                        "BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    )
        except (sqlite3.DatabaseError, OSError) as exc:
            self.close()
            raise ConfigError(
                f"the ledger {self.path} is not usable: {exc}",
                hint="move it aside, or pass --ledger with another path",
            ) from None
        except ConfigError:
            self.close()
            raise

    @property
    def _runs_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".runs")

    def _lock_path(self, run_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
        return self._runs_dir / f"{safe}.lock"

    def _take_run_lock(self) -> None:
        path = self._lock_path(self.run_id)
        handle = open(path, "wb")  # noqa: SIM115 - held for the ledger's lifetime
        try:
            _lock_file(handle, blocking=True)
        except OSError:
            handle.close()
            raise
        self._run_lock = handle

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA synchronous = FULL")
            self._local.connection = connection
            self._local.durable = True
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextlib.contextmanager
    def _transaction(
        self, connection: sqlite3.Connection | None = None, *, durable: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: one writer at a time, across processes).

        *durable* transactions are synced to disk at commit (a claim must be on
        disk before its request leaves, also across a power cut). Outcomes need
        not be: one lost in a crash leaves its row pending, and reconciliation
        finds the message in Twilio's log. In WAL mode a synced commit also
        makes every earlier commit durable.
        """
        connection = connection or self._connection()
        if connection.in_transaction:
            yield connection
            return
        if getattr(self._local, "durable", None) is not durable:
            connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._local.durable = durable
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
            self._connections.clear()
        if self._run_lock is not None:
            with contextlib.suppress(OSError):
                self._lock_path(self.run_id).unlink()
            self._run_lock.close()
            self._run_lock = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- owners --------------------------------------------------------------

    def owner_alive(self, owner: str | None) -> bool:
        """True while the run *owner* still holds its lock file."""
        if owner is None or owner in self._dead_owners:
            return False
        if owner == self.run_id:
            return True
        path = self._lock_path(owner)
        try:
            handle = open(path, "rb+")  # noqa: SIM115
        except FileNotFoundError:
            self._dead_owners.add(owner)
            return False
        except OSError:
            return True  # cannot tell: assume alive, never risk a double send
        with handle:
            try:
                _lock_file(handle, blocking=False)
            except BlockingIOError:
                return True
            except OSError:
                return True
            # We hold it, so its owner is gone. Remove it while we hold it.
            with contextlib.suppress(OSError):
                path.unlink()
        self._dead_owners.add(owner)
        return False

    def _holder(self, owner: str | None) -> str:
        if owner == self.run_id:
            return "this run"
        parts = (owner or "").split(":")
        return f"pid {parts[1]} on {parts[0]}" if len(parts) >= 2 else "another run"

    # --- reading -------------------------------------------------------------

    def get(self, key: str) -> Row | None:
        record = self._connection().execute("SELECT * FROM deliveries WHERE key = ?", (key,)).fetchone()
        return Row.from_db(record) if record else None

    def known_sids(self, sids: list[str]) -> set[str]:
        """Which of *sids* are already recorded (for some key)."""
        if not sids:
            return set()
        marks = ",".join("?" * len(sids))
        query = f"SELECT sid FROM deliveries WHERE sid IN ({marks})"  # noqa: S608
        rows = self._connection().execute(query, sids).fetchall()
        return {row[0] for row in rows}

    def sid_owner(self, sid: str) -> str | None:
        """The key a sid is recorded under, if any."""
        row = self._connection().execute("SELECT key FROM deliveries WHERE sid = ?", (sid,)).fetchone()
        return row[0] if row else None

    def open_rows(self) -> list[Row]:
        """Rows left pending or unknown by runs that are no longer alive."""
        rows = (
            self._connection()
            .execute("SELECT * FROM deliveries WHERE state IN ('pending', 'unknown')")
            .fetchall()
        )
        return [Row.from_db(r) for r in rows if not self.owner_alive(r["owner"])]

    def counts(self) -> dict[str, int]:
        rows = self._connection().execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
        return {row[0]: row[1] for row in rows}

    # --- claiming and recording ----------------------------------------------

    def claim(self, entry: Entry, *, force: bool = False) -> Claim:
        """Claim *entry*'s key for this run, unless it was sent or another run holds it."""
        now = time.time()
        with self._transaction(durable=True) as db:
            record = db.execute("SELECT * FROM deliveries WHERE key = ?", (entry.key,)).fetchone()
            row = Row.from_db(record) if record else None
            if row is None:
                db.execute(
                    "INSERT INTO deliveries (key, state, account_sid, recipient, sender, "
                    "messaging_service_sid, body, body_sha256, owner, attempts, attempted_at, "
                    "updated_at) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (
                        entry.key,
                        entry.account_sid,
                        entry.to,
                        entry.sender,
                        entry.messaging_service_sid,
                        entry.body,
                        entry.body_sha256,
                        self.run_id,
                        now,
                        now,
                    ),
                )
                return Claim(ClaimResult.CLAIMED)
            if row.state in (State.PENDING, State.UNKNOWN):
                if self.owner_alive(row.owner):
                    return Claim(ClaimResult.BUSY, row, self._holder(row.owner))
                # A dead run's row: ours now, to reconcile with what it recorded.
                db.execute(
                    "UPDATE deliveries SET owner = ?, updated_at = ? WHERE key = ?",
                    (self.run_id, now, entry.key),
                )
                return Claim(ClaimResult.STALE, row)
            if row.state == State.SENT and not force:
                return Claim(ClaimResult.ALREADY_SENT, row)
            # failed earlier (maybe corrected since), or --force: send again. The
            # old sid stays until the new one replaces it.
            db.execute(
                "UPDATE deliveries SET state = 'pending', account_sid = ?, recipient = ?, "
                "sender = ?, messaging_service_sid = ?, body = ?, body_sha256 = ?, owner = ?, "
                "attempts = attempts + 1, attempted_at = ?, error_code = NULL, "
                "error_message = NULL, updated_at = ? WHERE key = ?",
                (
                    entry.account_sid,
                    entry.to,
                    entry.sender,
                    entry.messaging_service_sid,
                    entry.body,
                    entry.body_sha256,
                    self.run_id,
                    now,
                    now,
                    entry.key,
                ),
            )
            return Claim(ClaimResult.CLAIMED, row)

    def adopt(self, row: Row) -> bool:
        """Take over a dead run's open row (startup reconciliation). False if someone else did."""
        with self._transaction(durable=True) as db:
            current = db.execute("SELECT owner, state FROM deliveries WHERE key = ?", (row.key,)).fetchone()
            if current is None or current["state"] not in ("pending", "unknown"):
                return False
            if current["owner"] != row.owner and self.owner_alive(current["owner"]):
                return False
            db.execute(
                "UPDATE deliveries SET owner = ?, updated_at = ? WHERE key = ?",
                (self.run_id, time.time(), row.key),
            )
            return True

    def restart(self, entry: Entry) -> None:
        """A reconciled row whose message was not created: record a fresh attempt."""
        now = time.time()
        with self._transaction(durable=True) as db:
            db.execute(
                "UPDATE deliveries SET state = 'pending', body = ?, body_sha256 = ?, "
                "recipient = ?, sender = ?, messaging_service_sid = ?, account_sid = ?, "
                "attempts = attempts + 1, attempted_at = ?, updated_at = ? "
                "WHERE key = ? AND owner = ?",
                (
                    entry.body,
                    entry.body_sha256,
                    entry.to,
                    entry.sender,
                    entry.messaging_service_sid,
                    entry.account_sid,
                    now,
                    now,
                    entry.key,
                    self.run_id,
                ),
            )

    def mark_sent(self, key: str, sid: str, segments: int | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET state = 'sent', sid = ?, segments = ?, body = NULL, "
                "owner = NULL, error_code = NULL, error_message = NULL, updated_at = ? "
                "WHERE key = ?",
                (sid, segments, time.time(), key),
            )

    def mark_failed(self, key: str, code: int | None, message: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET state = 'failed', error_code = ?, error_message = ?, "
                "body = NULL, owner = NULL, updated_at = ? WHERE key = ?",
                (code, message[:500], time.time(), key),
            )

    def mark_unknown(self, key: str, message: str) -> None:
        """The call may have reached Twilio and the log could not tell: the next run looks."""
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET state = 'unknown', error_message = ?, updated_at = ? WHERE key = ?",
                (message[:500], time.time(), key),
            )

    def release(self, key: str, previous: Row | None = None) -> None:
        """Give up a claim whose message was certainly not created (restore what was before)."""
        with self._transaction() as db:
            if previous is not None and previous.state in (State.SENT, State.FAILED):
                db.execute(
                    "UPDATE deliveries SET state = ?, sid = ?, segments = ?, error_code = ?, "
                    "error_message = ?, body = NULL, owner = NULL, updated_at = ? WHERE key = ?",
                    (
                        previous.state.value,
                        previous.sid,
                        previous.segments,
                        previous.error_code,
                        previous.error_message,
                        time.time(),
                        key,
                    ),
                )
            else:
                db.execute("DELETE FROM deliveries WHERE key = ? AND state = 'pending'", (key,))


def _lock_file(handle: IO[bytes], *, blocking: bool) -> None:
    """An exclusive lock on *handle*; BlockingIOError when not *blocking* and held elsewhere."""
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            raise BlockingIOError(str(exc)) from None
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)


class ReadOnlyLedger:
    """A look into a ledger without writing to it (``send --dry-run``)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def get(self, key: str) -> Row | None:
        try:
            record = self._connection.execute("SELECT * FROM deliveries WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        return Row.from_db(record) if record else None

    def close(self) -> None:
        self._connection.close()


def read_only(path: Path) -> ReadOnlyLedger | None:
    """The ledger at *path* opened read-only, or None if there is none (yet)."""
    if not Path(path).is_file():
        return None
    try:
        connection = sqlite3.connect(
            f"{Path(path).resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
    except sqlite3.Error:
        return None
    connection.row_factory = sqlite3.Row
    return ReadOnlyLedger(connection)
