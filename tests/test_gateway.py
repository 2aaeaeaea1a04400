"""The gateway over real HTTP: the real twilio library against the loopback server,
how each failure is classified, and what `config check` does with it."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import Run
from smspipe.config import Credentials
from smspipe.gateway import (
    AmbiguousFault,
    AuthRefused,
    Gateway,
    Rejected,
    TemporaryFault,
    classify_response,
    parse_retry_after,
    rebase_url,
)
from smspipe.sms import SMS
from twilio_server import (
    ACCOUNT_SID,
    API_KEY,
    API_SECRET,
    AUTH_TOKEN,
    TwilioServer,
)

CREDENTIALS = Credentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN, "test")
MESSAGE = SMS(to="+14155552671", body="Order R12345 was shipped!")


def gateway(
    server: TwilioServer,
    credentials: Credentials = CREDENTIALS,
    timeout: float = 5.0,
    log: list[str] | None = None,
) -> Gateway:
    return Gateway(
        credentials, api_url=server.url, timeout=timeout, http_log=log.append if log is not None else None
    )


def send(g: Gateway, message: SMS = MESSAGE) -> object:
    return g.create_message(message, sender="+15017122661", messaging_service_sid=None, status_callback=None)


def test_importing_the_gateway_imports_no_twilio() -> None:
    code = "import sys, smspipe.gateway; print('twilio' in sys.modules, 'requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_create_returns_what_twilio_answered(twilio_server: TwilioServer) -> None:
    sent = gateway(twilio_server).create_message(
        MESSAGE, sender="+15017122661", messaging_service_sid=None, status_callback=None
    )
    [message] = twilio_server.messages
    assert sent.sid == message["sid"] and sent.status == "queued"
    assert sent.to == "+14155552671" and sent.sender == "+15017122661"
    assert sent.segments == 1
    assert sent.date_created is not None
    assert abs(sent.date_created - datetime.now(UTC)) < timedelta(seconds=5)


def test_api_key_authentication(twilio_server: TwilioServer) -> None:
    credentials = Credentials(ACCOUNT_SID, API_KEY, API_SECRET, "test")
    send(gateway(twilio_server, credentials))
    [create] = twilio_server.creates()
    assert (create.username, create.password) == (API_KEY, API_SECRET)


def test_edge_and_region_never_rewrite_the_api_url(
    twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    send(gateway(twilio_server))
    assert len(twilio_server.messages) == 1


def test_without_api_url_edge_and_region_apply_to_twilio_hosts() -> None:
    # The same client, with no base URL of ours, keeps twilio-python's behaviour.
    assert (
        rebase_url("https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC1.json", None)
        == "https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC1.json"
    )


@given(
    st.sampled_from(["http://127.0.0.1:4010", "http://proxy.local/twilio/", "https://mock.example"]),
    st.sampled_from(["https://api.twilio.com", "https://api.sydney.au1.twilio.com"]),
    st.text(alphabet="abcXYZ019/._-", max_size=30),
    st.text(alphabet="a=&1", max_size=10),
)
def test_rebase_keeps_path_and_query(base: str, host: str, path: str, query: str) -> None:
    url = f"{host}/2010-04-01/{path}" + (f"?{query}" if query else "")
    rebased = rebase_url(url, base)
    assert rebased.startswith(base.rstrip("/") + "/2010-04-01/")
    assert rebased.endswith(f"/2010-04-01/{path}" + (f"?{query}" if query else ""))


def test_wrong_token_is_auth_refused(twilio_server: TwilioServer) -> None:
    wrong = Credentials(ACCOUNT_SID, ACCOUNT_SID, "not-the-token-at-all", "test")
    with pytest.raises(AuthRefused) as caught:
        send(gateway(twilio_server, wrong))
    assert caught.value.status == 401 and caught.value.code == 20003
    assert "not-the-token-at-all" not in str(caught.value)


def test_rejection_carries_code_message_and_docs_link(twilio_server: TwilioServer) -> None:
    twilio_server.reject("+14155552671", 21211)
    with pytest.raises(Rejected) as caught:
        send(gateway(twilio_server))
    error = caught.value
    assert error.status == 400 and error.code == 21211
    assert error.more_info == "https://www.twilio.com/docs/errors/21211"
    assert error.as_dict()["message"].startswith("The 'To' number")


def test_429_is_temporary_with_retry_after(twilio_server: TwilioServer) -> None:
    twilio_server.retry_after = "7"
    twilio_server.inject("429")
    with pytest.raises(TemporaryFault) as caught:
        send(gateway(twilio_server))
    assert caught.value.retry_after == 7.0 and caught.value.code == 20429
    assert not caught.value.may_have_created


@pytest.mark.parametrize(("fault", "maybe"), [("500", True), ("503", False)])
def test_server_errors_are_temporary(twilio_server: TwilioServer, fault: str, maybe: bool) -> None:
    twilio_server.inject(fault)
    with pytest.raises(TemporaryFault) as caught:
        send(gateway(twilio_server))
    assert caught.value.status == int(fault)
    assert caught.value.may_have_created is maybe
    assert twilio_server.messages == []


def test_connection_refused_is_temporary_and_names_the_host() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    g = Gateway(CREDENTIALS, api_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(TemporaryFault) as caught:
        send(g)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "connection refused" in str(caught.value)


@pytest.mark.parametrize("fault", ["reset", "drop"])
def test_a_connection_lost_after_sending_is_ambiguous(twilio_server: TwilioServer, fault: str) -> None:
    twilio_server.inject(fault)
    with pytest.raises(AmbiguousFault):
        send(gateway(twilio_server))
    # "drop" created the message; "reset" did not: the caller cannot tell.
    assert len(twilio_server.messages) == (1 if fault == "drop" else 0)


def test_a_timeout_is_ambiguous(twilio_server: TwilioServer) -> None:
    twilio_server.slow_seconds = 1.0
    twilio_server.inject("slow")
    with pytest.raises(AmbiguousFault) as caught:
        send(gateway(twilio_server, timeout=0.3))
    assert "no answer within 0.3 s" in str(caught.value)


def test_find_messages_matches_recipient_sender_body_and_time(twilio_server: TwilioServer) -> None:
    g = gateway(twilio_server)
    since = datetime.now(UTC)
    sent = send(g)
    send(g, SMS(to="+14155552671", body="another text"))
    found = g.find_messages("+14155552671", "+15017122661", MESSAGE.body, since)
    assert found is not None and found.sid == sent.sid  # type: ignore[attr-defined]
    assert g.find_messages("+14155552672", "+15017122661", MESSAGE.body, since) is None
    assert g.find_messages("+14155552671", "+15017120000", MESSAGE.body, since) is None
    assert g.find_messages("+14155552671", "+15017122661", MESSAGE.body, since, exclude={sent.sid}) is None  # type: ignore[attr-defined]
    later = datetime.now(UTC) + timedelta(hours=1)
    assert g.find_messages("+14155552671", "+15017122661", MESSAGE.body, later) is None
    [lookup, *_] = [r for r in twilio_server.requests if r.method == "GET"]
    assert lookup.query["To"] == ["+14155552671"] and "DateSent>" in lookup.query


def test_find_messages_pages_through_the_log(twilio_server: TwilioServer) -> None:
    g = gateway(twilio_server)
    since = datetime.now(UTC)
    target = send(g)
    for number in range(7):
        send(g, SMS(to="+14155552671", body=f"later {number}"))
    twilio_server.page_size_cap = 3
    found = g.find_messages("+14155552671", "+15017122661", MESSAGE.body, since)
    assert found is not None and found.sid == target.sid  # type: ignore[attr-defined]
    pages = [r for r in twilio_server.requests if r.method == "GET"]
    assert len(pages) == 3 and "PageToken" in pages[-1].query


def test_find_messages_sees_a_message_still_queued(twilio_server: TwilioServer) -> None:
    twilio_server.queue_seconds = 60  # no date_sent yet: invisible to DateSent>
    g = gateway(twilio_server)
    since = datetime.now(UTC)
    sent = send(g)
    found = g.find_messages("+14155552671", "+15017122661", MESSAGE.body, since)
    assert found is not None and found.sid == sent.sid  # type: ignore[attr-defined]


def test_verbose_log_has_method_url_status_and_no_secret(twilio_server: TwilioServer) -> None:
    log: list[str] = []
    send(gateway(twilio_server, log=log))
    assert log == [log[0]]
    assert log[0].startswith(f"http: POST {twilio_server.url}/2010-04-01/Accounts/")
    assert "-> 201" in log[0] and AUTH_TOKEN not in log[0]


def test_fetch_account_never_returns_the_auth_token(twilio_server: TwilioServer) -> None:
    account = gateway(twilio_server).fetch_account()
    assert account == {
        "sid": ACCOUNT_SID,
        "friendly_name": "Test account 1111",
        "status": "active",
        "type": "Full",
    }


def test_repr_shows_no_secret(twilio_server: TwilioServer) -> None:
    g = gateway(twilio_server)
    assert AUTH_TOKEN not in repr(g) and AUTH_TOKEN not in repr(g.credentials)


@pytest.mark.parametrize(
    ("status", "payload", "kind"),
    [
        (400, {"code": 21211, "message": "bad To"}, Rejected),
        (403, {"code": 20003, "message": "Authenticate"}, AuthRefused),
        (401, None, AuthRefused),
        (404, {"code": 20404, "message": "not found"}, Rejected),
        (429, {}, TemporaryFault),
        (502, "not json", TemporaryFault),
        (504, {}, TemporaryFault),
        (422, {"type": "x", "title": "Invalid request", "status": 422}, Rejected),
    ],
)
def test_classify_response(status: int, payload: object, kind: type) -> None:
    error = classify_response(status, payload, {}, "POST host")
    assert type(error) is kind
    assert error.status == status


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_as_a_future_http_date() -> None:
    from email.utils import format_datetime

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after(later)
    assert seconds is not None and 25 <= seconds <= 31


# --- config check ---------------------------------------------------------------------


def check_app() -> typer.Typer:
    from smspipe.cli.check import check

    app = typer.Typer()
    app.command("check")(check)

    @app.callback()
    def root() -> None:
        """Group, so that `check` is a subcommand as under `config`."""

    return app


def run_check(*args: str) -> Run:
    result = CliRunner().invoke(check_app(), ["check", *args])
    return Run(result.exit_code, result.stdout, result.stderr)


def test_config_check_fetches_the_account(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    run = run_check()
    assert run.exit_code == 0, run.stderr
    [verdict] = run.records
    assert verdict["ok"] is True and verdict["account_sid"] == ACCOUNT_SID
    assert verdict["friendly_name"] == "Test account 1111"
    assert verdict["source"] == "environment"
    [request] = twilio_server.requests
    assert request.method == "GET" and request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}.json"
    assert AUTH_TOKEN not in run.everything


def test_config_check_with_api_key_flags(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    run = run_check("--api-key", API_KEY, "--api-secret", API_SECRET, "--json")
    assert run.exit_code == 0, run.stderr
    assert run.records[0]["credentials"] == "api key"
    assert API_SECRET not in run.everything


@pytest.mark.parametrize("extra", [[], ["--verbose"]])
def test_config_check_refused_is_exit_2_without_the_token(
    send_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    wrong = "wrong-" + AUTH_TOKEN[::-1]
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", wrong)
    run = run_check(*extra)
    assert run.exit_code == 2
    assert "refused the credentials" in run.stderr and "environment" in run.stderr
    assert wrong not in run.everything and AUTH_TOKEN not in run.everything


def test_config_check_without_credentials_says_how_to_give_them(bare_env: dict[str, str]) -> None:
    run = run_check()
    assert run.exit_code == 2
    assert "TWILIO_ACCOUNT_SID" in run.stderr and "smspipe config init" in run.stderr


def test_config_check_unreachable_is_75(send_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = run_check("--api-url", f"http://127.0.0.1:{port}")
    assert run.exit_code == 75
    assert "connection refused" in run.stderr


def test_config_check_reads_the_config_file(
    bare_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        f"account_sid: {ACCOUNT_SID}\nauth_token: {AUTH_TOKEN}\napi_url: {twilio_server.url}\n"
    )
    config_file.chmod(0o600)
    run = run_check("--config", str(config_file))
    assert run.exit_code == 0, run.stderr
    assert run.records[0]["source"].startswith("config file")
