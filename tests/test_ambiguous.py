"""Attempts whose fate is unknown (issue 10, items 2, 3 and 11): Twilio's log shows another
body, Twilio creates the message after the client gave up, an answer trickles in. Never
sent twice; what is reported sent is what the server holds."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import ndjson, run_process, sms_documents
from twilio_server import TwilioServer, wait_until

SMART_TEXT = "Your order {n} has shipped \u2014 we\u2019ll text you \u201cwhen it\u2019s out\u201d"


def smart_documents(count: int) -> list[dict[str, Any]]:
    return [
        {"request_id": f"smart-{n}", "sms": {"phone": f"+1415555{n:04d}", "message": SMART_TEXT.format(n=n)}}
        for n in range(count)
    ]


def assert_reported_as_held(server: TwilioServer, records: list[dict[str, Any]]) -> None:
    """Everything reported sent or skipped carries a SID the server holds, to that recipient."""
    held = {m["sid"]: m for m in server.messages}
    for record in records:
        if record["status"] in ("sent", "skipped"):
            assert record["sid"] in held, record
            assert held[record["sid"]]["to"] == record["to"]


# --- item 2: the log shows another body -------------------------------------------------------


@pytest.mark.parametrize("log_body", ["trial", "smart"])
def test_a_dropped_answer_is_found_in_a_log_that_rewrites_the_body(
    send_env: dict[str, str], twilio_server: TwilioServer, log_body: str
) -> None:
    documents = smart_documents(20)
    twilio_server.log_body = log_body
    twilio_server.inject(*["drop"] * 20)
    run = run_process("send", "--concurrency", "4", env=send_env, input=ndjson(documents))
    assert run.exit_code == 0, run.stderr
    assert run.statuses() == ["sent"] * 20
    assert len(twilio_server.creates()) == 20  # none resent
    assert_reported_as_held(twilio_server, run.records)

    again = run_process("send", env=send_env, input=ndjson(documents))
    assert again.exit_code == 0
    assert again.statuses() == ["skipped"] * 20
    assert len(twilio_server.creates()) == 20


# --- item 3: Twilio creates the message after the client gave up --------------------------------


@pytest.mark.slow
def test_a_message_created_after_the_client_gave_up_is_never_sent_twice(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(8)
    twilio_server.late_seconds = 5.0
    twilio_server.inject(*["late"] * 8)
    env = {**send_env, "SMSPIPE_RECONCILE_GRACE": "600"}
    first = run_process("send", "--timeout", "2", "--concurrency", "8", env=env, input=ndjson(documents))
    assert len(twilio_server.creates()) == 8  # each POSTed once: looked up, never resent
    assert set(first.statuses()) <= {"sent", "unknown"}
    assert first.exit_code == (0 if set(first.statuses()) == {"sent"} else 75), first.stderr
    assert_reported_as_held(twilio_server, first.records)

    assert wait_until(lambda: len(twilio_server.messages) == 8, timeout=30)
    again = run_process("send", env=env, input=ndjson(documents))
    assert again.exit_code == 0, again.stderr
    assert again.statuses() == ["skipped"] * 8
    assert len(twilio_server.creates()) == 8
    assert_reported_as_held(twilio_server, again.records)


def test_absence_is_concluded_only_after_the_grace_period(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    """A message the log does not show yet stays unknown until the grace period has passed."""
    documents = sms_documents(1)
    twilio_server.log_lag = 3600.0  # the log never shows it in this test
    twilio_server.inject("drop")
    env = {**send_env, "SMSPIPE_RECONCILE_GRACE": "600"}
    first = run_process("send", env=env, input=ndjson(documents))
    assert first.exit_code == 75 and first.statuses() == ["unknown"]
    second = run_process("send", env=env, input=ndjson(documents))
    assert second.exit_code == 75 and second.statuses() == ["unknown"]
    assert "grace period" in second.records[0]["summary"]
    assert len(twilio_server.creates()) == 1  # never resent while it may exist


# --- item 11: a time-out bounds the whole request --------------------------------------------------


@pytest.mark.slow
def test_a_trickled_answer_is_cut_off_by_the_timeout_and_the_message_found(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.trickle_interval = 1.5  # the answer would take minutes
    twilio_server.inject("trickle")
    run = run_process("send", "--timeout", "2", env=send_env, input=ndjson(sms_documents(1)), timeout=60)
    assert run.exit_code == 0, run.stderr
    [record] = run.records
    assert record["status"] == "sent"
    assert record["sid"] == twilio_server.messages[0]["sid"]
    assert len(twilio_server.creates()) == 1


# --- a redirect: the endpoint is not Twilio's ----------------------------------------------------


def test_a_redirect_stops_the_batch_with_exit_2_naming_it(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.redirect(301, "https://api.twilio.com")
    run = run_process("send", "--concurrency", "1", env=send_env, input=ndjson(sms_documents(3)))
    assert run.exit_code == 2, run.stderr
    assert "301" in run.stderr and "api_url" in run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    assert len(twilio_server.creates()) == 1  # stopped at once
    assert twilio_server.messages == []


def test_two_documents_with_one_text_both_unsettled_are_settled_once_the_grace_has_passed(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    """Two request_ids, one recipient, one text: one attempt created its message, the other
    nothing, and the log could not be read. Past the grace period each gets one message."""
    same = {"phone": "+14155550123", "message": "Your code is 1234"}
    documents = [{"request_id": "x", "sms": same}, {"request_id": "y", "sms": same}]
    twilio_server.inject("drop", "reset")  # x is created, y is not
    twilio_server.fail_lookups = 10_000
    env = {**send_env, "SMSPIPE_RECONCILE_GRACE": "0"}
    first = run_process("send", "--concurrency", "1", env=env, input=ndjson(documents))
    assert first.statuses() == ["unknown", "unknown"]
    assert len(twilio_server.messages) == 1

    twilio_server.fail_lookups = 0
    second = run_process("send", env=env, input=ndjson(documents))
    assert second.exit_code == 0, second.stderr
    assert sorted(second.statuses()) == ["sent", "skipped"]
    assert len(twilio_server.messages) == 2  # one each, never a third
    assert_reported_as_held(twilio_server, second.records)
