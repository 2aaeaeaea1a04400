"""Opt-outs and delivery status through the Python API (issue 14): what `smspipe serve`'s
callbacks call, checked as a caller would (return values, the ledger's answers, what the
loopback Twilio server received)."""

from __future__ import annotations

from pathlib import Path

import pytest

import smspipe
from twilio_server import TwilioServer

VALID = {"phone": "+14155552671", "message": "Order R1 shipped"}


def sent_sid(twilio_server: TwilioServer) -> str:
    totals = smspipe.send({"request_id": "order:R1", "sms": VALID})
    assert smspipe.exit_code(totals) == smspipe.ExitCode.OK
    [message] = twilio_server.messages
    return str(message["sid"])


def test_a_status_update_moves_forward_only_and_says_whether_it_changed(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    sid = sent_sid(twilio_server)
    assert smspipe.update_message_status(sid, "sent")
    assert smspipe.update_message_status(sid, "delivered")
    assert not smspipe.update_message_status(sid, "sent")  # a late callback
    assert not smspipe.update_message_status(sid, "undelivered", error_code=30003)
    assert not smspipe.update_message_status("SM" + "0" * 32, "delivered")  # not ours
    assert smspipe.optouts() == []


def test_an_opted_out_error_code_puts_the_recipient_on_the_list(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    sid = sent_sid(twilio_server)
    assert smspipe.update_message_status(sid, "failed", error_code=21610, error_message="Unsubscribed")
    [entry] = smspipe.optouts()
    assert (entry.phone, entry.source) == ("+14155552671", "twilio:21610")


def test_optout_add_normalises_numbers_and_counts_the_new_ones(bare_env: dict[str, str]) -> None:
    added = smspipe.optout_add(["(415) 555-2671", "whatsapp:+14155552672"], source="inbound")
    assert added == 2
    assert smspipe.optout_add("+14155552671", source="manual") == 0  # one number, already there
    assert [(o.phone, o.source) for o in smspipe.optouts()] == [
        ("+14155552671", "inbound"),
        ("+14155552672", "inbound"),
    ]
    assert smspipe.optout_remove(["+14155552671", "+14155552679"]) == 1
    assert [o.phone for o in smspipe.optouts()] == ["+14155552672"]


def test_a_bad_number_adds_nothing_and_names_itself(bare_env: dict[str, str]) -> None:
    with pytest.raises(smspipe.UsageError, match="'12'") as caught:
        smspipe.optout_add(["+14155552671", "12"], source="manual")
    assert caught.value.exit_code == smspipe.ExitCode.USAGE
    assert smspipe.optouts() == []


def test_reading_the_list_creates_no_ledger(bare_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite3"
    assert smspipe.optouts(ledger=path) == []
    assert smspipe.optout_remove(["+14155552671"], ledger=path) == 0
    assert not path.exists()
    assert smspipe.optout_add(["+14155552671"], source="manual", ledger=path) == 1
    assert [o.phone for o in smspipe.optouts(ledger=path)] == ["+14155552671"]
