"""`smspipe status` (and --refresh) and `send --wait` (issue 14), against the loopback
server's life cycle: exit codes, stdout and stderr apart, what the server received."""

from __future__ import annotations

from typing import Any

import pytest

import smspipe
from conftest import invoke, ndjson, sms_documents
from twilio_server import Lifecycle, ManualClock, TwilioServer

UNREACHABLE = "+14155559001"
LANDLINE = "+14155559002"


def batch() -> list[dict[str, Any]]:
    documents = sms_documents(4)
    documents[1]["sms"]["phone"] = UNREACHABLE
    documents[2]["sms"]["phone"] = LANDLINE
    return documents


@pytest.fixture
def clock(twilio_server: TwilioServer) -> ManualClock:
    """The server's life cycle on a clock the test moves: nothing sleeps."""
    manual = ManualClock()
    twilio_server.clock = manual
    twilio_server.lifecycle = Lifecycle(
        step_seconds=60,
        outcomes={UNREACHABLE: ("undelivered", 30003), LANDLINE: ("failed", 30006)},
    )
    return manual


def by_id(run_records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["request_id"]: r for r in run_records}


def test_status_lists_what_was_sent_and_refresh_settles_it(
    send_env: dict[str, str], twilio_server: TwilioServer, clock: ManualClock
) -> None:
    assert invoke("send", input=ndjson(batch())).exit_code == 0
    before = invoke("status")
    assert before.exit_code == 75, before.stderr  # queued: pending
    assert [r["status"] for r in before.records] == ["queued"] * 4
    assert twilio_server.fetches() == []  # without --refresh, the ledger only

    clock.advance(3600)
    run = invoke("status", "--refresh")
    assert run.exit_code == 1, run.stderr  # one undelivered, one failed
    lines = by_id(run.records)
    assert lines["msg-0"]["status"] == "delivered" and lines["msg-0"]["price"] == "-0.00790"
    assert lines["msg-1"]["status"] == "undelivered" and lines["msg-1"]["error_code"] == 30003
    assert "unreachable" in lines["msg-1"]["meaning"] and lines["msg-1"]["action"]
    assert lines["msg-2"]["status"] == "failed" and lines["msg-2"]["error_code"] == 30006
    assert lines["msg-0"]["time_utc"].endswith("Z") and lines["msg-0"]["date_sent"].endswith("Z")
    assert len(twilio_server.fetches()) == 4
    assert "delivery rate: 50.0% of 4 final" in run.stderr
    assert "30003" in run.stderr and "not delivered by country: US 2" in run.stderr
    assert "price: 0.02370 USD" in run.stderr  # delivered and undelivered are billed, failed is not
    assert run.stdout.count("\n") == 4  # data only on stdout

    again = invoke("status", "--refresh")
    assert len(twilio_server.fetches()) == 4  # final statuses are not fetched again
    assert again.exit_code == 1


def test_status_filters(send_env: dict[str, str], twilio_server: TwilioServer, clock: ManualClock) -> None:
    invoke("send", input=ndjson(batch()))
    clock.advance(3600)
    invoke("status", "--refresh")
    failed = invoke("status", "--status", "failed,undelivered")
    assert sorted(r["request_id"] for r in failed.records) == ["msg-1", "msg-2"]
    assert [r["request_id"] for r in invoke("status", "--to", UNREACHABLE).records] == ["msg-1"]
    delivered = invoke("status", "--request-id", "msg-3")
    assert delivered.exit_code == 0 and [r["status"] for r in delivered.records] == ["delivered"]
    assert invoke("status", "--since", "1h").records and not invoke("status", "--since", "2999-01-01").records
    bad = invoke("status", "--since", "yesterday")
    assert bad.exit_code == 2 and "24h" in bad.stderr
    assert invoke("status", "--status", "lost").exit_code == 2


