"""The ledger's contract: the records, the errors, and the operations the delivery engine needs.

A ledger stores, per message key, the state of its delivery (see
:mod:`smspipe.delivery.states` for the state machine), every message Twilio
created (one row per SID, under one key only), and the runs that hold claims.
Every operation is one small transaction (or, inside :meth:`Ledger.batch`, a
savepoint of the batch's one transaction: a group commit); writes that change a
key's row are compare-and-set on the row's ``version``, so the decision of what to do with a
key is a pure function of the row read (:func:`smspipe.delivery.states.decide`)
and a backend needs no logic of its own. Liveness is the database's: a run holds
a lease it renews (a heartbeat); a run whose lease lapsed is dead to every other
run, and must not send on itself. Times (lease, age of an attempt) are the
backend's own clock, so runs on several hosts agree on them.

After the 201 (issue 14), each message row also carries its delivery status as
Twilio last reported it (:class:`Delivery`, moved forward only, see
:mod:`smspipe.lifecycle`), and the ledger holds the suppression list
(:class:`OptOut`): numbers never texted again.

Any backend (SQLite, PostgreSQL) passes ``tests/ledger_contract.py``.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from smspipe.errors import ConfigError, TemporaryFailure

#: A run renews its lease this often, as a share of the lease.
HEARTBEATS_PER_LEASE = 4


class KeyState(StrEnum):
    """The stored state of a key (the result a document gets is decided from it)."""

    #: claimed by a run that is sending it (the request may be out): possibly sent
    SENDING = "sending"
    #: Twilio created the message (``sid``)
    SENT = "sent"
    #: an attempt may have created it and Twilio's log has not shown it yet: possibly sent
    UNKNOWN = "unknown"
    #: Twilio refused the last attempt for good; binds nothing unless a message exists
    FAILED = "failed"


OPEN_STATES = frozenset({KeyState.SENDING, KeyState.UNKNOWN})


# --- errors -------------------------------------------------------------------------


def ledger_fix() -> str:
    """How to get past a ledger that cannot be used."""
    from smspipe.spelling import setting

    return f"move it aside (or restore a backup), or pass {setting('ledger')} with another path"


class LedgerError(ConfigError):
    """The ledger cannot be used as it is (exit 2): damaged, read-only, not ours, too new."""


class LedgerDamaged(LedgerError):
    """The ledger is not what smspipe wrote: never started afresh, never ignored."""


class LedgerReadOnly(LedgerError):
    """The ledger (or its directory) cannot be written."""


class LedgerFull(TemporaryFailure):
    """The disk is full (or a write failed): a later run, with room, goes on (exit 75)."""


class LedgerBusy(TemporaryFailure):
    """Another process held the ledger's write lock for too long (exit 75)."""


class LedgerUnavailable(TemporaryFailure):
    """The ledger's server cannot be reached, or the connection to it was lost (exit 75)."""


class LedgerRetry(LedgerBusy):
    """The database undid a whole batch (a deadlock with another run): nothing of it
    took effect, and running it again may succeed."""


class LeaseLost(TemporaryFailure):
    """This run's lease lapsed (it was stopped or stalled): its claims may be another's now."""


# --- records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Who a run is, for liveness and for the messages that name a holder."""

    run_id: str
    host: str
    pid: int
    #: the boot and pid namespace this pid belongs to: the same-machine fast path
    machine: str | None
    #: when the process started (kernel ticks): a reused pid is another process
    process_start: str | None

    @classmethod
    def this_process(cls) -> RunInfo:
        pid = os.getpid()
        return cls(
            run_id=uuid.uuid4().hex,
            host=socket.gethostname(),
            pid=pid,
            machine=machine_id(),
            process_start=process_start(pid),
        )


