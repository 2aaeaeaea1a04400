"""The ledger in an SQLite file: the embedded default.

One file, in WAL mode, written with ``BEGIN IMMEDIATE`` (one writer at a time,
across processes). Claims are synced to disk before the request leaves
(``synchronous = FULL``); outcomes need not be, since a lost outcome leaves its
key open and the next run finds the message in Twilio's log.

The file is checked when it opens, before anything is sent: a zero-byte file,
a file that is not SQLite, an SQLite file that is not a smspipe ledger
(``application_id``), a missing table or a failed integrity check are refused
(:class:`LedgerDamaged`, exit 2), never started afresh. A ledger reached by
several names is one ledger: symbolic links and relative paths are resolved,
and a hard link is opened by the name recorded in the file (SQLite names its
``-wal`` and ``-shm`` files after the path it was given, so two names would be
two write locks).

Schema 1 (smspipe before the ledger package) is migrated in place; its rows
keyed by a content hash of account, sender and text are found by that hash
(``legacy_keys``) and re-keyed on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from smspipe import lifecycle
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
    Merged,
    Message,
    OptOut,
    RunInfo,
    SentQuery,
    SentRecord,
    Settings,
    StoredKey,
    chunks,
    difference,
    key_row_from_row,
    ledger_fix,
    message_from_row,
    new_row,
    new_version,
    process_alive,
    stored_key_from_row,
)
from smspipe.spelling import setting

#: "SMSP": PRAGMA application_id of a smspipe ledger
APPLICATION_ID = 0x534D5350
SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 30_000
SQLITE_HEADER = b"SQLite format 3\x00"
#: integrity_check compares every index with its table (a scribbled key shows);
#: beyond this size the cheaper quick_check is run at start-up instead.
FULL_CHECK_MAX_BYTES = 64 * 1024 * 1024
#: ended runs are forgotten after this long (unless they still own a key)
RUNS_KEPT_SECONDS = 7 * 24 * 3600
TABLES = ("meta", "runs", "deliveries", "messages", "optouts")
#: the tables each schema version has (a missing one: damaged)
TABLES_BY_VERSION = {2: TABLES[:4], 3: TABLES}
#: the starts of a --rate shared by every run of the ledger (made on first use)
PACE_TABLE = "CREATE TABLE IF NOT EXISTS pace (name TEXT PRIMARY KEY, last_start REAL NOT NULL)"

SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    machine       TEXT,
    process_start TEXT,
    started_at    REAL NOT NULL,
    lease_until   REAL NOT NULL,
    ended_at      REAL
);
CREATE TABLE deliveries (
    key                   TEXT PRIMARY KEY,
    state                 TEXT NOT NULL CHECK (state IN ('sending', 'sent', 'unknown', 'failed')),
    recipient             TEXT NOT NULL,
    sender                TEXT,
    messaging_service_sid TEXT,
    account_sid           TEXT,
    body                  TEXT,
    body_sha256           TEXT,
    media_sha256          TEXT,
    match_sha256          TEXT,
    sid                   TEXT,
    segments              INTEGER,
    error_code            INTEGER,
    error_message         TEXT,
    owner                 TEXT,
    attempts              INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    attempted_at          REAL,
    updated_at            REAL NOT NULL,
    version               INTEGER NOT NULL,
    legacy                INTEGER NOT NULL DEFAULT 0 CHECK (legacy IN (0, 1))
);
CREATE TABLE messages (
    sid                   TEXT PRIMARY KEY,
    key                   TEXT NOT NULL,
    recipient             TEXT NOT NULL,
    sender                TEXT,
    messaging_service_sid TEXT,
    account_sid           TEXT,
    segments              INTEGER,
    body_sha256           TEXT,
    media_sha256          TEXT,
    found_in_log          INTEGER NOT NULL DEFAULT 0 CHECK (found_in_log IN (0, 1)),
    run_id                TEXT,
    created_at            REAL NOT NULL,
    status                TEXT,
    status_rank           INTEGER,
    error_code            INTEGER,
    error_message         TEXT,
    price                 TEXT,
    price_unit            TEXT,
    date_sent             REAL,
    date_updated          REAL,
    checked_at            REAL
);
CREATE TABLE optouts (
    phone    TEXT PRIMARY KEY,
    source   TEXT NOT NULL,
    added_at REAL NOT NULL
);
"""

INDEXES = """
CREATE INDEX deliveries_open ON deliveries (recipient, match_sha256)
    WHERE state IN ('sending', 'unknown');
CREATE INDEX deliveries_legacy ON deliveries (account_sid) WHERE legacy = 1;
CREATE INDEX messages_key ON messages (key, created_at);
CREATE INDEX messages_recipient ON messages (recipient, created_at);
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX messages_pending ON messages (created_at) WHERE status_rank IS NULL OR status_rank < 5;
"""

# Schema 2 -> 3 (issue 14): delivery status on messages, the suppression list.
MIGRATE_FROM_2 = """
ALTER TABLE messages ADD COLUMN status TEXT;
ALTER TABLE messages ADD COLUMN status_rank INTEGER;
ALTER TABLE messages ADD COLUMN error_code INTEGER;
ALTER TABLE messages ADD COLUMN error_message TEXT;
ALTER TABLE messages ADD COLUMN price TEXT;
ALTER TABLE messages ADD COLUMN price_unit TEXT;
ALTER TABLE messages ADD COLUMN date_sent REAL;
ALTER TABLE messages ADD COLUMN date_updated REAL;
ALTER TABLE messages ADD COLUMN checked_at REAL;
CREATE TABLE optouts (
    phone    TEXT PRIMARY KEY,
    source   TEXT NOT NULL,
    added_at REAL NOT NULL
);
DROP INDEX messages_recipient;
CREATE INDEX messages_recipient ON messages (recipient, created_at);
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX messages_pending ON messages (created_at) WHERE status_rank IS NULL OR status_rank < 5;
"""

