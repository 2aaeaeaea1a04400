"""Twilio's callbacks to `smspipe serve`: signatures checked with Twilio's own algorithm (the
loopback Twilio server signs its status callbacks as Twilio does), STOP and START words read."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from conftest import SENDER, run_process
from serving import Answer, Served
from twilio_server import ACCOUNT_SID, API_KEY, API_SECRET, AUTH_TOKEN, Lifecycle, TwilioServer, wait_until

PHONE = "+14155552671"
PUBLIC = "https://sms.example.com"


@pytest.fixture
def served(send_env: dict[str, str]) -> Iterator[Served]:
    server = Served(send_env)
    try:
        yield server
    finally:
        server.kill()


def signed_post(server: Served, path: str, form: dict[str, str], url: str, token: str = AUTH_TOKEN) -> Answer:
    signature = RequestValidator(token).compute_signature(url, form)
    return server.call(
        path,
        raw=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


def test_twilio_status_callbacks_are_accepted(served: Served, twilio_server: TwilioServer) -> None:
    """The loopback Twilio signs its callbacks with twilio's own code; they pass. (smspipe refuses
    a loopback status_callback in a document, so the message is created here, as Twilio's client
    would create it.)"""
    from twilio.rest import Client

    twilio_server.lifecycle = Lifecycle(step_seconds=0.0, outcomes={PHONE: ("undelivered", 30005)})
    twilio_server.status_callbacks = True
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = twilio_server.url
    message = client.api.v2010.account.messages.create(
        to=PHONE, from_=SENDER, body="hi", status_callback=served.url + "/twilio/status"
    )
    assert wait_until(lambda: len(twilio_server.callbacks) == 2)
    assert [c.status for c in twilio_server.callbacks] == [200, 200]
    served.stop()
    assert f"status callback: {message.sid} sent" in served.stderr
    assert f"status callback: {message.sid} undelivered (error 30005)" in served.stderr


def test_a_callback_without_a_right_signature_is_403(served: Served) -> None:
    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    url = served.url + "/twilio/status"
    assert signed_post(served, "/twilio/status", form, url).status == 200
    assert signed_post(served, "/twilio/status", form, url, token=AUTH_TOKEN + "x").status == 403
    assert signed_post(served, "/twilio/status", form, url + "?x=1").status == 403
    forged = {**form, "MessageStatus": "failed"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    tampered = served.call(
        "/twilio/status",
        raw=urlencode(forged).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert tampered.status == 403
    unsigned = served.call("/twilio/status", raw=urlencode(form).encode())
    assert unsigned.status == 403
    assert signed_post(served, "/twilio/inbound", {"From": PHONE, "Body": "STOP"}, url).status == 403


def test_behind_a_proxy_the_public_url_is_the_one_signed(send_env: dict[str, str]) -> None:
    server = Served(send_env, "--public-url", PUBLIC)
    try:
        form = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "sent"}
        assert signed_post(server, "/twilio/status", form, PUBLIC + "/twilio/status").status == 200
        assert signed_post(server, "/twilio/status", form, server.url + "/twilio/status").status == 403
    finally:
        server.kill()


def test_stop_and_start_words_answer_empty_twiml(served: Served) -> None:
    url = served.url + "/twilio/inbound"
    stop = signed_post(served, "/twilio/inbound", {"From": PHONE, "Body": "  stop "}, url)
    assert stop.status == 200
    assert stop.headers["content-type"] == "text/xml"
    assert stop.text == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    assert (
        signed_post(served, "/twilio/inbound", {"From": PHONE, "Body": "Stop sending me deals"}, url).status
        == 200
    )
    assert signed_post(served, "/twilio/inbound", {"From": PHONE, "Body": "UNSTOP"}, url).status == 200
    assert signed_post(served, "/twilio/inbound", {"Body": "STOP"}, url).status == 400
    served.stop()
    assert served.stderr.count(f"inbound STOP from {PHONE}") == 1
    assert served.stderr.count(f"inbound START from {PHONE}") == 1


def test_with_an_api_key_only_callbacks_are_refused(
    send_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in send_env.items() if k != "TWILIO_AUTH_TOKEN"}
    server = Served({**env, "TWILIO_API_KEY": API_KEY, "TWILIO_API_SECRET": API_SECRET})
    try:
        form = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "sent"}
        answer = signed_post(server, "/twilio/status", form, server.url + "/twilio/status")
        assert answer.status == 403
        assert "auth token" in answer.json()["summary"]
    finally:
        server.kill()


def test_status_callbacks_update_smspipe_status(served: Served, send_env: dict[str, str]) -> None:
    sent = served.call(
        "/send_sms", {"request_id": "cb-1", "sms": {"from": SENDER, "phone": PHONE, "message": "hi"}}
    )
    assert sent.status == 200, sent.text
    sid = sent.json()["sid"]
    url = served.url + "/twilio/status"
    for status in ("sent", "delivered", "sent"):  # a late "sent" never moves "delivered" back
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID}
        assert signed_post(served, "/twilio/status", form, url).status == 200
    served.stop()
    run = run_process("status", "--request-id", "cb-1", env=send_env)
    assert [record["status"] for record in run.records] == ["delivered"], run.stderr


def test_stop_then_a_send_is_suppressed_and_start_lifts_it(
    served: Served, twilio_server: TwilioServer
) -> None:
    url = served.url + "/twilio/inbound"
    assert signed_post(served, "/twilio/inbound", {"From": PHONE, "Body": "STOP"}, url).status == 200
    request = {"request_id": "after-stop", "sms": {"from": SENDER, "phone": PHONE, "message": "deal!"}}
    suppressed = served.call("/send_sms", request)
    assert suppressed.json()["status"] == "suppressed", suppressed.text
    assert twilio_server.creates() == []
    assert signed_post(served, "/twilio/inbound", {"From": PHONE, "Body": "start"}, url).status == 200
    again = served.call("/send_sms", {**request, "request_id": "after-start"})
    assert again.status == 200 and again.json()["status"] == "sent", again.text
    assert len(twilio_server.creates()) == 1
