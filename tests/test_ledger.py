"""The ledger: the contract (tests/ledger_contract.py) on SQLite and on PostgreSQL, and what is
SQLite's own: the file, its names, its schema 1 ancestor."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_contract import *  # noqa: F403 - the contract's tests run here, on SQLite
from ledger_contract import MakeLedger, attempt, message
from smspipe.ledger import KeyState, Ledger, RunInfo, Settings, open_ledger
from test_conflicts import V1_SCHEMA


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "state" / "ledger.sqlite3")


@pytest.fixture
def make_ledger(ledger_target: str) -> Iterator[MakeLedger]:
    opened: list[Ledger] = []

    def make(settings: Settings | None = None) -> Ledger:
        ledger = open_ledger(ledger_target, settings=settings)
        assert ledger is not None
        ledger.start_run()
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


# --- SQLite's own ----------------------------------------------------------------------


def test_the_file_is_wal_private_and_marked_as_a_smspipe_ledger(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite3"
    ledger = open_ledger(path)
    assert ledger is not None
    ledger.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x534D5350
    assert path.stat().st_mode & 0o077 == 0
    assert path.parent.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        "ledger.sqlite3"
    ]


def test_a_read_only_look_finds_nothing_where_there_is_no_ledger(tmp_path: Path) -> None:
    assert open_ledger(tmp_path / "none.sqlite3", read_only=True) is None
    assert not (tmp_path / "none.sqlite3").exists()


@pytest.mark.parametrize("alias", ["symlink", "hardlink", "relative"])
def test_two_names_for_one_ledger_are_one_ledger(
    tmp_path: Path, alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state" / "ledger.sqlite3"
    first = open_ledger(path)
    assert first is not None
    first.start_run()
    other = tmp_path / "other.sqlite3"
    if alias == "symlink":
        other.symlink_to(path)
    elif alias == "hardlink":
        os.link(path, other)
    else:
        monkeypatch.chdir(tmp_path / "state")
        other = Path("ledger.sqlite3")
    second = open_ledger(other)
    assert second is not None
    second.start_run()
    try:
        # The claim sits in the write-ahead log, not yet in the file: a second
        # name with a log of its own would not see it (and would take its own
        # write lock).
        assert first.claim("k", None, attempt()) is not None
        assert second.claim("k", None, attempt()) is None
        row = second.get("k")
        assert row is not None and row.holder is not None and row.holder.alive
    finally:
        first.close()
        second.close()
    wal_files = sorted(p.name for p in tmp_path.rglob("*-wal"))
    assert wal_files in ([], ["ledger.sqlite3-wal"])


def write_v1(path: Path, rows: list[tuple[str, str, str | None, str | None]]) -> None:
    """A schema 1 ledger (smspipe before the ledger package): (key, state, sid, body) rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
        for key, state, sid, body in rows:
            db.execute(
                "INSERT INTO deliveries (key, state, account_sid, recipient, sender, body, body_sha256, "
                "sid, owner, attempts, attempted_at, updated_at) "
                "VALUES (?, ?, 'AC1', ?, '+15017122661', ?, 'h', ?, 'host:1:gone', 1, 1.7e9, 1.7e9)",
                (key, state, "+14155550101", body, sid),
            )
        db.execute("PRAGMA user_version = 1")


def test_schema_1_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    write_v1(
        path,
        [
            ("order:1", "sent", "SM1", None),
            ("sha256:" + "a" * 32, "sent", "SM2", None),
            ("order:3", "pending", None, "in flight when it was killed"),
            ("order:4", "failed", None, None),
        ],
    )
    ledger = open_ledger(path)
    assert ledger is not None
    ledger.start_run()
    try:
        sent = ledger.get("order:1")
        assert sent is not None and sent.state == KeyState.SENT and sent.latest is not None
        assert sent.latest.sid == "SM1"
        [orphan] = ledger.orphans()  # its owner (a lock-file run id) is gone
        assert orphan.key == "order:3" and orphan.state == KeyState.SENDING
        assert orphan.body == "in flight when it was killed"
        assert ledger.legacy_accounts() == ("AC1",)
        # A schema 1 content-hash key is found by that hash and takes the new key.
        found = ledger.get("sha256:new", ("sha256:" + "a" * 32,))
        assert found is not None and found.key == "sha256:new" and found.sid == "SM2"
        assert ledger.get("sha256:" + "a" * 32) is None
        assert ledger.counts().messages == 2
    finally:
        ledger.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_dry_run_reads_schema_1_without_migrating_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    write_v1(path, [("order:1", "sent", "SM1", None), ("sha256:" + "b" * 32, "sent", "SM2", None)])
    view = open_ledger(path, read_only=True)
    assert view is not None
    try:
        row = view.get("order:1")
        assert row is not None and row.state == KeyState.SENT and row.sid == "SM1"
        legacy = view.get("sha256:new", ("sha256:" + "b" * 32,))
        assert legacy is not None and legacy.sid == "SM2"
    finally:
        view.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    from smspipe.ledger import LedgerError

    path = tmp_path / "ledger.sqlite3"
    ledger = open_ledger(path)
    assert ledger is not None
    ledger.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(LedgerError, match="newer smspipe"):
        open_ledger(path)


