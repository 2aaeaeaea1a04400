"""`smspipe send` over real HTTP to the loopback Twilio server: credentials, sender,
field mapping, output, exit codes, dry-run, secrets."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, SENDER, Run, invoke, ndjson, run_process, sms_documents
from twilio_server import (
    ACCOUNT_SID,
    API_KEY,
    API_SECRET,
    AUTH_TOKEN,
    OTHER_ACCOUNT_SID,
    OTHER_AUTH_TOKEN,
    TwilioServer,
)

SAMPLES = ROOT / "samples"
SID_PATTERN = r"SM[0-9a-f]{32}"
SECRETS = (AUTH_TOKEN, API_SECRET, OTHER_AUTH_TOKEN)


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def hub_request(
    request_id: str,
    phone: str,
    message: str,
    *,
    sid: str = OTHER_ACCOUNT_SID,
    token: str = OTHER_AUTH_TOKEN,
    sender: str = "+15017122661",
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "parameters": {"twilio_account_sid": sid, "twilio_auth_token": token},
        "sms": {"from": sender, "phone": phone, "message": message},
    }


# --- delivering ----------------------------------------------------------------


def test_sends_each_valid_document_once_and_prints_the_servers_sid(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(3)
    documents.insert(1, {"sms": {"phone": "12", "message": "bad number"}})
    run = invoke("send", input=ndjson(documents))

    assert run.exit_code == 1, run.stderr  # one invalid document
    records = sorted(run.records, key=lambda r: r["line"])  # written as they complete
    assert [r["status"] for r in records] == ["sent", "invalid", "sent", "sent"]
    created = {m["sid"]: m for m in twilio_server.messages}
    assert len(created) == 3
    for record in records:
        if record["status"] == "sent":
            assert record["sid"] in created
            assert created[record["sid"]]["to"] == record["to"]
            assert record["summary"] == (f'SMS "{created[record["sid"]]["body"]}" sent to {record["to"]}')
            assert record["error"] is None
            assert record["segments"] == 1
    assert records[0]["request_id"] == "msg-0"
    assert "4 documents: 3 sent, 1 invalid" in run.stderr
    assert run.stdout.count("\n") == 4  # only data on stdout


def test_maps_every_field_onto_twilios_form(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    document = {
        "sms": {
            "from": "+15017122661",
            "phone": "(415) 555-2671",
            "message": "Order R12345 was shipped!",
            "media_url": ["https://example.com/a.png", "https://example.com/b.jpg"],
            "status_callback": "https://example.com/status",
        }
    }
    run = invoke("send", input=json.dumps(document))

    assert run.exit_code == 0, run.stderr
    [create] = twilio_server.creates()
    assert create.form == {
        "To": ["+14155552671"],
        "From": ["+15017122661"],
        "Body": ["Order R12345 was shipped!"],
        "MediaUrl": ["https://example.com/a.png", "https://example.com/b.jpg"],
        "StatusCallback": ["https://example.com/status"],
    }
    assert create.username == ACCOUNT_SID and create.password == AUTH_TOKEN
    assert run.records[0]["summary"] == 'SMS "Order R12345 was shipped!" sent to +14155552671'


def test_messaging_service_instead_of_a_number(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMSPIPE_FROM")
    service = "MG" + "4" * 32
    run = invoke("send", "--messaging-service-sid", service, input=ndjson(sms_documents(1)))

    assert run.exit_code == 0, run.stderr
    [create] = twilio_server.creates()
    assert create.field("MessagingServiceSid") == service
    assert create.field("From") is None
    assert run.records[0]["messaging_service_sid"] == service


def test_sender_precedence_flag_then_document_then_environment_then_config(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text("from: '+15017120003'\n")
    config_file.chmod(0o600)
    with_from = {
        "request_id": "a",
        "sms": {"from": "+15017120001", "phone": "+14155550001", "message": "with from"},
    }
    without_from = {"request_id": "b", "sms": {"phone": "+14155550002", "message": "without from"}}
    documents = ndjson([with_from, without_from])

    def senders() -> list[str | None]:
        creates = sorted(twilio_server.creates(), key=lambda c: c.field("To") or "")
        twilio_server.reset_records()
        return [c.field("From") for c in creates]

    invoke("send", "--no-ledger", "--config", str(config_file), input=documents)
    assert senders() == ["+15017120001", SENDER]

    os.environ.pop("SMSPIPE_FROM")
    invoke("send", "--no-ledger", "--config", str(config_file), input=documents)
    assert senders() == ["+15017120001", "+15017120003"]

    invoke("send", "--no-ledger", "--config", str(config_file), "--from", "+15017120009", input=documents)
    assert senders() == ["+15017120009"] * 2


def test_no_sender_anywhere_is_a_setup_error_said_once(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing sender is a setup problem, not bad data: exit 2, one error line, no `invalid`."""
    monkeypatch.delenv("SMSPIPE_FROM")
    run = invoke("send", input=ndjson(sms_documents(2)))

    assert run.exit_code == 2
    assert "invalid" not in run.statuses()
    errors = [line for line in run.stderr.splitlines() if line.startswith("smspipe: error:")]
    assert len(errors) == 1
    assert "no sender" in errors[0] and "--from" in errors[0] and "messaging_service_sid" in errors[0]
    assert twilio_server.creates() == []


