"""The ledger in PostgreSQL: one ledger for several hosts.

Imported only when a ``postgresql://`` ledger is used (psycopg 3, the
``smspipe[postgres]`` extra). It keeps the contract of
:mod:`smspipe.ledger.base` as the SQLite ledger does, with the database's
own means:

- its tables live in the schema ``smspipe`` (``meta`` with the schema
  version, ``runs``, ``deliveries``, ``messages``, ``pace``), created and
  migrated by smspipe (on first use, or ``smspipe ledger migrate``) under an
  advisory lock, so hosts starting together make it once; a role that owns the
  database, or may create in it, is enough (no superuser);
- every time (leases, the age of an attempt, a shared ``--rate``) is the
  server's clock, so hosts agree on them;
- writes are compare-and-set on a row's version (an UPDATE re-checks its
  WHERE against the row another transaction committed), inserts of a key or
  a message that may race take ``ON CONFLICT DO NOTHING`` and look again;
  listing the open keys of dead runs skips rows another host holds locked
  (``FOR UPDATE SKIP LOCKED``);
- a claim is committed before its request leaves (``synchronous_commit`` as
  the server has it); outcomes, which a lost commit leaves for the next run's
  reconciliation, are committed without waiting for the disk;
- the same faults are the same errors as SQLite's: a role that may not write
  is :class:`LedgerReadOnly` and a missing table :class:`LedgerDamaged` (exit
  2), a full disk :class:`LedgerFull`, a lock held too long
  :class:`LedgerBusy`, a server that cannot be reached or a connection lost
  :class:`LedgerUnavailable` (exit 75). After a lost connection the next call
  connects again; what was in flight follows the unknown -> reconcile path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from smspipe import lifecycle
from smspipe.errors import register_secret
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
    chunks,
    difference,
    key_row_from_row,
    message_from_row,
    new_row,
    new_version,
    process_alive,
    stored_key_from_row,
)
from smspipe.spelling import setting

if TYPE_CHECKING:
    import psycopg

#: the PostgreSQL schema that holds the ledger's tables
SCHEMA = "smspipe"
#: 1: issue 15's tables; 2 (issue 14): delivery status on messages, the suppression list
SCHEMA_VERSION = 2
APPLICATION = "smspipe ledger"
INSTALL = "pip install 'smspipe[postgres]'"
#: a lock another run holds this long is a busy ledger (as SQLite's busy timeout)
LOCK_TIMEOUT_MS = 30_000
#: a session left inside a transaction this long (a stopped process) is ended by the server
IDLE_IN_TRANSACTION_MS = 60_000
CONNECT_TIMEOUT = 10
#: ended runs are forgotten after this long (unless they still own a key)
RUNS_KEPT_SECONDS = 7 * 24 * 3600
#: pg_advisory_xact_lock key while the schema is made or migrated ("SMSP")
SCHEMA_LOCK = 0x534D5350
#: the server's clock, in seconds since the epoch
NOW = "extract(epoch from clock_timestamp())::double precision"

#: table -> its columns, as this version writes them (checked when a ledger opens)
COLUMNS: dict[str, tuple[str, ...]] = {
    "meta": ("name", "value"),
    "runs": ("run_id", "host", "pid", "machine", "process_start", "started_at", "lease_until", "ended_at"),
    "deliveries": (
        "key",
        "state",
        "recipient",
        "sender",
        "messaging_service_sid",
        "account_sid",
        "body",
        "body_sha256",
        "media_sha256",
        "match_sha256",
        "sid",
        "segments",
        "error_code",
        "error_message",
        "owner",
        "attempts",
        "attempted_at",
        "updated_at",
        "version",
        "legacy",
    ),
    "messages": (
        "sid",
        "key",
        "recipient",
        "sender",
        "messaging_service_sid",
        "account_sid",
        "segments",
        "body_sha256",
        "media_sha256",
        "found_in_log",
        "run_id",
        "created_at",
    ),
    "pace": ("name", "last_start"),
}
#: what schema 2 adds (issue 14): messages' delivery status, the suppression list
DELIVERY_COLUMNS = (
    "status",
    "status_rank",
    "error_code",
    "error_message",
    "price",
    "price_unit",
    "date_sent",
    "date_updated",
    "checked_at",
)
COLUMNS_V1 = dict(COLUMNS)
COLUMNS["messages"] = (*COLUMNS["messages"], *DELIVERY_COLUMNS)
COLUMNS["optouts"] = ("phone", "source", "added_at")

CREATE = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE TABLE {SCHEMA}.meta (name text PRIMARY KEY, value text NOT NULL)",
    f"""CREATE TABLE {SCHEMA}.runs (
        run_id        text PRIMARY KEY,
        host          text NOT NULL,
        pid           integer NOT NULL,
        machine       text,
        process_start text,
        started_at    double precision NOT NULL,
        lease_until   double precision NOT NULL,
        ended_at      double precision
    )""",
    f"""CREATE TABLE {SCHEMA}.deliveries (
        key                   text PRIMARY KEY,
        state                 text NOT NULL CHECK (state IN ('sending', 'sent', 'unknown', 'failed')),
        recipient             text NOT NULL,
        sender                text,
        messaging_service_sid text,
        account_sid           text,
        body                  text,
        body_sha256           text,
        media_sha256          text,
        match_sha256          text,
        sid                   text,
        segments              integer,
        error_code            integer,
        error_message         text,
        owner                 text,
        attempts              integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        attempted_at          double precision,
        updated_at            double precision NOT NULL,
        version               bigint NOT NULL,
        legacy                boolean NOT NULL DEFAULT false
    )""",
    f"""CREATE TABLE {SCHEMA}.messages (
        sid                   text PRIMARY KEY,
        key                   text NOT NULL,
        recipient             text NOT NULL,
        sender                text,
        messaging_service_sid text,
        account_sid           text,
        segments              integer,
        body_sha256           text,
        media_sha256          text,
        found_in_log          boolean NOT NULL DEFAULT false,
        run_id                text,
        created_at            double precision NOT NULL,
        status                text,
        status_rank           integer,
        error_code            integer,
        error_message         text,
        price                 text,
        price_unit            text,
        date_sent             double precision,
        date_updated          double precision,
        checked_at            double precision
    )""",
    f"CREATE TABLE {SCHEMA}.pace (name text PRIMARY KEY, last_start double precision NOT NULL)",
    f"""CREATE INDEX deliveries_open ON {SCHEMA}.deliveries (recipient, match_sha256)
        WHERE state IN ('sending', 'unknown')""",
    f"CREATE INDEX deliveries_owner ON {SCHEMA}.deliveries (owner) WHERE owner IS NOT NULL",
    f"CREATE INDEX deliveries_legacy ON {SCHEMA}.deliveries (account_sid) WHERE legacy",
    f"CREATE INDEX messages_key ON {SCHEMA}.messages (key, created_at)",
    f"CREATE INDEX messages_recipient ON {SCHEMA}.messages (recipient)",
)
#: schema 1 -> 2 (issue 14), in place; also the end of a new ledger's CREATE
MIGRATE_FROM_1 = (
    *(
        f"ALTER TABLE {SCHEMA}.messages ADD COLUMN IF NOT EXISTS {column} {kind}"
        for column, kind in (
            ("status", "text"),
            ("status_rank", "integer"),
            ("error_code", "integer"),
            ("error_message", "text"),
            ("price", "text"),
            ("price_unit", "text"),
            ("date_sent", "double precision"),
            ("date_updated", "double precision"),
            ("checked_at", "double precision"),
        )
    ),
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.optouts (
        phone    text PRIMARY KEY,
        source   text NOT NULL,
        added_at double precision NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS messages_created ON {SCHEMA}.messages (created_at)",
    f"CREATE INDEX IF NOT EXISTS messages_recipient_created ON {SCHEMA}.messages (recipient, created_at)",
    f"""CREATE INDEX IF NOT EXISTS messages_pending ON {SCHEMA}.messages (created_at)
        WHERE status_rank IS NULL OR status_rank < {lifecycle.FINAL_RANK}""",
)

_LATEST = ", ".join(f"m.{column} AS m_{column}" for column in COLUMNS["messages"])
_ROW = f"""
SELECT d.*, r.host AS r_host, r.pid AS r_pid, r.machine AS r_machine,
       r.process_start AS r_process_start, r.lease_until AS r_lease_until, r.ended_at AS r_ended_at,
       {_LATEST}, {NOW} AS now