MIGRATE_FROM_1 = """
ALTER TABLE deliveries RENAME TO deliveries_v1;
{schema}
INSERT INTO deliveries (key, state, recipient, sender, messaging_service_sid, account_sid, body,
        body_sha256, sid, segments, error_code, error_message, owner, attempts, attempted_at,
        updated_at, version, legacy)
    SELECT key, CASE state WHEN 'pending' THEN 'sending' ELSE state END, recipient, sender,
        messaging_service_sid, account_sid, body, body_sha256, sid, segments, error_code,
        error_message, owner, attempts, attempted_at, updated_at, abs(random()) % 4611686018427387904,
        key LIKE 'sha256:%'
    FROM deliveries_v1;
INSERT OR IGNORE INTO messages (sid, key, recipient, sender, messaging_service_sid, account_sid,
        segments, body_sha256, run_id, created_at)
    SELECT sid, key, recipient, sender, messaging_service_sid, account_sid, segments, body_sha256,
        NULL, updated_at
    FROM deliveries_v1 WHERE sid IS NOT NULL;
DROP TABLE deliveries_v1;
{indexes}
"""

_ROW = (
    "SELECT d.*, r.host AS r_host, r.pid AS r_pid, r.machine AS r_machine, "
    "r.process_start AS r_process_start, r.lease_until AS r_lease_until, r.ended_at AS r_ended_at "
    "FROM deliveries d LEFT JOIN runs r ON r.run_id = d.owner "
)


class _Batch:
    """The batch in progress: the error that lost it, if one did; when the lease was checked."""

    __slots__ = ("lease_checked", "lost")

    def __init__(self) -> None:
        self.lost: Exception | None = None
        self.lease_checked = False