@dataclass(frozen=True, slots=True)
class Holder:
    """The run that holds an open key, as seen when the row was read."""

    run_id: str
    this_run: bool
    alive: bool
    #: "this run", or "pid 4242 on shop-cron-1"
    description: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """What a claim records about the message about to be sent."""

    recipient: str
    sender: str | None
    messaging_service_sid: str | None
    account_sid: str | None
    #: kept while the key is open: reconciliation looks the message up by it
    body: str
    body_sha256: str
    media_sha256: str
    #: the text as Twilio's log may show it (trial prefix, smart encoding folded):
    #: two open keys with the same recipient and this cannot tell their messages apart
    match_sha256: str

    def columns(self) -> tuple[str | None, ...]:
        """``recipient, sender, messaging_service_sid, account_sid, body, body_sha256,
        media_sha256, match_sha256``: what a claim writes to its ``deliveries`` row."""
        return (
            self.recipient,
            self.sender,
            self.messaging_service_sid,
            self.account_sid,
            self.body,
            self.body_sha256,
            self.media_sha256,
            self.match_sha256,
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A message Twilio created, under the key it delivered."""

    sid: str
    key: str
    recipient: str
    sender: str | None = None
    messaging_service_sid: str | None = None
    account_sid: str | None = None
    segments: int | None = None
    body_sha256: str | None = None
    media_sha256: str | None = None
    #: True when found in Twilio's message log rather than in the answer to the create
    found_in_log: bool = False
    #: the run that created (or found) it
    run_id: str | None = None
    created_at: float | None = None
    #: Twilio's status in its answer (``queued``, ``accepted``, ``scheduled``), when known
    status: str | None = None

    def columns(
        self, key: str, *, found_in_log: bool, run_id: str | None, created_at: float | None
    ) -> tuple[Any, ...]:
        """``sid, key, recipient, sender, messaging_service_sid, account_sid, segments,
        body_sha256, media_sha256, found_in_log, run_id, created_at``: its ``messages`` row
        under *key*, recorded as the caller says (by this run, or copied as it was)."""
        return (
            self.sid,
            key,
            self.recipient,
            self.sender,
            self.messaging_service_sid,
            self.account_sid,
            self.segments,
            self.body_sha256,
            self.media_sha256,
            found_in_log,
            run_id,
            created_at,
        )

    def copied_columns(self, key: str, created_at: float | None) -> tuple[Any, ...]:
        """:meth:`columns` as this message was recorded (*created_at* where it has none):
        what ``ledger copy`` writes."""
        return self.columns(
            key,
            found_in_log=self.found_in_log,
            run_id=self.run_id,
            created_at=self.created_at if self.created_at is not None else created_at,
        )


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A key's stored state, read in one transaction with its holder and latest message."""

    key: str
    state: KeyState
    #: the recipient of the current attempt (open, failed) or of the message sent
    recipient: str
    sender: str | None
    messaging_service_sid: str | None
    account_sid: str | None
    body: str | None
    body_sha256: str | None
    #: None in rows migrated from schema 1, which did not record media
    media_sha256: str | None
    sid: str | None
    segments: int | None
    error_code: int | None
    error_message: str | None
    holder: Holder | None
    attempts: int
    #: seconds since the last attempt started (the backend's clock)
    attempt_age: float | None
    version: int
    #: the latest message created under this key, if any
    latest: Message | None = None
    #: keyed by a schema 1 content hash (found under a document's legacy key)
    legacy: bool = False

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def bound_to(self) -> str | None:
        """The recipient this key is bound to: the one sent, or possibly sent, under it."""
        if self.state == KeyState.FAILED:
            return self.latest.recipient if self.latest else None
        return self.recipient


#: versions need to be unpredictable to nothing but chance: seeded once from the system
_VERSIONS = random.Random(secrets.randbits(128))


def new_version() -> int:
    """An opaque version: random, so a key deleted and made again never repeats one."""
    return _VERSIONS.getrandbits(62)


def new_row(key: str, attempt: Attempt, run_id: str, version: int) -> KeyRow:
    """The row a claim of a key that had none writes, as :meth:`Ledger.get` reads it back."""
    return KeyRow(
        key=key,
        state=KeyState.SENDING,
        recipient=attempt.recipient,
        sender=attempt.sender,
        messaging_service_sid=attempt.messaging_service_sid,
        account_sid=attempt.account_sid,
        body=attempt.body,
        body_sha256=attempt.body_sha256,
        media_sha256=attempt.media_sha256,
        sid=None,
        segments=None,
        error_code=None,
        error_message=None,
        holder=Holder(run_id, this_run=True, alive=True, description="this run"),
        attempts=1,
        attempt_age=0.0,
        version=version,
    )


class FoundOutcome(StrEnum):
    """What the ledger said to a message found in Twilio's log."""

    #: recorded under this key
    RECORDED = "recorded"
    #: the SID is recorded under another key
    TAKEN = "taken"
    #: another open key has the same recipient and text: it may be that key's message
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a message stands after the 201, as Twilio last reported it (a fetch, a callback).

    Times are Unix seconds (UTC). None where Twilio said nothing (yet).
    """

    status: str
    error_code: int | None = None
    error_message: str | None = None
    #: what Twilio billed, as Twilio writes it (a negative decimal string)
    price: str | None = None
    price_unit: str | None = None
    date_sent: float | None = None
    date_updated: float | None = None
    segments: int | None = None


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One row of ``messages`` with its delivery state: a line of ``smspipe status``."""

    sid: str
    key: str
    recipient: str
    sender: str | None
    messaging_service_sid: str | None
    account_sid: str | None
    segments: int | None
    #: when it was recorded (Unix seconds)
    created_at: float
    status: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    price: str | None = None
    price_unit: str | None = None
    date_sent: float | None = None
    date_updated: float | None = None
    #: when its status was last stored (a refresh, a callback)
    checked_at: float | None = None


@dataclass(frozen=True, slots=True)
class SentQuery:
    """Which messages :meth:`Ledger.sent` lists; every filter optional, all of them apply."""

    #: recorded at or after (Unix seconds)
    since: float | None = None
    #: these statuses; ``pending`` stands for every status that is not final (none known too)
    statuses: frozenset[str] | None = None
    to: str | None = None
    key: str | None = None
    sid: str | None = None
    #: at most this many, the newest first; None: all, oldest first
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class OptOut:
    """A number on the suppression list: never texted again until removed."""

    phone: str
    #: what put it there: ``twilio:21610`` (a refused send), ``inbound`` (a STOP), ``manual``, ``import``
    source: str
    #: Unix seconds
    added_at: float


@dataclass(frozen=True, slots=True)
class Settings:
    """How long claims and attempts last; the same for every backend."""

    #: a run's claims stay valid this long without a heartbeat (seconds)
    lease: float = 60.0


@dataclass(slots=True)
class Counts:
    by_state: dict[str, int] = field(default_factory=dict)
    messages: int = 0


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key's row as stored, with its messages: what moves between ledgers
    (:meth:`Ledger.history`, :meth:`Ledger.merge`). Times are seconds since the epoch."""

    key: str
    state: KeyState
    recipient: str
    sender: str | None
    messaging_service_sid: str | None
    account_sid: str | None
    body: str | None
    body_sha256: str | None
    media_sha256: str | None
    match_sha256: str | None
    sid: str | None
    segments: int | None
    error_code: int | None
    error_message: str | None
    #: the run that holds it open (a run of the ledger it came from: gone in another)
    owner: str | None
    attempts: int
    attempted_at: float | None
    updated_at: float
    legacy: bool
    messages: tuple[Message, ...] = ()

    def copied_columns(self, version: int) -> tuple[Any, ...]:
        """``key, state, recipient, sender, messaging_service_sid, account_sid, body,
        body_sha256, media_sha256, match_sha256, sid, segments, error_code, error_message,
        owner, attempts, attempted_at, updated_at, version, legacy``: the ``deliveries``
        row ``ledger copy`` writes."""
        return (
            self.key,
            str(self.state),
            self.recipient,
            self.sender,
            self.messaging_service_sid,
            self.account_sid,
            self.body,
            self.body_sha256,
            self.media_sha256,
            self.match_sha256,
            self.sid,
            self.segments,
            self.error_code,
            self.error_message,
            self.owner,
            self.attempts,
            self.attempted_at,
            self.updated_at,
            version,
            self.legacy,
        )

    def same_as(self, other: StoredKey) -> bool:
        """The same history: state, recipient, message and every message under the key."""
        return (
            self.state == other.state
            and self.recipient == other.recipient
            and self.sid == other.sid
            and {m.sid for m in self.messages} == {m.sid for m in other.messages}
        )


def difference(here: StoredKey, there: StoredKey) -> str:
    """How a key's history in this ledger differs from another's, in a few words."""

    def brief(stored: StoredKey) -> str:
        return f"{stored.state} to {stored.recipient}" + (f" ({stored.sid})" if stored.sid else "")

    if (here.state, here.recipient, here.sid) != (there.state, there.recipient, there.sid):
        return f"{brief(here)} here, {brief(there)} in the source"
    ours = ", ".join(sorted(m.sid for m in here.messages)) or "none"
    theirs = ", ".join(sorted(m.sid for m in there.messages)) or "none"
    return f"its messages differ ({ours} here, {theirs} in the source)"


def chunks(items: Iterable[StoredKey], size: int) -> Iterator[list[StoredKey]]:
    chunk: list[StoredKey] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(slots=True)
class Merged:
    """What :meth:`Ledger.merge` did."""

    #: keys added (with their messages)
    added: int = 0
    #: keys already there with the same history
    present: int = 0
    #: keys left as they were because they hold another history: (key, why)
    conflicts: list[tuple[str, str]] = field(default_factory=list)


# --- the interface --------------------------------------------------------------------


class Ledger(ABC):
    """What the delivery engine asks of a ledger. Synchronous; one caller thread at a time."""

    #: the operations whose effect must be durable before their caller goes on (a claim
    #: before its request leaves): a batch holding one of them is committed durably
    DURABLE_OPERATIONS = frozenset({"start_run", "claim", "adopt", "touch"})

    #: where it is, for messages ("/home/u/.local/state/smspipe/ledger.sqlite3")
    location: str
    run: RunInfo
    settings: Settings

    # runs and leases

    @abstractmethod
    def start_run(self) -> None:
        """Register this run and take its lease (the first write: faults surface here)."""

    @abstractmethod
    def heartbeat(self) -> bool:
        """Renew the lease; False when it had lapsed (the run must not send on)."""

    @abstractmethod
    def end_run(self) -> None:
        """Give up the lease: this run's open keys are free for the next run to settle."""

    # reads

    @abstractmethod
    def get(self, key: str, legacy_keys: tuple[str, ...] = ()) -> KeyRow | None:
        """The row of *key*, else of the first of *legacy_keys* that has one (schema 1 keys)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, KeyRow]:
        """The rows of *keys* that have one, as :meth:`get` reads each (legacy keys aside)."""
        rows = {}
        for key in keys:
            row = self.get(key)
            if row is not None:
                rows[key] = row
        return rows

    @abstractmethod
    def legacy_accounts(self) -> tuple[str | None, ...]:
        """The accounts of rows keyed by a schema 1 content hash (to derive their keys)."""

    @abstractmethod
    def known_sids(self, recipient: str) -> frozenset[str]:
        """SIDs of the messages to *recipient* the ledger records (under any key)."""

    @abstractmethod
    def orphans(self, limit: int = 10_000) -> list[KeyRow]:
        """Open keys whose holder is dead (or gone): for this run to settle."""

    @abstractmethod
    def counts(self) -> Counts: ...

    # writes: compare-and-set on the version read

    @abstractmethod
    def claim(self, key: str, version: int | None, attempt: Attempt) -> KeyRow | None:
        """Take *key* for a new attempt (durably, before the request leaves).

        *version* is the row's version as read, None when there was no row. Returns
        the claimed row, or None when the row changed meanwhile (read it again).
        Raises :class:`LeaseLost` when this run's lease lapsed.
        """

    @abstractmethod
    def adopt(self, key: str, version: int) -> KeyRow | None:
        """Take over an open key a dead run left, to reconcile it (None if it changed)."""

    @abstractmethod
    def touch(self, key: str) -> None:
        """Another attempt of a claimed key starts now (durably: the grace period runs from it)."""

    @abstractmethod
    def record_sent(self, key: str, message: Message) -> None:
        """Twilio created *message* for *key* (from its answer): the key is sent."""

    @abstractmethod
    def record_found(self, key: str, message: Message, match_sha256: str | None) -> FoundOutcome:
        """A message found in Twilio's log for *key*, recorded unless it may be another key's.

        *match_sha256* identifies the text as the log shows it: another open key to
        the same recipient with the same one makes the finding ambiguous. None when
        the attempt is past the grace period (its own message, if any, would show:
        the message found serves this document as well as any).
        """

    @abstractmethod
    def record_failed(self, key: str, code: int | None, message: str) -> None:
        """Twilio refused the attempt for good: nothing was created."""

    @abstractmethod
    def record_unknown(self, key: str, message: str, attempt_age: float | None = None) -> None:
        """The attempt may have created the message and the log has not shown it.

        *attempt_age*: how long ago the ambiguous attempt started, when known (the
        grace period runs from then).
        """

    @abstractmethod
    def release(self, key: str) -> None:
        """The attempt certainly created nothing: the key goes back to what it was."""

    # pacing shared by every run of the ledger

    @abstractmethod
    def take_turn(self, name: str, interval: float) -> float:
        """Start now if *interval* seconds have passed since the last start any run recorded
        under *name*: record this start and return 0. Else the seconds to wait before asking
        again. Times are the backend's clock."""

    # moving history between ledgers

    @abstractmethod
    def history(self) -> Iterator[StoredKey]:
        """Every key's row and messages, in key order."""

    @abstractmethod
    def merge(self, keys: Iterable[StoredKey]) -> Merged:
        """Add the keys this ledger lacks (each whole, with its messages); a key it has with
        the same history is left be, one with another history (or whose message another key
        holds) is left as it is and reported: nothing is ever overwritten."""

    @contextlib.contextmanager
    def batch(self, *, durable: bool = True) -> Iterator[None]:
        """Group commit: the operations called inside run in one transaction, committed
        once, when the batch ends (synced to disk when *durable*: a batch holding one of
        :attr:`DURABLE_OPERATIONS` must be).

        Each operation is still all or nothing: one that raises leaves the others'
        effects in place. Nothing done inside is visible to other runs, nor durable,
        before the batch ends, so a caller acts on an answer (sends after a claim) only
        then. When the batch itself fails (its commit; a connection lost) it raises, and
        its operations may or may not have taken effect, as a single operation's may.
        This default runs each operation on its own.
        """
        yield

    # delivery status (issue 14)

    @abstractmethod
    def sent(self, query: SentQuery) -> list[SentRecord]:
        """The messages Twilio created that *query* selects, with their delivery state."""

    @abstractmethod
    def update_delivery(self, sid: str, delivery: Delivery) -> bool:
        """Store *delivery* for message *sid*, only as a step forward
        (:func:`smspipe.lifecycle.may_follow`); True when it changed the row."""

    @abstractmethod
    def sent_since(self, recipient: str, since: float) -> int:
        """How many messages to *recipient* were recorded at or after *since* (per-recipient caps)."""

    # the suppression list

    @abstractmethod
    def add_optouts(self, phones: Iterable[str], source: str) -> int:
        """Put *phones* (E.164) on the list; how many were not on it yet."""

    @abstractmethod
    def remove_optouts(self, phones: Iterable[str]) -> int:
        """Take *phones* off the list; how many were on it."""

    @abstractmethod
    def optouts(self) -> list[OptOut]:
        """The whole list, oldest first."""

    @abstractmethod
    def opted_out(self, phone: str) -> OptOut | None:
        """*phone*'s entry on the list, if it is on it."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the process, for liveness -----------------------------------------------------------


def machine_id() -> str | None:
    """This boot of this machine and this pid namespace: pids compare only within one."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            boot_id = boot.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot_id}/{namespace}"


def process_start(pid: int) -> str | None:
    """When *pid* started (field 22 of /proc/PID/stat), or None where unknown."""
    found = _process_stat(pid)
    return found[1] if found else None


def process_alive(pid: int, started: str | None) -> bool | None:
    """Is *pid* (started at *started*) still running here? None when it cannot tell."""
    if started is None:
        return None
    found = _process_stat(pid)
    if found is None:
        return False if not os.path.exists(f"/proc/{pid}") else None
    state, start = found
    # A zombie (killed, not yet reaped by its parent) is gone; a stopped one is not.
    return start == started and state not in ("Z", "X")


def _process_stat(pid: int) -> tuple[str, str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if len(fields) <= 19:
        return None
    return fields[0].decode(), fields[19].decode()


# --- rows as records (both backends) ---------------------------------------------------------


class Row(Protocol):
    """A row as both backends give it: sqlite3.Row, or psycopg's dict row."""

    def __getitem__(self, name: str, /) -> Any: ...


def message_from_row(record: Row, prefix: str = "") -> Message:
    """A ``messages`` row (its columns named with *prefix* when joined) as a Message."""
    try:
        status = record[prefix + "status"]
    except (KeyError, IndexError):  # a query that does not select it
        status = None
    return Message(
        sid=record[prefix + "sid"],
        key=record[prefix + "key"],
        recipient=record[prefix + "recipient"],
        sender=record[prefix + "sender"],
        messaging_service_sid=record[prefix + "messaging_service_sid"],
        account_sid=record[prefix + "account_sid"],
        segments=record[prefix + "segments"],
        body_sha256=record[prefix + "body_sha256"],
        media_sha256=record[prefix + "media_sha256"],
        found_in_log=bool(record[prefix + "found_in_log"]),
        run_id=record[prefix + "run_id"],
        created_at=record[prefix + "created_at"],
        status=status,
    )


def stored_key_from_row(record: Row, messages: Iterable[Message]) -> StoredKey:
    """A ``deliveries`` row and its messages as a StoredKey (what ``ledger copy`` moves)."""
    return StoredKey(
        key=record["key"],
        state=KeyState(record["state"]),
        recipient=record["recipient"],
        sender=record["sender"],
        messaging_service_sid=record["messaging_service_sid"],
        account_sid=record["account_sid"],
        body=record["body"],
        body_sha256=record["body_sha256"],
        media_sha256=record["media_sha256"],
        match_sha256=record["match_sha256"],
        sid=record["sid"],
        segments=record["segments"],
        error_code=record["error_code"],
        error_message=record["error_message"],
        owner=record["owner"],
        attempts=record["attempts"],
        attempted_at=record["attempted_at"],
        updated_at=record["updated_at"],
        legacy=bool(record["legacy"]),
        messages=tuple(messages),
    )


def key_row_from_row(record: Row, *, now: float, holder: Holder | None, latest: Message | None) -> KeyRow:
    """A ``deliveries`` row as the walk reads it, with who holds it and its latest message."""
    attempted = record["attempted_at"]
    return KeyRow(
        key=record["key"],
        state=KeyState(record["state"]),
        recipient=record["recipient"],
        sender=record["sender"],
        messaging_service_sid=record["messaging_service_sid"],
        account_sid=record["account_sid"],
        body=record["body"],
        body_sha256=record["body_sha256"],
        media_sha256=record["media_sha256"],
        sid=record["sid"],
        segments=record["segments"],
        error_code=record["error_code"],
        error_message=record["error_message"],
        holder=holder,
        attempts=record["attempts"],
        attempt_age=None if attempted is None else max(0.0, now - attempted),
        version=record["version"],
        latest=latest,
        legacy=bool(record["legacy"]),
    )