def test_a_late_answer_never_moves_a_final_status_back(
    send_env: dict[str, str], twilio_server: TwilioServer, clock: ManualClock
) -> None:
    invoke("send", input=ndjson(sms_documents(1)))
    clock.advance(3600)
    assert invoke("status", "--refresh").records[0]["status"] == "delivered"
    # Twilio (or a proxy's cache) answers with an older state: queued, then sent.
    assert not smspipe.update_message_status(twilio_server.messages[0]["sid"], "sent")
    twilio_server.lifecycle = None
    twilio_server.queue_seconds = 10**9
    run = invoke("status", "--refresh", "--status", "pending")
    assert run.records == []
    assert invoke("status").records[0]["status"] == "delivered"


def test_refresh_waits_out_429_and_retries_5xx_like_sending(
    send_env: dict[str, str], twilio_server: TwilioServer, clock: ManualClock
) -> None:
    invoke("send", input=ndjson(sms_documents(2)))
    clock.advance(3600)
    twilio_server.retry_after = "0"
    twilio_server.fetch_faults.extend(["429", "503", "500"])
    run = invoke("status", "--refresh")
    assert run.exit_code == 0, run.stderr
    assert [r["status"] for r in run.records] == ["delivered", "delivered"]
    assert [f.fault for f in twilio_server.fetches()].count(None) == 2
    assert len(twilio_server.fetches()) == 5


def test_refresh_with_refused_credentials_is_exit_2_without_the_token(
    send_env: dict[str, str], twilio_server: TwilioServer, clock: ManualClock
) -> None:
    from twilio_server import AUTH_TOKEN

    invoke("send", input=ndjson(sms_documents(1)))
    twilio_server.accounts[next(iter(twilio_server.accounts))] = "another-token"
    run = invoke("status", "--refresh")
    assert run.exit_code == 2 and "Authenticate" in run.stderr
    assert AUTH_TOKEN not in run.everything


def test_status_without_a_ledger_shows_nothing_and_creates_none(bare_env: dict[str, str]) -> None:
    run = invoke("status")
    assert run.exit_code == 0 and run.stdout == ""
    assert "0 messages" in run.stderr


# --- send --wait ---------------------------------------------------------------------------------


def test_send_wait_reports_each_final_status_and_exits_1_for_undelivered(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.lifecycle = Lifecycle(step_seconds=0.05, outcomes={UNREACHABLE: ("undelivered", 30003)})
    documents = sms_documents(3)
    documents[1]["sms"]["phone"] = UNREACHABLE
    run = invoke("send", "--wait=30", input=ndjson(documents))
    assert run.exit_code == 1, run.stderr
    lines = by_id(run.records)
    assert [lines[k]["delivery"]["status"] for k in ("msg-0", "msg-1", "msg-2")] == [
        "delivered",
        "undelivered",
        "delivered",
    ]
    failed = lines["msg-1"]["delivery"]
    assert failed["error_code"] == 30003 and "unreachable" in failed["meaning"] and failed["final"]
    assert "every message is final" in run.stderr
    assert "1 failed or undelivered after sending" in run.stderr
    assert [r["status"] for r in invoke("status").records].count("undelivered") == 1  # stored


def test_send_wait_all_delivered_is_exit_0(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    twilio_server.lifecycle = Lifecycle(step_seconds=0.05)
    run = invoke("send", "--wait", "30", input=ndjson(sms_documents(2)))
    assert run.exit_code == 0, run.stderr
    assert [r["delivery"]["status"] for r in run.records] == ["delivered", "delivered"]


def test_send_wait_still_pending_at_the_deadline_is_exit_75(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.lifecycle = Lifecycle(step_seconds=10**6)
    run = invoke("send", "--wait=0", input=ndjson(sms_documents(2)))
    assert run.exit_code == 75, run.stderr
    assert [r["delivery"] for r in run.records] == [{"status": "queued", "final": False}] * 2
    assert "2 not final when the wait ended" in run.stderr
    bad = invoke("send", "--wait=soon", input=ndjson(sms_documents(1, prefix="x")))
    assert bad.exit_code == 2 and "--wait" in bad.stderr
