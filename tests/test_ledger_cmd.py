"""`smspipe ledger migrate` and `smspipe ledger copy` (issue 15): history moved between SQLite and
PostgreSQL, proved by what a later `send` does with it (skips, sends nothing twice)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke, ndjson, sms_documents
from test_ledger import write_v1
from twilio_server import TwilioServer


def sqlite_ledger(env: dict[str, str]) -> Path:
    return Path(env["SMSPIPE_HOME"]) / "state" / "ledger.sqlite3"


def sent_with(ledger: str | Path, documents: list[dict[str, Any]]) -> list[str]:
    run = invoke("send", "--ledger", str(ledger), input=ndjson(documents))
    assert run.exit_code == 0, run.stderr
    return run.statuses()


def test_migrate_makes_a_postgresql_ledger_once(send_env: dict[str, str], postgres_url: str) -> None:
    first = invoke("ledger", "migrate", "--ledger", postgres_url)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == ""
    assert "made, schema 2" in first.stderr
    again = invoke("ledger", "migrate", "--ledger", postgres_url)
    assert again.exit_code == 0 and "nothing to do" in again.stderr


def test_migrate_takes_the_ledger_from_the_environment(
    send_env: dict[str, str], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_LEDGER", postgres_url)
    run = invoke("ledger", "migrate")
    assert run.exit_code == 0, run.stderr
    assert "made, schema 2" in run.stderr and postgres_url.rsplit("/", 1)[-1] in run.stderr


def test_migrate_brings_an_sqlite_ledger_of_schema_1_up_to_date(
    bare_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "old.sqlite3"
    write_v1(path, [("order:1", "sent", "SM1", None)])
    run = invoke("ledger", "migrate", "--ledger", str(path))
    assert run.exit_code == 0, run.stderr
    assert "migrated from schema 1 to 3" in run.stderr
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3


def test_history_moves_from_sqlite_into_postgresql_and_back(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres_url: str, tmp_path: Path
) -> None:
    documents = sms_documents(30)
    assert set(sent_with(sqlite_ledger(send_env), documents)) == {"sent"}
    created = len(twilio_server.messages)

    copied = invoke("ledger", "copy", str(sqlite_ledger(send_env)), postgres_url, "--json")
    assert copied.exit_code == 0, copied.stderr
    summary = json.loads(copied.stdout)
    assert (summary["added"], summary["present"], summary["conflicts"]) == (30, 0, [])
    assert "copied 30 keys" in copied.stderr
    # The PostgreSQL ledger knows what the SQLite one sent: nothing goes out again.
    assert set(sent_with(postgres_url, documents)) == {"skipped"}
    assert len(twilio_server.messages) == created

    again = invoke("ledger", "copy", str(sqlite_ledger(send_env)), postgres_url)
    assert again.exit_code == 0, again.stderr
    assert "copied 0 keys" in again.stderr and "30 already there" in again.stderr

    more = sms_documents(5, prefix="later")
    assert set(sent_with(postgres_url, more)) == {"sent"}
    back = tmp_path / "back.sqlite3"
    returned = invoke("ledger", "copy", postgres_url, str(back))
    assert returned.exit_code == 0, returned.stderr
    assert "copied 35 keys" in returned.stderr
    assert set(sent_with(back, [*documents, *more])) == {"skipped"}
    assert len(twilio_server.messages) == created + 5


def test_a_key_with_another_history_in_the_target_is_never_overwritten(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres_url: str
) -> None:
    documents = sms_documents(3)
    sent_with(sqlite_ledger(send_env), documents)
    elsewhere = [{**documents[0], "sms": {**documents[0]["sms"], "phone": "+14155559999"}}]
    sent_with(postgres_url, elsewhere)  # msg-0 went to another recipient under the target's ledger

    run = invoke("ledger", "copy", str(sqlite_ledger(send_env)), postgres_url, "--json")
    assert run.exit_code == 1, run.stderr
    [conflict] = json.loads(run.stdout)["conflicts"]
    assert conflict["key"] == "msg-0" and "+14155559999" in conflict["why"]
    [line] = [x for x in run.stderr.splitlines() if "conflict:" in x]
    assert "msg-0" in line and "left as it is" in line
    assert "copied 2 keys" in run.stderr
    # The target still holds its own history for msg-0: the document to the first recipient
    # is a conflict there, not a skip; the others were copied.
    check = invoke("send", "--ledger", postgres_url, "--dry-run", input=ndjson(documents))
    assert check.statuses() == ["conflict", "skipped", "skipped"]


def test_copy_refuses_a_ledger_into_itself_and_a_source_that_is_not_there(
    bare_env: dict[str, str], tmp_path: Path, postgres_url: str
) -> None:
    itself = invoke("ledger", "copy", postgres_url, postgres_url)
    assert itself.exit_code == 2 and "both the source and the target" in itself.stderr
    missing = invoke("ledger", "copy", str(tmp_path / "none.sqlite3"), postgres_url)
    assert missing.exit_code == 2
    [line] = missing.stderr.splitlines()
    assert "there is no ledger at" in line and "none.sqlite3" in line
    assert missing.stdout == ""


def test_a_copy_carries_delivery_status_and_the_suppression_list(
    send_env: dict[str, str], twilio_server: TwilioServer, postgres_url: str
) -> None:
    """Issue 14: what status --refresh learnt and who opted out move with the history."""
    import smspipe
    from twilio_server import Lifecycle

    twilio_server.lifecycle = Lifecycle(step_seconds=0, outcomes={"+14155550001": ("undelivered", 30003)})
    source = str(sqlite_ledger(send_env))
    sent_with(source, sms_documents(2))
    assert smspipe.status(refresh=True, ledger=source).report.by_status == {"delivered": 1, "undelivered": 1}
    smspipe.optout_add(["+14155552671"], source="inbound", ledger=source)

    copied = invoke("ledger", "copy", source, postgres_url, "--json")
    assert copied.exit_code == 0, copied.stderr
    assert json.loads(copied.stdout)["optouts_added"] == 1 and "1 opted-out number added" in copied.stderr
    there = smspipe.status(ledger=postgres_url)
    assert there.report.by_status == {"delivered": 1, "undelivered": 1}
    assert [line.as_dict()["error_code"] for line in there.lines if line.status == "undelivered"] == [30003]
    assert [(o.phone, o.source) for o in smspipe.optouts(ledger=postgres_url)] == [
        ("+14155552671", "inbound")
    ]
    assert json.loads(invoke("ledger", "copy", source, postgres_url, "--json").stdout)["optouts_added"] == 0