class SqliteLedger(Ledger):
    """A ledger in an SQLite file (open it with :func:`open_sqlite`)."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        location: str,
        path: Path,
        read_only: bool,
        schema: int,
        settings: Settings,
        run: RunInfo,
    ) -> None:
        self._db = connection
        self.location = location
        self.path = path
        self.read_only = read_only
        self._schema = schema
        self.settings = settings
        self.run = run
        self._durable: bool | None = None
        self._batch: _Batch | None = None
        self._pace_ready = False
        self._started = False
        self._lost = False
        self._legacy_accounts: tuple[str | None, ...] | None = None

    # --- transactions and faults ----------------------------------------------------

    @contextlib.contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction (in a batch: part of the batch's); SQLite's faults become
        the ledger's errors.

        *durable* transactions are synced to disk at commit (a claim must be on
        disk before its request leaves, also across a power cut). In WAL mode a
        synced commit also makes every earlier commit durable.
        """
        if self._batch is not None:
            with self._in_batch() as db:
                yield db
            return
        db = self._db
        with self.faults("write"):
            self._synchronous(durable)
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _synchronous(self, durable: bool) -> None:
        # Set outside a transaction only: SQLite ignores it inside one.
        if self._durable is not durable:
            self._db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable

    @contextlib.contextmanager
    def batch(self, *, durable: bool = True) -> Iterator[None]:
        """Group commit: one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (synced to disk once, when
        *durable*) for every operation inside.

        An operation that fails before it writes (a lapsed lease) fails alone; any
        other failure inside ends the batch: its transaction is rolled back, and every
        operation in it fails with that error (a fault means the ledger cannot be
        trusted to record, and no operation is ever left half done).
        """
        if self._batch is not None or self.read_only:
            yield
            return
        db = self._db
        with self.faults("write"):
            self._synchronous(durable)
            db.execute("BEGIN IMMEDIATE")
        batch = self._batch = _Batch()
        try:
            yield
        except BaseException:
            self._batch = None
            self._roll_back()
            raise
        self._batch = None
        if batch.lost is not None:
            self._roll_back()
            raise batch.lost
        with self.faults("write"):
            db.execute("COMMIT")

    @contextlib.contextmanager
    def _in_batch(self) -> Iterator[sqlite3.Connection]:
        """One operation's writes in the batch's transaction: a failure loses the batch."""
        batch = self._batch
        assert batch is not None
        if batch.lost is not None:
            raise batch.lost
        try:
            with self.faults("write"):
                yield self._db
        except LeaseLost:
            raise  # raised before anything was written
        except Exception as exc:
            if batch.lost is None:
                batch.lost = exc
            raise

    @contextlib.contextmanager
    def faults(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            error = translate_fault(exc, self.location, self.path, action)
            self._after_fault(error)
            raise error from None
        except ValueError as exc:  # a value that is not text, not a state: scribbled
            error = LedgerDamaged(
                f"the ledger {self.location} is damaged (a stored value is unreadable: {exc})",
                hint=ledger_fix(),
            )
            self._after_fault(error)
            raise error from None

    def _after_fault(self, error: Exception) -> None:
        """Outside a batch, the transaction is rolled back; inside, the batch is lost."""
        if self._batch is None:
            self._roll_back()
        elif self._batch.lost is None:
            self._batch.lost = error

    def _roll_back(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _now(self) -> float:
        return time.time()

    # --- runs ------------------------------------------------------------------------

    def start_run(self) -> None:
        if self.read_only:
            return
        now = self._now()
        run = self.run
        with self._write(durable=True) as db:
            db.execute(
                "DELETE FROM runs WHERE ended_at < ? AND run_id NOT IN "
                "(SELECT owner FROM deliveries WHERE owner IS NOT NULL)",
                (now - RUNS_KEPT_SECONDS,),
            )
            db.execute(
                "INSERT INTO runs (run_id, host, pid, machine, process_start, started_at, lease_until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.host,
                    run.pid,
                    run.machine,
                    run.process_start,
                    now,
                    now + self.settings.lease,
                ),
            )
        self._started = True

    def heartbeat(self) -> bool:
        if self.read_only or self._lost:
            return not self._lost
        now = self._now()
        with self._write() as db:
            renewed = db.execute(
                "UPDATE runs SET lease_until = ? WHERE run_id = ? AND ended_at IS NULL AND lease_until >= ?",
                (now + self.settings.lease, self.run.run_id, now),
            ).rowcount
        self._lost = renewed == 0
        return not self._lost

    def end_run(self) -> None:
        if self.read_only or not self._started:
            return
        now = self._now()
        with self._write() as db:
            db.execute(
                "UPDATE runs SET ended_at = ?, lease_until = min(lease_until, ?) WHERE run_id = ?",
                (now, now, self.run.run_id),
            )
        self._started = False

    def _check_lease(self, db: sqlite3.Connection, now: float) -> None:
        batch = self._batch
        if batch is not None and batch.lease_checked:
            return  # once per batch: no other run writes while its transaction holds the lock
        row = db.execute(
            "SELECT lease_until, ended_at FROM runs WHERE run_id = ?", (self.run.run_id,)
        ).fetchone()
        if row is None or row["ended_at"] is not None or row["lease_until"] < now:
            self._lost = True
            raise LeaseLost(
                f"this run's lease on the ledger {self.location} lapsed (the process was "
                f"stopped or stalled for more than {self.settings.lease:g} s): another run may "
                "hold its messages now, so it sends nothing more",
                hint="run again; raise `run_lease` if the machine stalls this long",
            )
        if batch is not None:
            batch.lease_checked = True

    # --- reads -----------------------------------------------------------------------

    def get(self, key: str, legacy_keys: tuple[str, ...] = ()) -> KeyRow | None:
        with self.faults("read"):
            if self._schema == 1:
                return self._get_v1(key, legacy_keys)
            record = self._db.execute(_ROW + "WHERE d.key = ?", (key,)).fetchone()
            if record is not None or not legacy_keys:
                return self._row(record) if record else None
            for legacy_key in legacy_keys:
                found = self._db.execute(_ROW + "WHERE d.key = ? AND d.legacy = 1", (legacy_key,)).fetchone()
                if found is not None:
                    if self.read_only:
                        return self._row(found)
                    break
            else:
                return None
        return self._rekey(legacy_key, key)

    def _rekey(self, legacy_key: str, key: str) -> KeyRow | None:
        """A schema 1 row found by its content hash takes the document's key (once)."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM deliveries WHERE key = ?", (key,)).fetchone() is None:
                db.execute(
                    "UPDATE deliveries SET key = ?, legacy = 0, version = ? WHERE key = ? AND legacy = 1",
                    (key, new_version(), legacy_key),
                )
                db.execute("UPDATE messages SET key = ? WHERE key = ?", (key, legacy_key))
            record = db.execute(_ROW + "WHERE d.key = ?", (key,)).fetchone()
        return self._row(record) if record else None

    def _row(self, record: sqlite3.Row) -> KeyRow:
        latest = self._db.execute(
            "SELECT * FROM messages WHERE key = ? ORDER BY created_at DESC LIMIT 1", (record["key"],)
        ).fetchone()
        now = self._now()
        return key_row_from_row(
            record,
            now=now,
            holder=self._holder(record, now),
            latest=message_from_row(latest) if latest else None,
        )

    def _holder(self, record: sqlite3.Row, now: float) -> Holder | None:
        owner = record["owner"]
        if owner is None or KeyState(record["state"]) not in OPEN_STATES:
            return None
        if owner == self.run.run_id:
            return Holder(owner, this_run=True, alive=not self._lost, description="this run")
        host = record["r_host"]
        if host is None:
            return Holder(owner, this_run=False, alive=False, description="a run that is gone")
        pid = record["r_pid"]
        alive = record["r_ended_at"] is None and record["r_lease_until"] >= now
        if alive and record["r_machine"] and record["r_machine"] == self.run.machine:
            # Same machine: a pid that is gone (kill -9) is dead at once, lease or not.
            alive = process_alive(pid, record["r_process_start"]) is not False
        return Holder(owner, this_run=False, alive=alive, description=f"pid {pid} on {host}")

    def _get_v1(self, key: str, legacy_keys: tuple[str, ...]) -> KeyRow | None:
        """A read-only look into a schema 1 ledger (a dry run before the first real run)."""
        for candidate in (key, *legacy_keys):
            record = self._db.execute("SELECT * FROM deliveries WHERE key = ?", (candidate,)).fetchone()
            if record is not None:
                break
        else:
            return None
        state = "sending" if record["state"] == "pending" else record["state"]
        sid = record["sid"]
        latest = Message(sid, record["key"], record["recipient"]) if sid else None
        return KeyRow(
            key=record["key"],
            state=KeyState(state),
            recipient=record["recipient"],
            sender=record["sender"],
            messaging_service_sid=record["messaging_service_sid"],
            account_sid=record["account_sid"],
            body=record["body"],
            body_sha256=record["body_sha256"],
            media_sha256=None,
            sid=sid,
            segments=record["segments"],
            error_code=record["error_code"],
            error_message=record["error_message"],
            holder=None
            if record["owner"] is None
            else Holder(record["owner"], False, False, "a run of an earlier smspipe"),
            attempts=record["attempts"],
            attempt_age=None,
            version=0,
            latest=latest,
            legacy=key != record["key"],
        )

    def get_many(self, keys: Sequence[str]) -> dict[str, KeyRow]:
        if self._schema == 1:
            return super().get_many(keys)
        rows: dict[str, KeyRow] = {}
        unique = list(dict.fromkeys(keys))
        with self.faults("read"):
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                marks = ", ".join("?" * len(part))
                for record in self._db.execute(_ROW + f"WHERE d.key IN ({marks})", part).fetchall():
                    rows[record["key"]] = self._row(record)
        return rows

    def legacy_accounts(self) -> tuple[str | None, ...]:
        if self._legacy_accounts is None:
            query = (
                "SELECT DISTINCT account_sid FROM deliveries WHERE key LIKE 'sha256:%'"
                if self._schema == 1
                else "SELECT DISTINCT account_sid FROM deliveries WHERE legacy = 1"
            )
            with self.faults("read"):
                self._legacy_accounts = tuple(row[0] for row in self._db.execute(query))
        return self._legacy_accounts

    def known_sids(self, recipient: str) -> frozenset[str]:
        if self._schema == 1:
            return frozenset()
        with self.faults("read"):
            rows = self._db.execute("SELECT sid FROM messages WHERE recipient = ?", (recipient,)).fetchall()
        return frozenset(row[0] for row in rows)

    def orphans(self, limit: int = 10_000) -> list[KeyRow]:
        if self._schema == 1:
            return []
        with self.faults("read"):
            records = self._db.execute(
                _ROW + "WHERE d.state IN ('sending', 'unknown') LIMIT ?", (limit,)
            ).fetchall()
            rows = [self._row(record) for record in records]
        return [row for row in rows if row.holder is None or not row.holder.alive]

    def counts(self) -> Counts:
        with self.faults("read"):
            states = dict(
                self._db.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
            )
            messages = 0
            if self._schema >= 2:
                messages = self._db.execute("SELECT count(*) FROM messages").fetchone()[0]
        return Counts(by_state=states, messages=messages)

    # --- pacing shared by every run of the ledger ----------------------------------------

    def take_turn(self, name: str, interval: float) -> float:
        now = self._now()
        with self._write() as db:
            if not self._pace_ready:
                # Made on first use: a ledger without it is as good (older smspipe ignores it).
                db.execute(PACE_TABLE)
                self._pace_ready = True
            row = db.execute("SELECT last_start FROM pace WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] + interval > now:
                return float(row[0] + interval - now)
            db.execute(
                "INSERT INTO pace (name, last_start) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_start = excluded.last_start",
                (name, now),
            )
        return 0.0

    # --- moving history between ledgers ----------------------------------------------------

    def history(self) -> Iterator[StoredKey]:
        if self._schema < SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self.location} has schema {self._schema}",
                hint="run `smspipe ledger migrate` on it first",
            )
        after = ""
        while True:
            with self.faults("read"):
                records = self._db.execute(
                    "SELECT * FROM deliveries WHERE key > ? ORDER BY key LIMIT 500", (after,)
                ).fetchall()
                found = [self._stored(record) for record in records]
            if not found:
                return
            yield from found
            after = found[-1].key

    def _stored(self, record: sqlite3.Row) -> StoredKey:
        messages = self._db.execute(
            "SELECT * FROM messages WHERE key = ? ORDER BY created_at", (record["key"],)
        ).fetchall()
        return stored_key_from_row(record, (message_from_row(message) for message in messages))

    def merge(self, keys: Iterable[StoredKey]) -> Merged:
        merged = Merged()
        for chunk in chunks(keys, 200):
            with self._write(durable=True) as db:
                for stored in chunk:
                    self._merge_one(db, stored, merged)
        return merged

    def _merge_one(self, db: sqlite3.Connection, stored: StoredKey, merged: Merged) -> None:
        existing = db.execute("SELECT * FROM deliveries WHERE key = ?", (stored.key,)).fetchone()
        if existing is not None:
            here = self._stored(existing)
            if here.same_as(stored):
                merged.present += 1
            else:
                merged.conflicts.append((stored.key, difference(here, stored)))
            return
        for message in stored.messages:
            owner = db.execute("SELECT key FROM messages WHERE sid = ?", (message.sid,)).fetchone()
            if owner is not None:
                merged.conflicts.append((stored.key, f"its message {message.sid} is {owner[0]}'s here"))
                return
        db.execute(
            "INSERT INTO deliveries (key, state, recipient, sender, messaging_service_sid, account_sid, "
            "body, body_sha256, media_sha256, match_sha256, sid, segments, error_code, error_message, "
            "owner, attempts, attempted_at, updated_at, version, legacy) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            stored.copied_columns(new_version()),
        )
        for message in stored.messages:
            db.execute(
                "INSERT INTO messages (sid, key, recipient, sender, messaging_service_sid, account_sid, "
                "segments, body_sha256, media_sha256, found_in_log, run_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                message.copied_columns(stored.key, stored.updated_at),
            )
        merged.added += 1

    # --- writes ----------------------------------------------------------------------

    def claim(self, key: str, version: int | None, attempt: Attempt) -> KeyRow | None:
        now = self._now()
        with self._write(durable=True) as db:
            self._check_lease(db, now)
            fresh = new_version()
            values = (*attempt.columns(), self.run.run_id, now, now, fresh)
            if version is None:
                inserted = db.execute(
                    "INSERT INTO deliveries (recipient, sender, messaging_service_sid, account_sid, "
                    "body, body_sha256, media_sha256, match_sha256, owner, attempted_at, updated_at, "
                    "version, key, state, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "'sending', 1) ON CONFLICT (key) DO NOTHING",
                    (*values, key),
                ).rowcount
                # A new row holds what was just written: no need to read it back.
                return new_row(key, attempt, self.run.run_id, fresh) if inserted else None
            else:
                changed = db.execute(
                    "UPDATE deliveries SET recipient = ?, sender = ?, messaging_service_sid = ?, "
                    "account_sid = ?, body = ?, body_sha256 = ?, media_sha256 = ?, match_sha256 = ?, "
                    "owner = ?, attempted_at = ?, updated_at = ?, version = ?, state = 'sending', "
                    "attempts = attempts + 1, error_code = NULL, error_message = NULL, legacy = 0 "
                    "WHERE key = ? AND version = ?",
                    (*values, key, version),
                ).rowcount
                if not changed:
                    return None
            record = db.execute(_ROW + "WHERE d.key = ?", (key,)).fetchone()
            return self._row(record)

    def adopt(self, key: str, version: int) -> KeyRow | None:
        now = self._now()
        with self._write(durable=True) as db:
            self._check_lease(db, now)
            changed = db.execute(
                "UPDATE deliveries SET owner = ?, version = ?, updated_at = ? "
                "WHERE key = ? AND version = ? AND state IN ('sending', 'unknown')",
                (self.run.run_id, new_version(), now, key, version),
            ).rowcount
            if not changed:
                return None
            record = db.execute(_ROW + "WHERE d.key = ?", (key,)).fetchone()
            return self._row(record)

    def touch(self, key: str) -> None:
        now = self._now()
        with self._write(durable=True) as db:
            self._check_lease(db, now)
            db.execute(
                "UPDATE deliveries SET attempted_at = ?, attempts = attempts + 1, updated_at = ? "
                "WHERE key = ? AND owner = ?",
                (now, now, key, self.run.run_id),
            )

    def record_sent(self, key: str, message: Message) -> None:
        with self._write() as db:
            self._record(db, key, message, found_in_log=False)

    def record_found(self, key: str, message: Message, match_sha256: str | None) -> FoundOutcome:
        with self._write() as db:
            owner = db.execute("SELECT key FROM messages WHERE sid = ?", (message.sid,)).fetchone()
            if owner is not None and owner[0] != key:
                return FoundOutcome.TAKEN
            if match_sha256 is not None:
                rival = db.execute(
                    "SELECT 1 FROM deliveries WHERE recipient = ? AND match_sha256 = ? "
                    "AND state IN ('sending', 'unknown') AND key != ? LIMIT 1",
                    (message.recipient, match_sha256, key),
                ).fetchone()
                if rival is not None:
                    return FoundOutcome.AMBIGUOUS
            self._record(db, key, message, found_in_log=True)
        return FoundOutcome.RECORDED

    def _record(self, db: sqlite3.Connection, key: str, message: Message, *, found_in_log: bool) -> None:
        now = self._now()
        inserted = db.execute(
            "INSERT INTO messages (sid, key, recipient, sender, messaging_service_sid, account_sid, "
            "segments, body_sha256, media_sha256, found_in_log, run_id, created_at, status, status_rank) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sid) DO NOTHING",
            (
                *message.columns(
                    key,
                    found_in_log=found_in_log,
                    run_id=self.run.run_id,
                    created_at=message.created_at or now,
                ),
                message.status,
                lifecycle.rank(message.status),
            ),
        ).rowcount
        owner = (
            None
            if inserted
            else db.execute("SELECT key FROM messages WHERE sid = ?", (message.sid,)).fetchone()
        )
        if owner is not None and owner[0] != key and not found_in_log:
            # Twilio's answer to a create names its message beyond doubt: a key that
            # took this SID from the log gives it back and is open again.
            db.execute(
                "UPDATE deliveries SET state = 'unknown', owner = NULL, version = ?, updated_at = ?, "
                "error_message = 'its message in the log was another key''s' WHERE key = ? AND sid = ?",
                (new_version(), now, owner[0], message.sid),
            )
            db.execute("UPDATE messages SET key = ?, found_in_log = 0 WHERE sid = ?", (key, message.sid))
        values = (
            message.sid,
            message.segments,
            message.recipient,
            message.sender,
            message.messaging_service_sid,
            message.account_sid,
            message.body_sha256,
            message.media_sha256,
            now,
            new_version(),
        )
        changed = db.execute(
            "UPDATE deliveries SET state = 'sent', sid = ?, segments = ?, recipient = ?, sender = ?, "
            "messaging_service_sid = ?, account_sid = ?, body_sha256 = coalesce(?, body_sha256), "
            "media_sha256 = coalesce(?, media_sha256), updated_at = ?, version = ?, body = NULL, "
            "owner = NULL, error_code = NULL, error_message = NULL WHERE key = ?",
            (*values, key),
        ).rowcount
        if not changed:  # released meanwhile by a run that took it for absent: it was not
            db.execute(
                "INSERT INTO deliveries (sid, segments, recipient, sender, messaging_service_sid, "
                "account_sid, body_sha256, media_sha256, updated_at, version, key, state, attempts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sent', 1)",
                (*values, key),
            )

    def record_failed(self, key: str, code: int | None, message: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE deliveries SET state = 'failed', error_code = ?, error_message = ?, body = NULL, "
                "owner = NULL, version = ?, updated_at = ? WHERE key = ?",
                (code, message[:500], new_version(), self._now(), key),
            )

    def record_unknown(self, key: str, message: str, attempt_age: float | None = None) -> None:
        now = self._now()
        attempted = None if attempt_age is None else now - attempt_age
        with self._write() as db:
            db.execute(
                "UPDATE deliveries SET state = 'unknown', error_message = ?, "
                "attempted_at = coalesce(?, attempted_at), version = ?, updated_at = ? WHERE key = ?",
                (message[:500], attempted, new_version(), now, key),
            )

    def release(self, key: str) -> None:
        now = self._now()
        with self._write() as db:
            latest = db.execute(
                "SELECT * FROM messages WHERE key = ? ORDER BY created_at DESC LIMIT 1", (key,)
            ).fetchone()
            if latest is None:
                db.execute("DELETE FROM deliveries WHERE key = ?", (key,))
                return
            db.execute(
                "UPDATE deliveries SET state = 'sent', sid = ?, segments = ?, recipient = ?, sender = ?, "
                "messaging_service_sid = ?, account_sid = ?, body_sha256 = ?, media_sha256 = ?, "
                "body = NULL, owner = NULL, error_code = NULL, error_message = NULL, version = ?, "
                "updated_at = ? WHERE key = ?",
                (
                    latest["sid"],
                    latest["segments"],
                    latest["recipient"],
                    latest["sender"],
                    latest["messaging_service_sid"],
                    latest["account_sid"],
                    latest["body_sha256"],
                    latest["media_sha256"],
                    new_version(),
                    now,
                    key,
                ),
            )

    # --- delivery status ----------------------------------------------------------------

    def sent(self, query: SentQuery) -> list[SentRecord]:
        if self._schema == 1:
            return []
        if self._schema == 2 and query.statuses is not None:
            # No status is known in schema 2: every message is pending.
            if "pending" not in query.statuses:
                return []
            query = dataclasses.replace(query, statuses=None)
        where, values = _sent_filters(query)
        columns = _SENT_COLUMNS if self._schema >= 3 else _SENT_COLUMNS_V2
        order = "created_at DESC, sid" if query.limit is not None else "created_at, sid"
        # Only constants and placeholders are joined here: every value is a parameter.
        sql = f"SELECT {columns} FROM messages {where} ORDER BY {order}"  # noqa: S608
        if query.limit is not None:
            sql += " LIMIT ?"
            values.append(query.limit)
        with self.faults("read"):
            records = self._db.execute(sql, values).fetchall()
        found = [SentRecord(**dict(record)) for record in records]
        return found[::-1] if query.limit is not None else found

    def update_delivery(self, sid: str, delivery: Delivery) -> bool:
        rank = lifecycle.rank(delivery.status)
        with self._write() as db:
            changed = db.execute(
                "UPDATE messages SET status = ?, status_rank = ?, error_code = ?, error_message = ?, "
                "price = coalesce(?, price), price_unit = coalesce(?, price_unit), "
                "date_sent = coalesce(?, date_sent), date_updated = coalesce(?, date_updated), "
                "segments = coalesce(?, segments), checked_at = ? "
                "WHERE sid = ? AND (status_rank IS NULL OR status_rank < ?)",
                (
                    delivery.status,
                    rank,
                    delivery.error_code,
                    None if delivery.error_message is None else delivery.error_message[:500],
                    delivery.price,
                    delivery.price_unit,
                    delivery.date_sent,
                    delivery.date_updated,
                    delivery.segments,
                    self._now(),
                    sid,
                    rank,
                ),
            ).rowcount
            if not changed:
                # The same status again may bring what it lacked (a price once final, an error code).
                db.execute(
                    "UPDATE messages SET price = coalesce(price, ?), price_unit = coalesce(?, price_unit), "
                    "date_sent = coalesce(date_sent, ?), error_code = coalesce(error_code, ?), "
                    "error_message = coalesce(error_message, ?), checked_at = ? WHERE sid = ? AND status = ?",
                    (
                        delivery.price,
                        delivery.price_unit,
                        delivery.date_sent,
                        delivery.error_code,
                        None if delivery.error_message is None else delivery.error_message[:500],
                        self._now(),
                        sid,
                        delivery.status,
                    ),
                )
        return bool(changed)

    def sent_since(self, recipient: str, since: float) -> int:
        if self._schema == 1:
            return 0
        with self.faults("read"):
            found = self._db.execute(
                "SELECT count(*) FROM messages WHERE recipient = ? AND created_at >= ?", (recipient, since)
            ).fetchone()
        return int(found[0])

    # --- the suppression list -----------------------------------------------------------

    def add_optouts(self, phones: Iterable[str], source: str) -> int:
        now = self._now()
        with self._write() as db:
            return sum(
                db.execute(
                    "INSERT OR IGNORE INTO optouts (phone, source, added_at) VALUES (?, ?, ?)",
                    (phone, source, now),
                ).rowcount
                for phone in dict.fromkeys(phones)
            )

    def remove_optouts(self, phones: Iterable[str]) -> int:
        with self._write() as db:
            return sum(
                db.execute("DELETE FROM optouts WHERE phone = ?", (phone,)).rowcount
                for phone in dict.fromkeys(phones)
            )

    def optouts(self) -> list[OptOut]:
        if self._schema < 3:
            return []
        with self.faults("read"):
            records = self._db.execute(
                "SELECT phone, source, added_at FROM optouts ORDER BY added_at, phone"
            ).fetchall()
        return [OptOut(**dict(record)) for record in records]

    def opted_out(self, phone: str) -> OptOut | None:
        if self._schema < 3:
            return None
        with self.faults("read"):
            record = self._db.execute(
                "SELECT phone, source, added_at FROM optouts WHERE phone = ?", (phone,)
            ).fetchone()
        return OptOut(**dict(record)) if record is not None else None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


_SENT_BASE = "sid, key, recipient, sender, messaging_service_sid, account_sid, segments, created_at"
_SENT_COLUMNS = (
    _SENT_BASE + ", status, error_code, error_message, price, price_unit, date_sent, date_updated, checked_at"
)
#: a schema 2 ledger read without migrating it (a look before the first run of this version)
_SENT_COLUMNS_V2 = _SENT_BASE


def _sent_filters(query: SentQuery) -> tuple[str, list[object]]:
    """The WHERE clause of :meth:`SqliteLedger.sent`, and its values."""
    clauses: list[str] = []
    values: list[object] = []
    if query.since is not None:
        clauses.append("created_at >= ?")
        values.append(query.since)
    if query.to is not None:
        clauses.append("recipient = ?")
        values.append(query.to)
    if query.key is not None:
        clauses.append("key = ?")
        values.append(query.key)
    if query.sid is not None:
        clauses.append("sid = ?")
        values.append(query.sid)
    if query.statuses is not None:
        named = sorted(query.statuses - {"pending"})
        alternatives = []
        if named:
            alternatives.append(f"status IN ({', '.join('?' * len(named))})")
            values.extend(named)
        if "pending" in query.statuses:
            alternatives.append(f"status_rank IS NULL OR status_rank < {lifecycle.FINAL_RANK}")
        clauses.append("(" + " OR ".join(alternatives or ["0"]) + ")")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", values


# --- faults ------------------------------------------------------------------------------


def translate_fault(exc: sqlite3.Error, location: str, path: Path, action: str) -> Exception:
    """An SQLite error as what it means for the run: damaged, read-only, full, busy."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or "disk is full" in text:
        cause = (
            "the disk is full" if "FULL" in name or "full" in text else f"the disk is full or failed ({text})"
        )
        return LedgerFull(
            f"the ledger {location} cannot be written: {cause}",
            hint="free some space (nothing more is sent until it can be recorded), or pass "
            f"{setting('ledger')} with a path on another disk",
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH", "SQLITE_CANTOPEN")):
        return read_only_error(location, path, text)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LedgerBusy(
            f"the ledger {location} stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s",
            hint="run again when the other run is done",
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return LedgerDamaged(f"the ledger {location} is damaged ({text})", hint=ledger_fix())
    if "no such table" in text:
        table = text.rsplit(":", 1)[-1].strip()
        return LedgerDamaged(f"the ledger {location} is damaged: table {table} is missing", hint=ledger_fix())
    return LedgerDamaged(f"the ledger {location} failed to {action}: {text}", hint=ledger_fix())


def read_only_error(location: str, path: Path, detail: str) -> LedgerReadOnly:
    directory = path.parent
    if not _can_create_in(directory):
        return LedgerReadOnly(
            f"the ledger {location} cannot be written: its directory {directory} is not writable "
            "(SQLite keeps its journal beside it)",
            hint=f"make the directory writable, or pass {setting('ledger')} with another path",
        )
    return LedgerReadOnly(
        f"the ledger {location} is read-only ({detail})",
        hint=f"make it writable (chmod u+w), or pass {setting('ledger')} with another path",
    )


def _can_create_in(directory: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


# --- opening ---------------------------------------------------------------------------------


def open_sqlite(
    path: str | Path,
    *,
    read_only: bool = False,
    settings: Settings | None = None,
    run: RunInfo | None = None,
    verify: bool = True,
) -> SqliteLedger | None:
    """The ledger at *path*, checked (see the module's docstring); None when *read_only*
    and there is no ledger yet. *verify* False skips the integrity check of the whole file
    (a one-row write per request, as a server's callbacks make: damage met on the way is
    still refused, page by page)."""
    given = Path(path).expanduser()
    location = str(given)
    real = Path(os.path.realpath(given))
    if real.is_dir():
        raise LedgerError(
            f"the ledger {location} is a directory", hint=f"pass {setting('ledger')} with a file's path"
        )
    if not real.exists():
        if read_only:
            return None
        _create(real, location)
    else:
        _check_file(real, location)
        real = _canonical(real)
    connection = _connect(real, location, read_only=read_only)
    try:
        schema = _check_schema(connection, real, location)
        if verify:
            _check_integrity(connection, real, location)
        if not read_only:
            _prepare(connection, real, location, schema)
            schema = SCHEMA_VERSION
    except BaseException:
        connection.close()
        raise
    return SqliteLedger(
        connection,
        location=location,
        path=real,
        read_only=read_only,
        schema=schema,
        settings=settings or Settings(),
        run=run or RunInfo.this_process(),
    )


def _create(real: Path, location: str) -> None:
    """A new ledger, made whole in a temporary file and linked into place.

    A run starting at the same moment finds either no file or a complete one,
    never an empty file it would have to refuse.
    """
    parent = real.parent
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise LedgerError(
            f"cannot create the directory {parent} for the ledger {location}: {exc.strerror}",
            hint=f"pass {setting('ledger')} PATH, set `ledger` in the config, or use {setting('no_ledger')}",
        ) from None
    try:
        # Owner only: it holds phone numbers and, while a key is open, message texts.
        handle, temporary = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".new", dir=parent)
    except OSError as exc:
        raise read_only_error(location, real, exc.strerror or str(exc)) from None
    os.close(handle)
    try:
        db = sqlite3.connect(temporary, isolation_level=None)
        try:
            with contextlib.closing(db):
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(
                    "BEGIN;" + SCHEMA + INDEXES + f"PRAGMA application_id = {APPLICATION_ID};"
                    f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                )
                db.execute("INSERT INTO meta (name, value) VALUES ('home', ?)", (str(real),))
        except sqlite3.Error as exc:
            raise translate_fault(exc, location, real, "be created") from None
        try:
            os.link(temporary, real)
        except FileExistsError:
            pass  # another run made it first: theirs is as good
        except OSError:
            if not real.exists():  # a file system without hard links
                os.replace(temporary, real)
    finally:
        for leftover in (temporary, temporary + "-wal", temporary + "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _check_file(real: Path, location: str) -> None:
    try:
        size = real.stat().st_size
        with real.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise LedgerError(f"cannot read the ledger {location}: {exc.strerror}", hint=ledger_fix()) from None
    if size == 0:
        raise LedgerDamaged(
            f"the ledger {location} is empty (0 bytes): it was damaged, and is never started afresh "
            "(that would send everything again)",
            hint=ledger_fix(),
        )
    if header != SQLITE_HEADER:
        raise LedgerDamaged(f"the ledger {location} is not an SQLite database", hint=ledger_fix())


def _canonical(real: Path) -> Path:
    """The name a ledger with several hard links was created under, if that is this file."""
    try:
        if real.stat().st_nlink <= 1:
            return real
        uri = real.as_uri() + "?mode=ro&immutable=1"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            record = db.execute("SELECT value FROM meta WHERE name = 'home'").fetchone()
    except (OSError, sqlite3.Error):
        return real
    if record is None:
        return real
    home = Path(record[0])
    with contextlib.suppress(OSError):
        if home != real and os.path.samefile(home, real):
            return home
    return real


def _connect(real: Path, location: str, *, read_only: bool) -> sqlite3.Connection:
    target = real.as_uri() + ("?mode=ro" if read_only else "?mode=rw")
    try:
        db = sqlite3.connect(
            target,
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise translate_fault(exc, location, real, "open") from None
    return db


def _check_schema(db: sqlite3.Connection, real: Path, location: str) -> int:
    """Which schema the file holds (1 or 2); refuses what is not a smspipe ledger."""
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise translate_fault(exc, location, real, "be read") from None
    except ValueError as exc:  # its schema is not text: scribbled
        raise LedgerDamaged(f"the ledger {location} is damaged ({exc})", hint=ledger_fix()) from None
    if application_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {location} was written by a newer smspipe (schema {version})",
                hint=f"upgrade smspipe, or pass {setting('ledger')} with another path",
            )
        required: tuple[str, ...] = TABLES_BY_VERSION.get(version, TABLES)
    elif application_id == 0 and version == 1 and "deliveries" in tables:
        required = ("deliveries",)
    else:
        raise LedgerDamaged(
            f"the ledger {location} is an SQLite database but not a smspipe ledger", hint=ledger_fix()
        )
    for table in required:
        if table not in tables:
            raise LedgerDamaged(
                f"the ledger {location} is damaged: table {table} is missing", hint=ledger_fix()
            )
    return int(version) if application_id == APPLICATION_ID else 1


def _check_integrity(db: sqlite3.Connection, real: Path, location: str) -> None:
    try:
        full = real.stat().st_size <= FULL_CHECK_MAX_BYTES
        check = "integrity_check" if full else "quick_check"
        verdict = db.execute(f"PRAGMA {check}(1)").fetchone()[0]
    except (OSError, sqlite3.Error, ValueError) as exc:
        raise LedgerDamaged(f"the ledger {location} is damaged ({exc})", hint=ledger_fix()) from None
    if verdict != "ok":
        detail = " ".join(str(verdict).replace("*** in database main ***", "").split())
        raise LedgerDamaged(
            f"the ledger {location} is damaged (SQLite's {check}: {detail})", hint=ledger_fix()
        )


def _prepare(db: sqlite3.Connection, real: Path, location: str, schema: int) -> None:
    """WAL mode, the schema migrated, the home name recorded: ready to write."""
    try:
        db.execute("PRAGMA journal_mode = WAL")
        if schema < SCHEMA_VERSION:
            _migrate(db)
        home = db.execute("SELECT value FROM meta WHERE name = 'home'").fetchone()
        if home is None or home[0] != str(real):
            with contextlib.suppress(OSError):
                if home is not None and os.path.samefile(home[0], real):
                    return
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('home', ?)", (str(real),))
    except sqlite3.Error as exc:
        raise translate_fault(exc, location, real, "be prepared") from None


def _migrate(db: sqlite3.Connection) -> None:
    """In place, in one transaction: schema 1 is rebuilt at the current schema, 2 gains columns."""
    db.execute("BEGIN IMMEDIATE")
    try:
        # Another run may have migrated it while this one waited for the lock.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            if version == 2 and db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                script = MIGRATE_FROM_2
            else:
                script = MIGRATE_FROM_1.format(schema=SCHEMA, indexes=INDEXES)
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""


def migrate(path: str | Path) -> tuple[int | None, int]:
    """Make or migrate the ledger at *path*: (the schema found, None for no ledger; the schema now)."""
    view = open_sqlite(path, read_only=True)
    found = None
    if view is not None:
        found = view._schema
        view.close()
    ledger = open_sqlite(path)
    assert ledger is not None
    ledger.close()
    return found, SCHEMA_VERSION