FROM {SCHEMA}.deliveries d
LEFT JOIN {SCHEMA}.runs r ON r.run_id = d.owner
LEFT JOIN LATERAL (
    SELECT * FROM {SCHEMA}.messages WHERE key = d.key ORDER BY created_at DESC LIMIT 1
) m ON true
"""
_INSERT_MESSAGE = (
    f"INSERT INTO {SCHEMA}.messages (sid, key, recipient, sender, messaging_service_sid, account_sid, "
    "segments, body_sha256, media_sha256, found_in_log, run_id, created_at, status, status_rank) "
    f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, {NOW}), %s, %s) "
    "ON CONFLICT (sid) DO NOTHING"
)


class _Batch:
    __slots__ = ("durable", "lease_checked", "lost")

    def __init__(self, durable: bool) -> None:
        self.durable = durable
        self.lost: Exception | None = None
        self.lease_checked = False


class PostgresLedger(Ledger):
    """A ledger in a PostgreSQL database (open it with :func:`open_postgres`)."""

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        *,
        url: str,
        location: str,
        read_only: bool,
        settings: Settings,
        run: RunInfo,
        schema: int = SCHEMA_VERSION,
    ) -> None:
        self._db = connection
        self._schema = schema
        self._url = url
        self.location = location
        self.read_only = read_only
        self.settings = settings
        self.run = run
        self._batch: _Batch | None = None
        self._started = False
        self._lost = False
        self._legacy_accounts: tuple[str | None, ...] | None = None

    # --- the connection, transactions and faults ------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """The connection; a new one when the last was lost (the server restarted, say)."""
        if self._db.closed or self._db.broken:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = _connect(self._url, self.location, read_only=self.read_only)
        return self._db

    @contextlib.contextmanager
    def faults(self, action: str) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            error = translate_fault(exc, self.location, action)
            if self._batch is not None and self._batch.lost is None:
                self._batch.lost = error
            raise error from None
        except (ValueError, TypeError) as exc:  # a value that is not what smspipe wrote
            error = LedgerDamaged(
                f"the ledger {self.location} is damaged (a stored value is unreadable: {exc})",
                hint=_restore(),
            )
            if self._batch is not None and self._batch.lost is None:
                self._batch.lost = error
            raise error from None

    @contextlib.contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        """One write transaction (in a batch: part of the batch's)."""
        batch = self._batch
        if batch is not None:
            if batch.lost is not None:
                raise batch.lost
            try:
                with self.faults("write"):
                    yield self._db.cursor()
            except LeaseLost:
                raise  # raised before anything was written
            except Exception as exc:
                if batch.lost is None:
                    batch.lost = exc
                raise
            return
        with self.faults("write"):
            db = self._connection()
            db.execute(_begin(durable))
            try:
                yield db.cursor()
            except BaseException:
                _roll_back(db)
                raise
            db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[psycopg.Cursor[Any]]:
        """Reads: one statement each (one snapshot), or within the batch's transaction."""
        if self._batch is not None and self._batch.lost is not None:
            raise self._batch.lost
        with self.faults("read"):
            yield (self._db if self._batch is not None else self._connection()).cursor()

    @contextlib.contextmanager
    def batch(self, *, durable: bool = True) -> Iterator[None]:
        """Group commit: one transaction for every operation inside, committed once.

        An operation that fails before it writes (a lapsed lease) fails alone; any
        other failure ends the batch: it is rolled back and every operation in it
        fails with that error. A deadlock with another run is :class:`LedgerRetry`.
        """
        if self._batch is not None or self.read_only:
            yield
            return
        with self.faults("write"):
            db = self._connection()
            db.execute(_begin(durable))
        batch = self._batch = _Batch(durable)
        try:
            yield
        except BaseException:
            self._batch = None
            _roll_back(db)
            raise
        self._batch = None
        if batch.lost is not None:
            _roll_back(db)
            raise batch.lost
        with self.faults("write"):
            db.execute("COMMIT")

    # --- runs ------------------------------------------------------------------------

    def start_run(self) -> None:
        if self.read_only:
            return
        run = self.run
        with self._write(durable=True) as cur:
            cur.execute(
                f"DELETE FROM {SCHEMA}.runs r WHERE ended_at < {NOW} - %s "
                f"AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.deliveries d WHERE d.owner = r.run_id)",
                (RUNS_KEPT_SECONDS,),
            )
            cur.execute(
                f"INSERT INTO {SCHEMA}.runs (run_id, host, pid, machine, process_start, started_at, "
                f"lease_until) VALUES (%s, %s, %s, %s, %s, {NOW}, {NOW} + %s)",
                (run.run_id, run.host, run.pid, run.machine, run.process_start, self.settings.lease),
            )
        self._started = True

    def heartbeat(self) -> bool:
        if self.read_only or self._lost:
            return not self._lost
        with self._write() as cur:
            renewed = cur.execute(
                f"UPDATE {SCHEMA}.runs SET lease_until = {NOW} + %s "
                f"WHERE run_id = %s AND ended_at IS NULL AND lease_until >= {NOW}",
                (self.settings.lease, self.run.run_id),
            ).rowcount
        self._lost = renewed == 0
        return not self._lost

    def end_run(self) -> None:
        if self.read_only or not self._started:
            return
        with self._write() as cur:
            cur.execute(
                f"UPDATE {SCHEMA}.runs SET ended_at = {NOW}, lease_until = least(lease_until, {NOW}) "
                "WHERE run_id = %s",
                (self.run.run_id,),
            )
        self._started = False

    def _check_lease(self, cur: psycopg.Cursor[Any]) -> None:
        batch = self._batch
        if batch is not None and batch.lease_checked:
            return  # once per batch: its statements run within moments of each other
        row = cur.execute(
            f"SELECT lease_until, ended_at, {NOW} AS now FROM {SCHEMA}.runs WHERE run_id = %s",
            (self.run.run_id,),
        ).fetchone()
        if row is None or row["ended_at"] is not None or row["lease_until"] < row["now"]:
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
        with self._read() as cur:
            record = cur.execute(_ROW + "WHERE d.key = %s", (key,)).fetchone()
            if record is not None or not legacy_keys:
                return self._row(record) if record else None
            for legacy_key in legacy_keys:
                found = cur.execute(_ROW + "WHERE d.key = %s AND d.legacy", (legacy_key,)).fetchone()
                if found is not None:
                    if self.read_only:
                        return self._row(found)
                    break
            else:
                return None
        return self._rekey(legacy_key, key)

    def get_many(self, keys: Sequence[str]) -> dict[str, KeyRow]:
        with self._read() as cur:
            records = cur.execute(_ROW + "WHERE d.key = ANY(%s)", (list(dict.fromkeys(keys)),)).fetchall()
        return {record["key"]: self._row(record) for record in records}

    def _rekey(self, legacy_key: str, key: str) -> KeyRow | None:
        """A row keyed by a schema 1 content hash (copied from an SQLite ledger) takes the
        document's key (once)."""
        with self._write() as cur:
            moved = cur.execute(
                f"UPDATE {SCHEMA}.deliveries SET key = %s, legacy = false, version = %s WHERE key = %s "
                f"AND legacy AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.deliveries WHERE key = %s)",
                (key, new_version(), legacy_key, key),
            ).rowcount
            if moved:
                cur.execute(f"UPDATE {SCHEMA}.messages SET key = %s WHERE key = %s", (key, legacy_key))
            record = cur.execute(_ROW + "WHERE d.key = %s", (key,)).fetchone()
        return self._row(record) if record else None

    def _row(self, record: dict[str, Any]) -> KeyRow:
        now = record["now"]
        latest = message_from_row(record, "m_") if record["m_sid"] is not None else None
        return key_row_from_row(record, now=now, holder=self._holder(record, now), latest=latest)

    def _holder(self, record: dict[str, Any], now: float) -> Holder | None:
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

    def legacy_accounts(self) -> tuple[str | None, ...]:
        if self._legacy_accounts is None:
            with self._read() as cur:
                rows = cur.execute(
                    f"SELECT DISTINCT account_sid FROM {SCHEMA}.deliveries WHERE legacy"
                ).fetchall()
            self._legacy_accounts = tuple(row["account_sid"] for row in rows)
        return self._legacy_accounts

    def known_sids(self, recipient: str) -> frozenset[str]:
        with self._read() as cur:
            rows = cur.execute(
                f"SELECT sid FROM {SCHEMA}.messages WHERE recipient = %s", (recipient,)
            ).fetchall()
        return frozenset(row["sid"] for row in rows)

    def orphans(self, limit: int = 10_000) -> list[KeyRow]:
        # Keys another host is changing right now (locked) are its, not orphans: skipped.
        lock = "" if self.read_only else " FOR UPDATE OF d SKIP LOCKED"
        with self._read() as cur:
            records = cur.execute(
                _ROW + f"WHERE d.state IN ('sending', 'unknown') ORDER BY d.key LIMIT %s{lock}", (limit,)
            ).fetchall()
            rows = [self._row(record) for record in records]
        return [row for row in rows if row.holder is None or not row.holder.alive]

    def counts(self) -> Counts:
        with self._read() as cur:
            states = {
                row["state"]: row["count"]
                for row in cur.execute(f"SELECT state, count(*) FROM {SCHEMA}.deliveries GROUP BY state")
            }
            messages = cur.execute(f"SELECT count(*) FROM {SCHEMA}.messages").fetchone()
        return Counts(by_state=states, messages=messages["count"] if messages else 0)

    # --- pacing shared by every run of the ledger ----------------------------------------

    def take_turn(self, name: str, interval: float) -> float:
        with self._write() as cur:
            taken = cur.execute(
                f"INSERT INTO {SCHEMA}.pace AS p (name, last_start) VALUES (%s, {NOW}) "
                "ON CONFLICT (name) DO UPDATE SET last_start = EXCLUDED.last_start "
                "WHERE p.last_start + %s <= EXCLUDED.last_start RETURNING last_start",
                (name, interval),
            ).fetchone()
            if taken is not None:
                return 0.0
            row = cur.execute(
                f"SELECT last_start + %s - {NOW} AS wait FROM {SCHEMA}.pace WHERE name = %s",
                (interval, name),
            ).fetchone()
        # Due meanwhile: ask again at once (0 would mean this start was recorded).
        return max(float(row["wait"]) if row else 0.0, 1e-3)

    # --- moving history between ledgers ----------------------------------------------------

    def history(self) -> Iterator[StoredKey]:
        after = ""
        while True:
            with self._read() as cur:
                records = cur.execute(
                    f"SELECT * FROM {SCHEMA}.deliveries WHERE key > %s ORDER BY key LIMIT 500", (after,)
                ).fetchall()
                keys = [record["key"] for record in records]
                messages: dict[str, list[Message]] = {}
                for row in cur.execute(
                    f"SELECT * FROM {SCHEMA}.messages WHERE key = ANY(%s) ORDER BY key, created_at", (keys,)
                ):
                    messages.setdefault(row["key"], []).append(message_from_row(row))
            if not records:
                return
            for record in records:
                yield stored_key_from_row(record, messages.get(record["key"], []))
            after = keys[-1]

    def merge(self, keys: Iterable[StoredKey]) -> Merged:
        merged = Merged()
        for chunk in chunks(keys, 500):
            with self._write(durable=True) as cur:
                self._merge_chunk(cur, chunk, merged)
        return merged

    def _merge_chunk(self, cur: psycopg.Cursor[Any], chunk: list[StoredKey], merged: Merged) -> None:
        names = [stored.key for stored in chunk]
        existing = {
            record["key"]: record
            for record in cur.execute(f"SELECT * FROM {SCHEMA}.deliveries WHERE key = ANY(%s)", (names,))
        }
        their_messages: dict[str, list[Message]] = {}
        for row in cur.execute(
            f"SELECT * FROM {SCHEMA}.messages WHERE key = ANY(%s) ORDER BY created_at", (list(existing),)
        ):
            their_messages.setdefault(row["key"], []).append(message_from_row(row))
        sids = [message.sid for stored in chunk for message in stored.messages]
        owners = {
            row["sid"]: row["key"]
            for row in cur.execute(f"SELECT sid, key FROM {SCHEMA}.messages WHERE sid = ANY(%s)", (sids,))
        }
        for stored in chunk:
            record = existing.get(stored.key)
            if record is not None:
                here = stored_key_from_row(record, their_messages.get(stored.key, []))
                if here.same_as(stored):
                    merged.present += 1
                else:
                    merged.conflicts.append((stored.key, difference(here, stored)))
                continue
            taken = next((m for m in stored.messages if m.sid in owners), None)
            if taken is not None:
                merged.conflicts.append(
                    (stored.key, f"its message {taken.sid} is {owners[taken.sid]}'s here")
                )
                continue
            if self._add(cur, stored):
                merged.added += 1
            else:
                merged.conflicts.append((stored.key, "a run took the key here meanwhile"))

    def _add(self, cur: psycopg.Cursor[Any], stored: StoredKey) -> bool:
        added = cur.execute(
            f"INSERT INTO {SCHEMA}.deliveries (key, state, recipient, sender, messaging_service_sid, "
            "account_sid, body, body_sha256, media_sha256, match_sha256, sid, segments, error_code, "
            "error_message, owner, attempts, attempted_at, updated_at, version, legacy) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING",
            stored.copied_columns(new_version()),
        ).rowcount
        if not added:
            return False
        for message in stored.messages:
            cur.execute(
                _INSERT_MESSAGE,
                (
                    *message.copied_columns(stored.key, stored.updated_at),
                    message.status,
                    lifecycle.rank(message.status),
                ),
            )
        return True

    # --- writes ----------------------------------------------------------------------

    def claim(self, key: str, version: int | None, attempt: Attempt) -> KeyRow | None:
        with self._write(durable=True) as cur:
            self._check_lease(cur)
            fresh = new_version()
            values = (*attempt.columns(), self.run.run_id, fresh)
            if version is None:
                inserted = cur.execute(
                    f"INSERT INTO {SCHEMA}.deliveries (recipient, sender, messaging_service_sid, "
                    "account_sid, body, body_sha256, media_sha256, match_sha256, owner, version, key, "
                    f"state, attempts, attempted_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                    f"%s, %s, %s, 'sending', 1, {NOW}, {NOW}) ON CONFLICT (key) DO NOTHING",
                    (*values, key),
                ).rowcount
                # A new row holds what was just written: no need to read it back.
                return new_row(key, attempt, self.run.run_id, fresh) if inserted else None
            changed = cur.execute(
                f"UPDATE {SCHEMA}.deliveries SET recipient = %s, sender = %s, messaging_service_sid = %s, "
                "account_sid = %s, body = %s, body_sha256 = %s, media_sha256 = %s, match_sha256 = %s, "
                f"owner = %s, version = %s, attempted_at = {NOW}, updated_at = {NOW}, state = 'sending', "
                "attempts = attempts + 1, error_code = NULL, error_message = NULL, legacy = false "
                "WHERE key = %s AND version = %s",
                (*values, key, version),
            ).rowcount
            if not changed:
                return None
            record = cur.execute(_ROW + "WHERE d.key = %s", (key,)).fetchone()
        assert record is not None  # changed by this transaction
        return self._row(record)

    def adopt(self, key: str, version: int) -> KeyRow | None:
        with self._write(durable=True) as cur:
            self._check_lease(cur)
            changed = cur.execute(
                f"UPDATE {SCHEMA}.deliveries SET owner = %s, version = %s, updated_at = {NOW} "
                "WHERE key = %s AND version = %s AND state IN ('sending', 'unknown')",
                (self.run.run_id, new_version(), key, version),
            ).rowcount
            if not changed:
                return None
            record = cur.execute(_ROW + "WHERE d.key = %s", (key,)).fetchone()
        assert record is not None  # changed by this transaction
        return self._row(record)

    def touch(self, key: str) -> None:
        with self._write(durable=True) as cur:
            self._check_lease(cur)
            cur.execute(
                f"UPDATE {SCHEMA}.deliveries SET attempted_at = {NOW}, attempts = attempts + 1, "
                f"updated_at = {NOW} WHERE key = %s AND owner = %s",
                (key, self.run.run_id),
            )

    def record_sent(self, key: str, message: Message) -> None:
        with self._write() as cur:
            self._record(cur, key, message, found_in_log=False)

    def record_found(self, key: str, message: Message, match_sha256: str | None) -> FoundOutcome:
        with self._write() as cur:
            owner = cur.execute(
                f"SELECT key FROM {SCHEMA}.messages WHERE sid = %s", (message.sid,)
            ).fetchone()
            if owner is not None and owner["key"] != key:
                return FoundOutcome.TAKEN
            if match_sha256 is not None:
                rival = cur.execute(
                    f"SELECT 1 FROM {SCHEMA}.deliveries WHERE recipient = %s AND match_sha256 = %s "
                    "AND state IN ('sending', 'unknown') AND key <> %s LIMIT 1",
                    (message.recipient, match_sha256, key),
                ).fetchone()
                if rival is not None:
                    return FoundOutcome.AMBIGUOUS
            if not self._record(cur, key, message, found_in_log=True):
                return FoundOutcome.TAKEN
        return FoundOutcome.RECORDED

    def _record(self, cur: psycopg.Cursor[Any], key: str, message: Message, *, found_in_log: bool) -> bool:
        """Record *message* under *key* (sent); False when a message found in the log turns
        out to be another key's (recorded by another host meanwhile)."""
        inserted = cur.execute(
            _INSERT_MESSAGE,
            (
                *message.columns(
                    key, found_in_log=found_in_log, run_id=self.run.run_id, created_at=message.created_at
                ),
                message.status,
                lifecycle.rank(message.status),
            ),
        ).rowcount
        if not inserted:
            owner = cur.execute(
                f"SELECT key FROM {SCHEMA}.messages WHERE sid = %s FOR UPDATE", (message.sid,)
            ).fetchone()
            if owner is not None and owner["key"] != key:
                if found_in_log:
                    return False
                # Twilio's answer to a create names its message beyond doubt: a key that
                # took this SID from the log gives it back and is open again.
                cur.execute(
                    f"UPDATE {SCHEMA}.deliveries SET state = 'unknown', owner = NULL, version = %s, "
                    f"updated_at = {NOW}, error_message = 'its message in the log was another key''s' "
                    "WHERE key = %s AND sid = %s",
                    (new_version(), owner["key"], message.sid),
                )
                cur.execute(
                    f"UPDATE {SCHEMA}.messages SET key = %s, found_in_log = false WHERE sid = %s",
                    (key, message.sid),
                )
        # An upsert: a key released meanwhile by a run that took it for absent (it was not)
        # is made again, sent.
        cur.execute(
            f"INSERT INTO {SCHEMA}.deliveries AS d (key, state, sid, segments, recipient, sender, "
            "messaging_service_sid, account_sid, body_sha256, media_sha256, updated_at, version, attempts) "
            f"VALUES (%s, 'sent', %s, %s, %s, %s, %s, %s, %s, %s, {NOW}, %s, 1) "
            "ON CONFLICT (key) DO UPDATE SET state = 'sent', sid = EXCLUDED.sid, "
            "segments = EXCLUDED.segments, recipient = EXCLUDED.recipient, sender = EXCLUDED.sender, "
            "messaging_service_sid = EXCLUDED.messaging_service_sid, account_sid = EXCLUDED.account_sid, "
            "body_sha256 = coalesce(EXCLUDED.body_sha256, d.body_sha256), "
            "media_sha256 = coalesce(EXCLUDED.media_sha256, d.media_sha256), "
            "updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, body = NULL, owner = NULL, "
            "error_code = NULL, error_message = NULL",
            (
                key,
                message.sid,
                message.segments,
                message.recipient,
                message.sender,
                message.messaging_service_sid,
                message.account_sid,
                message.body_sha256,
                message.media_sha256,
                new_version(),
            ),
        )
        return True

    def record_failed(self, key: str, code: int | None, message: str) -> None:
        with self._write() as cur:
            cur.execute(
                f"UPDATE {SCHEMA}.deliveries SET state = 'failed', error_code = %s, error_message = %s, "
                f"body = NULL, owner = NULL, version = %s, updated_at = {NOW} WHERE key = %s",
                (code, message[:500], new_version(), key),
            )

    def record_unknown(self, key: str, message: str, attempt_age: float | None = None) -> None:
        with self._write() as cur:
            cur.execute(
                f"UPDATE {SCHEMA}.deliveries SET state = 'unknown', error_message = %s, "
                f"attempted_at = coalesce({NOW} - %s, attempted_at), version = %s, updated_at = {NOW} "
                "WHERE key = %s",
                (message[:500], attempt_age, new_version(), key),
            )

    def release(self, key: str) -> None:
        with self._write() as cur:
            latest = cur.execute(
                f"SELECT * FROM {SCHEMA}.messages WHERE key = %s ORDER BY created_at DESC LIMIT 1", (key,)
            ).fetchone()
            if latest is None:
                cur.execute(f"DELETE FROM {SCHEMA}.deliveries WHERE key = %s", (key,))
                return
            cur.execute(
                f"UPDATE {SCHEMA}.deliveries SET state = 'sent', sid = %s, segments = %s, recipient = %s, "
                "sender = %s, messaging_service_sid = %s, account_sid = %s, body_sha256 = %s, "
                "media_sha256 = %s, body = NULL, owner = NULL, error_code = NULL, error_message = NULL, "
                f"version = %s, updated_at = {NOW} WHERE key = %s",
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
                    key,
                ),
            )

    # --- delivery status (issue 14) -------------------------------------------------------

    def sent(self, query: SentQuery) -> list[SentRecord]:
        if self._schema < 2 and query.statuses is not None:
            if "pending" not in query.statuses:  # no status is known in schema 1: all pending
                return []
            query = SentQuery(query.since, None, query.to, query.key, query.sid, query.limit)
        where, values = _sent_filters(query)
        columns = _SENT_COLUMNS if self._schema >= 2 else _SENT_BASE
        order = "created_at DESC, sid" if query.limit is not None else "created_at, sid"
        sql = f"SELECT {columns} FROM {SCHEMA}.messages {where} ORDER BY {order}"
        if query.limit is not None:
            sql += " LIMIT %s"
            values.append(query.limit)
        with self._read() as cur:
            records = cur.execute(sql, values).fetchall()
        found = [SentRecord(**record) for record in records]
        return found[::-1] if query.limit is not None else found

    def update_delivery(self, sid: str, delivery: Delivery) -> bool:
        rank = lifecycle.rank(delivery.status)
        with self._write() as cur:
            changed = cur.execute(
                f"UPDATE {SCHEMA}.messages SET status = %s, status_rank = %s, error_code = %s, "
                "error_message = %s, price = coalesce(%s, price), price_unit = coalesce(%s, price_unit), "
                "date_sent = coalesce(%s, date_sent), date_updated = coalesce(%s, date_updated), "
                f"segments = coalesce(%s, segments), checked_at = {NOW} "
                "WHERE sid = %s AND (status_rank IS NULL OR status_rank < %s)",
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
                    sid,
                    rank,
                ),
            ).rowcount
            if not changed:
                # The same status again may bring what it lacked (a price once final, an error code).
                cur.execute(
                    f"UPDATE {SCHEMA}.messages SET price = coalesce(price, %s), "
                    "price_unit = coalesce(%s, price_unit), date_sent = coalesce(date_sent, %s), "
                    "error_code = coalesce(error_code, %s), error_message = coalesce(error_message, %s), "
                    f"checked_at = {NOW} WHERE sid = %s AND status = %s",
                    (
                        delivery.price,
                        delivery.price_unit,
                        delivery.date_sent,
                        delivery.error_code,
                        None if delivery.error_message is None else delivery.error_message[:500],
                        sid,
                        delivery.status,
                    ),
                )
        return bool(changed)

    def sent_since(self, recipient: str, since: float) -> int:
        with self._read() as cur:
            found = cur.execute(
                f"SELECT count(*) FROM {SCHEMA}.messages WHERE recipient = %s AND created_at >= %s",
                (recipient, since),
            ).fetchone()
        return int(found["count"]) if found else 0

    # --- the suppression list ---------------------------------------------------------------

    def add_optouts(self, phones: Iterable[str], source: str) -> int:
        with self._write() as cur:
            return sum(
                cur.execute(
                    f"INSERT INTO {SCHEMA}.optouts (phone, source, added_at) VALUES (%s, %s, {NOW}) "
                    "ON CONFLICT (phone) DO NOTHING",
                    (phone, source),
                ).rowcount
                for phone in dict.fromkeys(phones)
            )

    def remove_optouts(self, phones: Iterable[str]) -> int:
        with self._write() as cur:
            return sum(
                cur.execute(f"DELETE FROM {SCHEMA}.optouts WHERE phone = %s", (phone,)).rowcount
                for phone in dict.fromkeys(phones)
            )

    def optouts(self) -> list[OptOut]:
        if self._schema < 2:
            return []
        with self._read() as cur:
            records = cur.execute(
                f"SELECT phone, source, added_at FROM {SCHEMA}.optouts ORDER BY added_at, phone"
            ).fetchall()
        return [OptOut(**record) for record in records]

    def opted_out(self, phone: str) -> OptOut | None:
        if self._schema < 2:
            return None
        with self._read() as cur:
            record = cur.execute(
                f"SELECT phone, source, added_at FROM {SCHEMA}.optouts WHERE phone = %s", (phone,)
            ).fetchone()
        return OptOut(**record) if record is not None else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()


