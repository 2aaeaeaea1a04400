"""Keys and what a key is bound to (issue 10, items 1 and 9).

A key is bound to the recipient first sent (or possibly sent) under it: the same
key for another recipient is a ``conflict`` (not sent, exit 1; ``--force`` sends
it); the same key and recipient with another text is ``skipped`` with a note.
A key never depends on credentials or default senders, so a dry run and a real
run agree. Every claim is checked against what the loopback server created.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import SENDER, invoke, ndjson, sms_documents
from twilio_server import TwilioServer

A = "+14155550101"
B = "+14155550102"


def request(key: str, phone: str, message: str = "Your order R1 shipped", **sms: str) -> dict[str, Any]:
    return {"request_id": key, "sms": {"phone": phone, "message": message, **sms}}


def created_to(server: TwilioServer) -> list[str]:
    return sorted(m["to"] for m in server.messages)


# --- item 1: a reused key for another recipient ------------------------------------------


def test_a_key_reused_for_another_recipient_is_a_conflict_not_a_skip(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    first = invoke("send", input=ndjson([request("r1", A)]))
    assert first.exit_code == 0, first.stderr
    [earlier] = twilio_server.messages

    second = invoke("send", input=ndjson([request("r1", B)]))

    assert second.exit_code == 1, second.stderr
    [record] = second.records
    assert record["status"] == "conflict"
    assert record["to"] == B
    assert record["sid"] is None  # nothing was sent to B
    assert record["earlier"] == {"to": A, "sid": earlier["sid"]}
    assert A in record["summary"] and B in record["summary"] and earlier["sid"] in record["summary"]
    assert "--force" in record["summary"]
    assert "1 conflict" in second.stderr
    assert created_to(twilio_server) == [A]


def test_force_sends_a_conflicting_document_and_the_ledger_keeps_both_messages(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    invoke("send", input=ndjson([request("r1", A)]))
    forced = invoke("send", "--force", input=ndjson([request("r1", B)]))
    assert forced.exit_code == 0, forced.stderr
    assert forced.statuses() == ["sent"]
    assert created_to(twilio_server) == [A, B]
    # The key is now bound to B: A under it is the conflict.
    again = invoke("send", input=ndjson([request("r1", A)]))
    assert again.statuses() == ["conflict"]
    assert created_to(twilio_server) == [A, B]


def test_a_collection_whose_items_shift_is_a_conflict(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    shifted_from = {
        "request_id": "r1",
        "sms": [{"phone": A, "message": "for A"}, {"phone": "12", "message": "B, mistyped"}],
    }
    first = invoke("send", input=json.dumps(shifted_from))
    assert first.exit_code == 1  # r1[1] invalid
    fixed = {"request_id": "r1", "sms": [{"phone": B, "message": "B, mistyped"}]}
    second = invoke("send", input=json.dumps(fixed))
    assert second.exit_code == 1
    assert second.statuses() == ["conflict"]
    assert created_to(twilio_server) == [A]


def test_one_key_for_two_recipients_in_one_batch_sends_one_and_reports_the_other_conflict(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    run = invoke("send", "--concurrency", "4", input=ndjson([request("r1", A), request("r1", B)]))
    assert run.exit_code == 1
    by_to = {r["to"]: r for r in run.records}
    assert by_to[A]["status"] == "sent"
    assert by_to[B]["status"] == "conflict"
    assert by_to[B]["earlier"]["sid"] == by_to[A]["sid"]
    assert created_to(twilio_server) == [A]


def test_the_same_key_and_recipient_with_another_text_is_skipped_with_a_note(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    invoke("send", input=ndjson([request("r1", A, "Your order R1 shipped")]))
    edited = invoke("send", input=ndjson([request("r1", A, "Good news: order R1 is on its way")]))
    assert edited.exit_code == 0, edited.stderr
    [record] = edited.records
    assert record["status"] == "skipped"
    assert record["sid"] == twilio_server.messages[0]["sid"]
    assert "earlier text differed" in record["note"]
    assert len(twilio_server.messages) == 1


def test_another_media_url_is_another_text_but_another_default_sender_is_the_same_message(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    invoke("send", input=ndjson([request("r1", A)]))
    media = request("r1", A)
    media["sms"]["media_url"] = ["https://example.com/a.png"]
    with_media = invoke("send", input=ndjson([media]))
    assert with_media.statuses() == ["skipped"]
    assert "earlier text differed" in with_media.records[0]["note"]
    other_sender = invoke("send", "--from", "+15017120009", input=ndjson([request("r1", A)]))
    assert other_sender.statuses() == ["skipped"]
    assert other_sender.records[0]["note"] is None
    assert len(twilio_server.messages) == 1


def test_a_key_possibly_sent_to_one_recipient_is_a_conflict_for_another(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_RECONCILE_GRACE", "600")
    twilio_server.inject("drop")
    twilio_server.fail_lookups = 10_000
    first = invoke("send", input=ndjson([request("r1", A)]))
    assert first.statuses() == ["unknown"]
    second = invoke("send", input=ndjson([request("r1", B)]))
    assert second.exit_code == 1, second.stderr
    [record] = second.records
    assert record["status"] == "conflict"
    assert record["earlier"] == {"to": A, "sid": None}
    assert "may already have been sent to " + A in record["summary"]

    twilio_server.fail_lookups = 0
    third = invoke("send", input=ndjson([request("r1", A), request("r1", B)]))
    assert sorted(third.statuses()) == ["conflict", "skipped"]
    assert created_to(twilio_server) == [A]


def test_a_key_that_only_ever_failed_binds_nothing(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.reject(A, 21211)
    assert invoke("send", input=ndjson([request("r1", A)])).exit_code == 1
    corrected = invoke("send", input=ndjson([request("r1", B)]))
    assert corrected.exit_code == 0, corrected.stderr
    assert corrected.statuses() == ["sent"]
    assert created_to(twilio_server) == [B]


def test_without_request_id_a_changed_default_sender_is_not_a_new_message(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(2, request_ids=False)
    invoke("send", input=ndjson(documents))
    again = invoke("send", "--from", "+15017120009", input=ndjson(documents))
    assert again.exit_code == 0, again.stderr
    assert again.statuses() == ["skipped", "skipped"]
    assert len(twilio_server.messages) == 2


# --- item 9: a dry run derives the same keys as a real run ---------------------------------


def test_a_dry_run_without_credentials_skips_what_a_real_run_sent(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: object
) -> None:
    documents = sms_documents(3, request_ids=False)
    sent = invoke("send", input=ndjson(documents[:2]))
    assert sent.exit_code == 0, sent.stderr
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name)  # type: ignore[attr-defined]
    dry = invoke("send", "--dry-run", input=ndjson(documents))
    assert dry.exit_code == 0, dry.stderr
    assert [r["status"] for r in dry.records] == ["skipped", "skipped", "dry-run"]
    # A real run writes each result as it completes: compared in the input's order.
    sent_in_order = sorted(sent.records, key=lambda r: r["line"])
    assert [r["request_id"] for r in dry.records] == [r["request_id"] for r in sent_in_order] + [
        dry.records[2]["request_id"]
    ]


def test_a_dry_run_applies_the_conflict_and_batch_rules_a_real_run_applies(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    invoke("send", input=ndjson([request("r1", A)]))
    batch = [
        request("r1", B),  # bound to A: conflict
        request("r1", A, "edited text"),  # skipped, text differed
        request("r2", A),  # would be sent
        request("r2", B),  # same batch, other recipient: conflict
        request("r2", A),  # same batch, same recipient: skipped
    ]
    dry = invoke("send", "--dry-run", input=ndjson(batch))
    real = invoke("send", "--concurrency", "1", input=ndjson(batch))
    assert dry.statuses() == ["conflict", "skipped", "dry-run", "conflict", "skipped"]
    assert sorted(real.statuses()) == sorted(s.replace("dry-run", "sent") for s in dry.statuses())
    assert dry.exit_code == real.exit_code == 1


def test_a_v1_ledger_is_migrated_in_place_and_nothing_is_sent_again(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    """A ledger written by smspipe 0.x (schema 1, keys hashed with the account and sender)."""
    import sqlite3

    from smspipe import sms
    from twilio_server import ACCOUNT_SID

    path = Path(send_env["SMSPIPE_HOME"]) / "state" / "ledger.sqlite3"
    path.parent.mkdir(parents=True)
    documents = [*sms_documents(2, request_ids=False), *sms_documents(1, prefix="rid")]
    v1_keys = [
        sms.content_hash(sms.SMS(to=d["sms"]["phone"], body=d["sms"]["message"], sender=SENDER), ACCOUNT_SID)
        for d in documents[:2]
    ] + ["rid-0"]
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    for key, document in zip(v1_keys, documents, strict=True):
        db.execute(
            "INSERT INTO deliveries (key, state, account_sid, recipient, sender, body_sha256, sid, "
            "segments, attempts, updated_at) VALUES (?, 'sent', ?, ?, ?, ?, ?, 1, 1, 1700000000)",
            (key, ACCOUNT_SID, document["sms"]["phone"], SENDER, "x", "SM" + key[-6:].rjust(32, "0")),
        )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    run = invoke("send", input=ndjson(documents))
    assert run.exit_code == 0, run.stderr
    assert run.statuses() == ["skipped"] * 3
    assert twilio_server.creates() == []
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version >= 2


# The schema smspipe 0.x wrote (src/smspipe/ledger.py before the ledger package).
V1_SCHEMA = """
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


def test_a_forced_resend_that_went_unanswered_is_never_taken_for_the_earlier_message(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    invoke("send", input=ndjson([request("r1", A)]))
    [earlier] = twilio_server.messages
    twilio_server.inject("reset")  # the forced attempt goes unanswered, and created nothing
    forced = invoke("send", "--force", "--max-wait", "0.1", input=ndjson([request("r1", A)]))
    assert forced.exit_code == 75, forced.stderr
    [record] = forced.records
    assert record["status"] == "unknown"
    assert record["sid"] != earlier["sid"]
    assert len(twilio_server.messages) == 1