def test_ended_runs_are_forgotten_after_a_week_unless_they_own_a_key(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    old = open_ledger(path, run=RunInfo("old", "h", 1, None, None))
    assert old is not None
    old.start_run()
    old.claim("k", None, attempt())
    old.record_sent("k", message("SM1", "k"))
    old.end_run()
    old.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET ended_at = ended_at - 8 * 86400")
    fresh = open_ledger(path)
    assert fresh is not None
    fresh.start_run()
    fresh.close()
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT run_id FROM runs")] != ["old"]
        assert db.execute("SELECT count(*) FROM runs WHERE run_id = 'old'").fetchone()[0] == 0


def test_64_scribbled_bytes_anywhere_are_refused_or_harmless(tmp_path: Path) -> None:
    """Wherever 64 bytes land, the ledger is refused (LedgerDamaged) or every key reads as
    it was: never a key gone missing (which would send its message again), never a crash."""
    import random

    from smspipe.ledger import LedgerDamaged

    path = tmp_path / "ledger.sqlite3"
    ledger = open_ledger(path)
    assert ledger is not None
    ledger.start_run()
    for i in range(300):
        ledger.claim(f"order:{i}", None, attempt(body="b" * 100))
        ledger.record_sent(f"order:{i}", message(f"SM{i:032d}", f"order:{i}"))
    ledger.end_run()
    ledger.close()
    data = path.read_bytes()
    rng = random.Random(20261202)
    refused = 0
    for _ in range(120):
        scribbled = bytearray(data)
        where = rng.randrange(100, len(data) - 64)
        scribbled[where : where + 64] = rng.randbytes(64)
        copy = tmp_path / f"copy-{where}.sqlite3"
        copy.write_bytes(bytes(scribbled))
        try:
            view = open_ledger(copy, read_only=True)
            assert view is not None
            try:
                rows = [view.get(f"order:{i}") for i in range(300)]
            finally:
                view.close()
        except LedgerDamaged:
            refused += 1
            continue
        missing = [i for i, row in enumerate(rows) if row is None or row.state != KeyState.SENT]
        assert missing == [], f"64 bytes at {where} lost keys {missing[:5]}"
    assert refused > 0


# Schema 2 (issue 10's ledger): the tables as that smspipe wrote them.
V2_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (run_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, machine TEXT,
    process_start TEXT, started_at REAL NOT NULL, lease_until REAL NOT NULL, ended_at REAL);
CREATE TABLE deliveries (key TEXT PRIMARY KEY, state TEXT NOT NULL, recipient TEXT NOT NULL, sender TEXT,
    messaging_service_sid TEXT, account_sid TEXT, body TEXT, body_sha256 TEXT, media_sha256 TEXT,
    match_sha256 TEXT, sid TEXT, segments INTEGER, error_code INTEGER, error_message TEXT, owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, attempted_at REAL, updated_at REAL NOT NULL,
    version INTEGER NOT NULL, legacy INTEGER NOT NULL DEFAULT 0);
CREATE TABLE messages (sid TEXT PRIMARY KEY, key TEXT NOT NULL, recipient TEXT NOT NULL, sender TEXT,
    messaging_service_sid TEXT, account_sid TEXT, segments INTEGER, body_sha256 TEXT, media_sha256 TEXT,
    found_in_log INTEGER NOT NULL DEFAULT 0, run_id TEXT, created_at REAL NOT NULL);
CREATE INDEX messages_key ON messages (key, created_at);
CREATE INDEX messages_recipient ON messages (recipient);
PRAGMA application_id = 1397576528;
PRAGMA user_version = 2;
"""


def write_v2(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(V2_SCHEMA)
        db.execute(
            "INSERT INTO deliveries (key, state, recipient, sid, segments, updated_at, version) "
            "VALUES ('order:1', 'sent', '+14155550101', 'SM1', 1, 1.7e9, 7)"
        )
        db.execute(
            "INSERT INTO messages (sid, key, recipient, segments, created_at) "
            "VALUES ('SM1', 'order:1', '+14155550101', 1, 1.7e9)"
        )


def test_schema_2_is_migrated_in_place_and_read_as_pending_before(tmp_path: Path) -> None:
    from smspipe.ledger import Delivery, SentQuery

    path = tmp_path / "ledger.sqlite3"
    write_v2(path)
    view = open_ledger(path, read_only=True)  # a look (status, a dry run) does not migrate
    assert view is not None
    try:
        [before] = view.sent(SentQuery(statuses=frozenset({"pending"})))
        assert before.sid == "SM1" and before.status is None
        assert view.sent(SentQuery(statuses=frozenset({"delivered"}))) == []
        assert view.optouts() == [] and view.opted_out("+14155550101") is None
    finally:
        view.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    ledger = open_ledger(path)
    assert ledger is not None
    try:
        row = ledger.get("order:1")
        assert row is not None and row.state == KeyState.SENT and row.sid == "SM1"
        assert ledger.update_delivery("SM1", Delivery("delivered"))
        assert ledger.add_optouts(["+14155550101"], "manual") == 1
        [after] = ledger.sent(SentQuery())
        assert after.status == "delivered"
    finally:
        ledger.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