_SENT_BASE = "sid, key, recipient, sender, messaging_service_sid, account_sid, segments, created_at"
_SENT_COLUMNS = (
    _SENT_BASE + ", status, error_code, error_message, price, price_unit, date_sent, date_updated, checked_at"
)


def _sent_filters(query: SentQuery) -> tuple[str, list[object]]:
    """The WHERE clause of :meth:`PostgresLedger.sent`, and its values."""
    clauses: list[str] = []
    values: list[object] = []
    for column, value, test in (
        ("created_at", query.since, ">="),
        ("recipient", query.to, "="),
        ("key", query.key, "="),
        ("sid", query.sid, "="),
    ):
        if value is not None:
            clauses.append(f"{column} {test} %s")
            values.append(value)
    if query.statuses is not None:
        named = sorted(query.statuses - {"pending"})
        alternatives = []
        if named:
            alternatives.append("status = ANY(%s)")
            values.append(named)
        if "pending" in query.statuses:
            alternatives.append(f"status_rank IS NULL OR status_rank < {lifecycle.FINAL_RANK}")
        clauses.append("(" + " OR ".join(alternatives or ["false"]) + ")")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", values


def _begin(durable: bool) -> str:
    # Outcomes need not wait for the disk: a lost one leaves its key open for the next
    # run's reconciliation (as SQLite's synchronous = NORMAL).
    return "BEGIN" if durable else "BEGIN; SET LOCAL synchronous_commit TO OFF"


