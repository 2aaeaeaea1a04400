"""Opt-outs and delivery status through the Python API (issue 14): what `smspipe serve`'s
callbacks call, checked as a caller would (return values, the ledger's answers, what the
loopback Twilio server received)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import smspipe
from conftest import invoke, ndjson, sms_documents
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


# --- send never texts a number on the list ---------------------------------------------------


def test_send_suppresses_a_number_on_the_list_without_a_request(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(3)
    opted_out = documents[1]["sms"]["phone"]
    assert invoke("optout", "add", opted_out).exit_code == 0
    run = invoke("send", input=ndjson(documents))
    assert run.exit_code == 0, run.stderr  # suppressed is not a failure
    by_line = sorted(run.records, key=lambda r: r["line"])
    assert [r["status"] for r in by_line] == ["sent", "suppressed", "sent"]
    assert "opted out (manual" in by_line[1]["note"] and by_line[1]["sid"] is None
    assert [c.field("To") for c in twilio_server.creates()].count(opted_out) == 0
    assert "1 suppressed" in run.stderr
    dry = invoke("send", "--dry-run", input=ndjson(sms_documents(3, prefix="again")))
    assert [r["status"] for r in sorted(dry.records, key=lambda r: r["line"])] == [
        "dry-run",
        "suppressed",
        "dry-run",
    ]


def test_twilios_21610_suppresses_and_lists_the_number_so_the_next_run_asks_nothing(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(2)
    phone = documents[0]["sms"]["phone"]
    twilio_server.reject(phone, 21610, "Attempt to send to unsubscribed recipient")
    run = invoke("send", input=ndjson(documents))
    assert run.exit_code == 0, run.stderr
    [refused] = [r for r in run.records if r["to"] == phone]
    assert refused["status"] == "suppressed" and refused["error"]["code"] == 21610
    assert [o.phone for o in smspipe.optouts()] == [phone]
    creates = len(twilio_server.creates())
    again = invoke("send", input=ndjson(documents))
    assert sorted(again.statuses()) == ["skipped", "suppressed"]
    assert len(twilio_server.creates()) == creates  # nothing asked of Twilio


def test_a_run_without_a_ledger_still_reads_the_list(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(2)
    smspipe.optout_add([documents[0]["sms"]["phone"]], source="manual")
    run = invoke("send", "--no-ledger", input=ndjson(documents))
    assert run.exit_code == 0
    assert sorted(run.statuses()) == ["sent", "suppressed"]
    assert len(twilio_server.creates()) == 1


# --- smspipe optout ----------------------------------------------------------------------------


def test_optout_add_list_remove(bare_env: dict[str, str]) -> None:
    added = invoke("optout", "add", "+14155552671", "4155552672", "--source", "support ticket 7")
    assert added.exit_code == 0 and added.stdout == ""
    assert "2 numbers added" in added.stderr
    listed = invoke("optout", "list", "--json")
    assert [(r["phone"], r["source"]) for r in listed.records] == [
        ("+14155552671", "support ticket 7"),
        ("+14155552672", "support ticket 7"),
    ]
    assert listed.records[0]["added_at"].endswith("Z")
    removed = invoke("optout", "remove", "+14155552671")
    assert removed.exit_code == 0 and "1 number removed" in removed.stderr
    assert [r["phone"] for r in invoke("optout", "list").records] == ["+14155552672"]
    bad = invoke("optout", "add", "12")
    assert bad.exit_code == 2 and "'12'" in bad.stderr and "Traceback" not in bad.stderr


def test_optout_import_reads_lines_and_csv_and_reports_bad_lines(
    bare_env: dict[str, str], tmp_path: Path
) -> None:
    lines = tmp_path / "stop.txt"
    lines.write_text("# from the old shop\n+14155552671\n\n(415) 555-2672\nnot a number\n")
    run = invoke("optout", "import", str(lines))
    assert run.exit_code == 1
    assert f"{lines}:5: 'not a number'" in run.stderr and "fix or remove the line" in run.stderr
    assert "2 numbers read, 2 added" in run.stderr
    export = tmp_path / "consent.csv"
    export.write_text(
        "contact_id,sender_id,status,source,date_of_consent\n"
        "+14155552673,MG1,opt-out,opt-out-message,2026-11-30T10:00:00Z\n"
        "+14155552674,MG1,opt-in,website,2026-11-30T10:00:00Z\n"
        "+14155552671,MG1,opt-out,opt-out-message,2026-11-30T10:00:00Z\n"
    )
    run = invoke("optout", "import", str(export))
    assert run.exit_code == 0, run.stderr
    assert "2 numbers read, 1 added" in run.stderr
    phones = [o.phone for o in smspipe.optouts()]
    assert sorted(phones) == ["+14155552671", "+14155552672", "+14155552673"]


def test_a_damaged_ledger_is_refused_by_the_per_request_calls_too(
    bare_env: dict[str, str], tmp_path: Path
) -> None:
    """A server calls these per request, so they skip checking the whole file (a hundred
    times the cost of the write); a ledger that is not one is still refused, never replaced."""
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"not a ledger at all" * 100)
    calls: list[Callable[[], object]] = [
        lambda: smspipe.update_message_status("SM" + "0" * 32, "delivered", ledger=path),
        lambda: smspipe.optout_add(["+14155552671"], source="inbound", ledger=path),
        lambda: smspipe.optout_remove(["+14155552671"], ledger=path),
    ]
    for call in calls:
        with pytest.raises(smspipe.ConfigError, match="not an SQLite database") as caught:
            call()
        assert caught.value.exit_code == smspipe.ExitCode.USAGE
    assert path.read_bytes() == b"not a ledger at all" * 100