def test_a_bad_from_flag_is_a_usage_error(send_env: dict[str, str]) -> None:
    run = invoke("send", "--from", "not a sender!", input=ndjson(sms_documents(1)))
    assert run.exit_code == 2
    assert "not a valid sender" in run.stderr


# --- credentials -----------------------------------------------------------------


def test_hub_request_is_sent_with_its_own_parameters_and_nothing_else_configured(
    bare_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_API_URL", twilio_server.url)
    request = hub_request("5519811a43454e16463a0100", "(415) 555-2671", "Your order R154085346 has shipped.")
    run = invoke("send", input=json.dumps(request))

    assert run.exit_code == 0, run.stderr
    [create] = twilio_server.creates()
    assert create.username == OTHER_ACCOUNT_SID and create.password == OTHER_AUTH_TOKEN
    assert create.path == f"/2010-04-01/Accounts/{OTHER_ACCOUNT_SID}/Messages.json"
    [record] = run.records
    assert record["request_id"] == "5519811a43454e16463a0100"
    assert record["status"] == "sent"
    assert_no_secrets(run.everything)


def test_credentials_precedence_flags_then_parameters_then_environment(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = ndjson(
        [
            hub_request("with-params", "+14155550001", "one"),
            {"request_id": "no-params", "sms": {"phone": "+14155550002", "message": "two"}},
        ]
    )
    run = invoke("send", "--no-ledger", input=documents)
    assert run.exit_code == 0, run.stderr
    by_recipient = {c.field("To"): c.username for c in twilio_server.creates()}
    assert by_recipient == {"+14155550001": OTHER_ACCOUNT_SID, "+14155550002": ACCOUNT_SID}

    twilio_server.reset_records()
    run = invoke(
        "send",
        "--no-ledger",
        "--api-key",
        API_KEY,
        "--api-secret",
        API_SECRET,
        "--account-sid",
        ACCOUNT_SID,
        input=documents,
    )
    assert run.exit_code == 0, run.stderr
    creates = twilio_server.creates()
    assert [(c.username, c.password) for c in creates] == [(API_KEY, API_SECRET)] * 2
    assert {c.path for c in creates} == {f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"}
    assert_no_secrets(run.everything)


def test_credentials_from_the_config_file(
    bare_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"account_sid: {ACCOUNT_SID}\nauth_token: {AUTH_TOKEN}\n"
        f"from: '{SENDER}'\napi_url: {twilio_server.url}\n"
    )
    config_file.chmod(0o600)
    run = invoke("send", "--config", str(config_file), input=ndjson(sms_documents(1)))
    assert run.exit_code == 0, run.stderr
    assert twilio_server.creates()[0].username == ACCOUNT_SID


def test_no_credentials_exit_2_listing_every_way_to_give_them(
    bare_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_API_URL", twilio_server.url)
    run = invoke("send", "--from", SENDER, input=ndjson(sms_documents(2)))

    assert run.exit_code == 2
    assert run.statuses() == ["failed", "failed"]
    for way in ("--account-sid", "TWILIO_ACCOUNT_SID", "TWILIO_API_KEY", "parameters", "smspipe config init"):
        assert way in run.stderr
    assert twilio_server.requests == []


@pytest.mark.parametrize("extra", [[], ["--verbose"], ["--traceback"]])
def test_wrong_credentials_exit_2_stop_the_batch_and_never_show_the_token(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    wrong = "wrong-" + AUTH_TOKEN[::-1]
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", wrong)
    head = extra if extra == ["--traceback"] else []
    tail = extra if extra == ["--verbose"] else []
    run = invoke(*head, "send", "--concurrency", "1", *tail, input=ndjson(sms_documents(5)))

    assert run.exit_code == 2
    assert "refused the credentials" in run.stderr
    assert "TWILIO_AUTH_TOKEN" not in run.stderr or "environment" in run.stderr
    assert "environment" in run.stderr  # where the refused credentials came from
    assert len(twilio_server.creates()) == 1  # stopped at once
    assert twilio_server.messages == []
    assert wrong not in run.everything
    assert_no_secrets(run.everything)
    if extra == ["--verbose"]:
        assert "-> 401" in run.stderr


def test_wrong_credentials_stop_new_requests_at_any_concurrency(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong-token-for-sure")
    run = invoke("send", "--concurrency", "4", input=ndjson(sms_documents(40)))
    assert run.exit_code == 2
    assert len(twilio_server.creates()) <= 4  # only those already in flight
    assert "refused the credentials" in run.stderr


def test_wrong_credentials_in_a_real_process_with_traceback(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    wrong = "wrong-" + AUTH_TOKEN[::-1]
    env = {**send_env, "TWILIO_AUTH_TOKEN": wrong, "SMSPIPE_DEBUG": "1"}
    run = run_process("--traceback", "send", "-v", env=env, input=ndjson(sms_documents(2)))
    assert run.exit_code == 2
    assert wrong not in run.everything
    assert "Authorization" not in run.everything


def test_verbose_logs_method_url_status_and_no_secret(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    run = invoke("send", "--verbose", input=ndjson(sms_documents(1)))
    assert run.exit_code == 0
    line = next(x for x in run.stderr.splitlines() if x.startswith("http: "))
    assert line.startswith(
        f"http: POST {twilio_server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json -> 201"
    )
    assert_no_secrets(run.everything)
    assert "Basic " not in run.everything


# --- Twilio's answers ------------------------------------------------------------------


def test_a_rejection_fails_that_document_and_the_batch_goes_on(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(3)
    # (21610, opted out, is not a failure since issue 14: tests/test_status.py)
    twilio_server.reject(documents[1]["sms"]["phone"], 21612, "The 'To' phone number is not reachable")
    run = invoke("send", input=ndjson(documents))

    assert run.exit_code == 1
    records = sorted(run.records, key=lambda r: r["line"])
    assert [r["status"] for r in records] == ["sent", "failed", "sent"]
    error = records[1]["error"]
    assert error == {
        "code": 21612,
        "message": "The 'To' phone number is not reachable",
        "more_info": "https://www.twilio.com/docs/errors/21612",
    }
    assert "failed: The 'To' phone number is not reachable" in records[1]["summary"]
    assert len(twilio_server.creates()) == 3  # a 4xx is never retried


def test_connection_refused_is_one_line_with_the_host_and_exit_75(
    send_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SMSPIPE_API_URL", f"http://127.0.0.1:{port}")
    run = invoke("send", "--retries", "0", input=ndjson(sms_documents(1)))

    assert run.exit_code == 75
    [record] = run.records
    assert record["status"] == "failed"
    assert f"127.0.0.1:{port}" in record["error"]["message"]
    assert "connection refused" in record["error"]["message"]
    assert "Traceback" not in run.stderr


def test_edge_and_region_do_not_rewrite_the_api_url(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    run = invoke("send", input=ndjson(sms_documents(1)))
    assert run.exit_code == 0, run.stderr
    assert len(twilio_server.creates()) == 1


def test_https_proxy_is_honoured(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loopback server plays the proxy: the client sends it absolute-form targets.
    monkeypatch.setenv("SMSPIPE_API_URL", "http://twilio.invalid:8080")
    monkeypatch.setenv("HTTP_PROXY", twilio_server.url)
    # Plain HTTP to another machine (here through a proxy) must be allowed explicitly.
    run = invoke("send", "--allow-insecure-http", input=ndjson(sms_documents(1)))
    assert run.exit_code == 0, run.stderr
    [create] = twilio_server.creates()
    assert create.target.startswith("http://twilio.invalid:8080/2010-04-01/Accounts/")


def test_api_url_flag_wins_over_the_environment(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_API_URL", "http://127.0.0.1:9")
    run = invoke("send", "--api-url", twilio_server.url, input=ndjson(sms_documents(1)))
    assert run.exit_code == 0, run.stderr


def test_failed_file_holds_the_original_documents_not_delivered(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    documents = sms_documents(3)
    documents.append({"request_id": "bad", "sms": {"phone": "12", "message": "x"}})
    twilio_server.reject(documents[0]["sms"]["phone"])
    failed = tmp_path / "failed.ndjson"
    run = invoke("send", "--failed", str(failed), input=ndjson(documents))

    assert run.exit_code == 1
    written = [json.loads(line) for line in failed.read_text().splitlines()]
    assert sorted(written, key=json.dumps) == sorted([documents[0], documents[3]], key=json.dumps)
    assert failed.stat().st_mode & 0o077 == 0


def test_a_collection_is_one_message_per_item(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    document = {
        "request_id": "batch",
        "sms": [
            {"phone": "+14155550001", "message": "first"},
            {"phone": "+14155550002", "message": "second"},
        ],
    }
    run = invoke("send", input=json.dumps(document))
    assert run.exit_code == 0, run.stderr
    assert sorted(r["request_id"] for r in run.records) == ["batch[0]", "batch[1]"]
    assert sorted(twilio_server.created_bodies()) == ["first", "second"]


def test_empty_input_is_zero_documents(send_env: dict[str, str]) -> None:
    run = invoke("send", input="")
    assert run.exit_code == 0
    assert run.stdout == ""
    assert "0 documents" in run.stderr


# --- dry-run -------------------------------------------------------------------------


def test_dry_run_needs_no_credentials_and_shows_what_would_be_sent(bare_env: dict[str, str]) -> None:
    run = invoke("send", "--dry-run", str(SAMPLES / "sms.json"))
    assert run.exit_code == 0, run.stderr
    [record] = run.records
    assert record["status"] == "dry-run"
    assert record["to"] == "+14155552671"
    assert record["from"] == "+15017122661"
    assert record["body"] == "Order R12345 was shipped!"
    assert record["segments"] == 1 and record["encoding"] == "GSM-7"
    assert record["summary"] == 'SMS "Order R12345 was shipped!" would be sent to +14155552671'
    assert "1 document: 1 dry-run" in run.stderr


def test_dry_run_imports_no_twilio_and_sends_nothing(
    bare_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['smspipe', 'send', '--dry-run', sys.argv[1]]\n"
        "try:\n    runpy.run_module('smspipe', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print('twilio' in sys.modules, 'requests' in sys.modules, code, file=sys.stderr)\n"
    )
    env = {**bare_env, "SMSPIPE_API_URL": twilio_server.url}
    completed = subprocess.run(
        [sys.executable, "-c", code, str(SAMPLES / "sms.json")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.stderr.strip().splitlines()[-1] == "False False 0"
    assert twilio_server.requests == []


def test_translate_piped_into_send_dry_run(bare_env: dict[str, str]) -> None:
    translate = run_process("translate", "order", str(SAMPLES / "order.json"), env=bare_env)
    assert translate.exit_code == 0, translate.stderr
    run = run_process("send", "--dry-run", "--from", SENDER, env=bare_env, input=translate.stdout)
    assert run.exit_code == 0, run.stderr
    assert [r["status"] for r in run.records] == ["dry-run"]


def test_terminal_rendering_is_a_table(send_env: dict[str, str]) -> None:
    from rich.console import Console

    from smspipe import delivery, sms
    from smspipe.cli.send import _Table

    verdict = sms.Verdict(
        source="x",
        line=1,
        index=None,
        path="sms",
        request_id="r1",
        parameters={},
        original={},
        sms=sms.SMS(to="+14155552671", body="Hello"),
        encoding="GSM-7",
        segments=1,
    )
    buffer = io.StringIO()
    table = _Table(Console(file=buffer, width=200, markup=False, highlight=False), dry_run=False)
    table.add(delivery.Result(verdict, delivery.Status.SENT, "r1", sid="SM" + "a" * 32))
    lines = buffer.getvalue().splitlines()
    assert lines[0].split() == ["STATUS", "REQUEST_ID", "TO", "SID", "MESSAGE"]
    assert lines[1].split()[:4] == ["sent", "r1", "+14155552671", "SM" + "a" * 32]
    # the recipient has its column: the message column does not repeat it
    assert lines[1].endswith('"Hello"') and lines[1].count("+14155552671") == 1


def test_a_dry_run_table_has_no_column_of_dashes(send_env: dict[str, str]) -> None:
    run = run_process("send", "--dry-run", "--format", "text", str(SAMPLES / "sms.json"), env=send_env)
    assert run.exit_code == 0, run.stderr
    header, row = run.stdout.splitlines()[:2]
    assert header.split() == ["STATUS", "REQUEST_ID", "TO", "MESSAGE"]
    assert " - " not in row and row.split()[0] == "dry-run"


def run_ok(run: Run) -> None:
    assert run.exit_code == 0, run.stderr


# --- credentials over the network ------------------------------------------------------


def test_plain_http_to_another_machine_is_refused_before_anything_is_sent(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    run = invoke("send", "--api-url", "http://10.9.8.7:8080", input=ndjson(sms_documents(1)))
    assert run.exit_code == 2
    assert "plain HTTP" in run.stderr and "--allow-insecure-http" in run.stderr
    assert run.stdout == ""
    dry = invoke("send", "--dry-run", "--api-url", "http://10.9.8.7:8080", input=ndjson(sms_documents(1)))
    assert dry.exit_code == 0  # a dry run sends nothing anywhere


def test_the_auth_token_from_a_file(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    token = tmp_path / "token"
    token.write_text(AUTH_TOKEN + "\n")
    token.chmod(0o600)
    run = invoke(
        "send", "--account-sid", ACCOUNT_SID, "--auth-token-file", str(token), input=ndjson(sms_documents(1))
    )
    assert run.exit_code == 0, run.stderr
    assert twilio_server.creates()[0].password == AUTH_TOKEN
    assert_no_secrets(run.everything)


def test_a_dash_token_is_refused_where_stdin_holds_the_documents(send_env: dict[str, str]) -> None:
    run = invoke("send", "--auth-token", "-", input=ndjson(sms_documents(1)))
    assert run.exit_code == 2
    assert "stdin holds the documents" in run.stderr