def _roll_back(db: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(Exception):
        if not db.closed and not db.broken:
            db.execute("ROLLBACK")


# --- faults ------------------------------------------------------------------------------


def translate_fault(exc: Exception, location: str, action: str) -> Exception:
    """A psycopg error as what it means for the run: read-only, damaged, full, busy, gone."""
    import psycopg
    from psycopg import errors

    state = getattr(exc, "sqlstate", None) or ""
    text = _first_line(exc)
    if isinstance(exc, errors.DeadlockDetected | errors.SerializationFailure):
        return LedgerRetry(
            f"the ledger {location} undid a write that crossed another run's ({text})",
            hint="run again",
        )
    if state.startswith("53"):  # insufficient resources: disk full, out of memory, too many connections
        return LedgerFull(
            f"the ledger {location} cannot be written: {text}",
            hint="free space on the database server (nothing more is sent until it can be "
            "recorded), then run again",
        )
    if state == "42501":
        return LedgerReadOnly(
            f"the ledger {location} cannot be written: {text}",
            hint=f"grant the role SELECT, INSERT, UPDATE and DELETE on the tables of schema {SCHEMA}, "
            f"or pass {setting('ledger')} with a role that has them",
        )
    if state == "25006":
        return LedgerReadOnly(
            f"the ledger {location} is read-only ({text})",
            hint=f"point {setting('ledger')} at the primary server, not a standby",
        )
    if state in ("42P01", "3F000"):
        return LedgerDamaged(f"the ledger {location} is damaged: {text}", hint=_restore())
    if state in ("55P03", "57014"):
        return LedgerBusy(
            f"the ledger {location} stayed locked by another run for {LOCK_TIMEOUT_MS // 1000} s ({text})",
            hint="run again when the other run is done",
        )
    if state.startswith(("08", "57")) or isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return LedgerUnavailable(
            f"the connection to the ledger {location} was lost ({text})",
            hint="run again when the server is back: what was in flight is settled then",
        )
    if state.startswith(("22", "23", "42")):
        return LedgerDamaged(f"the ledger {location} is not as smspipe wrote it ({text})", hint=_restore())
    return LedgerError(f"the ledger {location} failed to {action}: {text}", hint=_restore())


def _restore() -> str:
    """How to get past a ledger whose tables are not as smspipe made them."""
    another = f"pass {setting('ledger')} with another database"
    return f"restore its tables (schema {SCHEMA}) from a backup, or {another}"


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def connect_fault(exc: Exception, location: str) -> Exception:
    """Why a connection could not be opened: the server is not there (75), or it refused
    us or the URL is wrong (2)."""
    text = _first_line(exc).removeprefix("connection failed: ")
    text = " ".join(text.split(" failed: ", 1)[-1].removeprefix("FATAL:").split())
    refused = any(
        phrase in str(exc)
        for phrase in (
            "Connection refused",
            "timeout expired",
            "timed out",
            "No route to host",
            "could not receive",
        )
    )
    if refused:
        return LedgerUnavailable(
            f"cannot reach the ledger {location}: {text}",
            hint="is the server running and reachable? run again when it is",
        )
    return LedgerError(
        f"cannot open the ledger {location}: {text}",
        hint="check the URL's host, port, user and database (a password goes in PGPASSWORD or ~/.pgpass)",
    )


# --- opening ---------------------------------------------------------------------------------


def describe(url: str) -> str:
    """*url* as it may be shown: scheme, user, host, port and database, never a password."""
    try:
        parts = urlsplit(url)
        user = f"{unquote(parts.username)}@" if parts.username else ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "postgresql://(an unreadable URL)"
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _import_psycopg(location: str) -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise LedgerError(
            f"the ledger {location} is in PostgreSQL, and psycopg is not installed", hint=INSTALL
        ) from None


def _connect(url: str, location: str, *, read_only: bool) -> psycopg.Connection[Any]:
    import psycopg
    from psycopg.rows import dict_row

    try:
        db = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="smspipe",
            row_factory=dict_row,
        )
    except psycopg.Error as exc:
        raise connect_fault(exc, location) from None
    try:
        db.execute(
            f"SET lock_timeout = {LOCK_TIMEOUT_MS}; "
            f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}"
            + ("; SET default_transaction_read_only = on" if read_only else "")
        )
    except psycopg.Error as exc:
        db.close()
        raise translate_fault(exc, location, "open") from None
    return db


def open_postgres(
    url: str,
    *,
    read_only: bool = False,
    settings: Settings | None = None,
    run: RunInfo | None = None,
) -> PostgresLedger | None:
    """The ledger in the database at *url*, checked (its schema made or migrated when it
    is not there yet); None when *read_only* and there is no ledger yet."""
    location = describe(url)
    with contextlib.suppress(ValueError):
        register_secret(urlsplit(url).password)
    _import_psycopg(location)
    db = _connect(url, location, read_only=read_only)
    try:
        version = _check_schema(db, location)
        if version is None and read_only:
            db.close()
            return None
        if version != SCHEMA_VERSION and not read_only:
            _migrate(db, location)
            version = SCHEMA_VERSION
    except BaseException:
        db.close()
        raise
    return PostgresLedger(
        db,
        url=url,
        location=location,
        read_only=read_only,
        settings=settings or Settings(),
        run=run or RunInfo.this_process(),
        schema=version or SCHEMA_VERSION,
    )


def migrate(url: str) -> tuple[int | None, int]:
    """Make or migrate the ledger's schema at *url*: (the version found, the version now)."""
    location = describe(url)
    with contextlib.suppress(ValueError):
        register_secret(urlsplit(url).password)
    _import_psycopg(location)
    db = _connect(url, location, read_only=False)
    try:
        found = _check_schema(db, location)
        if found != SCHEMA_VERSION:
            _migrate(db, location)
    finally:
        db.close()
    return found, SCHEMA_VERSION


def _check_schema(db: psycopg.Connection[Any], location: str) -> int | None:
    """The schema version of the ledger in *db* (None: there is none yet); refuses what is
    not a smspipe ledger, one written by a newer smspipe, and one missing a table or column."""
    columns, meta = _read_catalog(db, location)
    if not columns:
        return None
    version = _version(meta, location)
    for table, wanted in (COLUMNS if version >= 2 else COLUMNS_V1).items():
        if table not in columns:
            raise LedgerDamaged(
                f"the ledger {location} is damaged: table {table} is missing", hint=_restore()
            )
        missing = sorted(set(wanted) - columns[table])
        if missing:
            raise LedgerDamaged(
                f"the ledger {location} is damaged: table {table} has no column {missing[0]}", hint=_restore()
            )
    return version


def _read_catalog(db: psycopg.Connection[Any], location: str) -> tuple[dict[str, set[str]], dict[str, str]]:
    """The columns of each table in our schema, and its meta table's rows (if it has one)."""
    import psycopg

    try:
        columns: dict[str, set[str]] = {}
        # The catalog, not information_schema: it shows tables this role may not read too.
        for row in db.execute(
            "SELECT c.relname AS table_name, a.attname AS column_name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
            (SCHEMA,),
        ):
            columns.setdefault(row["table_name"], set()).add(row["column_name"])
        meta = {}
        if "meta" in columns:
            meta = {row["name"]: row["value"] for row in db.execute(f"SELECT name, value FROM {SCHEMA}.meta")}
    except psycopg.errors.InsufficientPrivilege as exc:
        raise LedgerReadOnly(
            f"the ledger {location} cannot be read: {_first_line(exc)}",
            hint=f"grant the role USAGE on schema {SCHEMA} and SELECT, INSERT, UPDATE, DELETE on its tables",
        ) from None
    except psycopg.Error as exc:
        raise translate_fault(exc, location, "be read") from None
    return columns, meta


def _version(meta: dict[str, str], location: str) -> int:
    """The schema version *meta* records, refused when not ours or newer than this smspipe's."""
    if meta.get("application") != APPLICATION:
        raise LedgerDamaged(
            f"the ledger {location}: schema {SCHEMA} holds tables that are not a smspipe ledger's",
            hint=_restore(),
        )
    try:
        version = int(meta.get("schema", ""))
    except ValueError:
        raise LedgerDamaged(
            f"the ledger {location} is damaged: its schema version is unreadable", hint=_restore()
        ) from None
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger {location} was written by a newer smspipe (schema {version})",
            hint=f"upgrade smspipe, or pass {setting('ledger')} with another database",
        )
    return version


def _migrate(db: psycopg.Connection[Any], location: str) -> None:
    """Make the schema (the only migration so far: from nothing), once however many hosts try."""
    import psycopg

    try:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            found = _check_schema(db, location)
            if found == SCHEMA_VERSION:
                return  # another host made it while this one waited
            for statement in (*CREATE, *MIGRATE_FROM_1) if found is None else MIGRATE_FROM_1:
                db.execute(statement)
            db.execute(
                f"INSERT INTO {SCHEMA}.meta (name, value) VALUES ('application', %s), ('schema', %s) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                (APPLICATION, str(SCHEMA_VERSION)),
            )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise LedgerReadOnly(
            f"cannot create the ledger's tables in {location}: {_first_line(exc)}",
            hint=f"run `smspipe ledger migrate` on it as a role that may create schema {SCHEMA} "
            "(the database's owner), or grant this one CREATE on the database",
        ) from None
    except psycopg.Error as exc:
        raise translate_fault(exc, location, "be created") from None
