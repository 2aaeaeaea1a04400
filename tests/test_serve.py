"""`smspipe serve` over real HTTP: the hub's requests and answers, every error status, idempotent
retries, bounds, SIGTERM; the server is a real process, sending to the loopback Twilio server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, SENDER
from serving import Answer, Served
from twilio_server import OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN, TwilioServer, wait_until

HUB_KEY = "hubkey_" + "k3y" * 10
PHONE = "+14155552671"


def hub_request(
    request_id: str, phone: str = PHONE, message: str = "Order R12345 was shipped!"
) -> dict[str, Any]:
    return {"request_id": request_id, "sms": {"from": SENDER, "phone": phone, "message": message}}


@pytest.fixture
def served(send_env: dict[str, str]) -> Iterator[Served]:
    server = Served(send_env)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def keyed(send_env: dict[str, str]) -> Iterator[Served]:
    server = Served({**send_env, "SMSPIPE_HUB_KEY": HUB_KEY})
    try:
        yield server
    finally:
        server.kill()


def test_a_hub_request_is_sent_and_answered_as_the_hub_did(
    served: Served, twilio_server: TwilioServer
) -> None:
    answer = served.call("/send_sms", hub_request("5519811a43454e16463a0100"))
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["request_id"] == "5519811a43454e16463a0100"
    assert body["summary"] == f'SMS "Order R12345 was shipped!" sent to {PHONE}'
    assert body["status"] == "sent"
    assert body["segments"] == 1 and body["to"] == PHONE
    [created] = twilio_server.creates()
    assert body["sid"] == twilio_server.messages[0]["sid"]
    assert created.field("To") == PHONE and created.field("Body") == "Order R12345 was shipped!"


def test_the_credentials_in_the_request_parameters_are_the_ones_used(
    served: Served, twilio_server: TwilioServer
) -> None:
    request = {
        **hub_request("with-parameters"),
        "parameters": {"twilio_account_sid": OTHER_ACCOUNT_SID, "twilio_auth_token": OTHER_AUTH_TOKEN},
    }
    answer = served.call("/send_sms", request)
    assert answer.status == 200, answer.text
    assert twilio_server.messages[0]["account_sid"] == OTHER_ACCOUNT_SID
    assert OTHER_AUTH_TOKEN not in answer.text


def test_a_collection_answers_each_sms(served: Served, twilio_server: TwilioServer) -> None:
    request = {
        "request_id": "batch-1",
        "sms": [{"phone": PHONE, "message": "one"}, {"phone": "+14155552672", "message": "two"}],
    }
    answer = served.call("/send_sms", request)
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["request_id"] == "batch-1"
    assert [r["status"] for r in body["results"]] == ["sent", "sent"]
    assert sorted(twilio_server.created_bodies()) == ["one", "two"]


def test_a_hub_retry_answers_the_original_sid_and_sends_nothing(
    served: Served, twilio_server: TwilioServer
) -> None:
    first = served.call("/send_sms", hub_request("retry-me"))
    again = served.call("/send_sms", hub_request("retry-me"))
    assert first.status == again.status == 200
    assert again.json()["sid"] == first.json()["sid"]
    assert again.json()["status"] == "skipped"
    assert len(twilio_server.creates()) == 1


def test_concurrent_retries_of_one_request_send_it_once(served: Served, twilio_server: TwilioServer) -> None:
    twilio_server.latency = 0.5
    answers: list[Answer] = []
    threads = [
        threading.Thread(target=lambda: answers.append(served.call("/send_sms", hub_request("racing"))))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status for a in answers] == [200] * 4, [a.text for a in answers]
    assert len({a.json()["sid"] for a in answers}) == 1
    assert len(twilio_server.creates()) == 1


def test_a_rejected_send_is_500_with_a_summary(served: Served, twilio_server: TwilioServer) -> None:
    twilio_server.reject(PHONE, 21211, "Invalid 'To' Phone Number")
    answer = served.call("/send_sms", hub_request("rejected"))
    assert answer.status == 500
    body = answer.json()
    assert body["status"] == "failed" and body["request_id"] == "rejected"
    assert body["summary"].startswith('SMS "Order R12345 was shipped!" to +14155552671 failed')
    assert body["error"]["code"] == 21211


def test_a_recipient_who_opted_out_is_suppressed_not_retried(
    served: Served, twilio_server: TwilioServer
) -> None:
    """Twilio's 21610 (unsubscribed) puts the number on the suppression list: 200, nothing to retry."""
    twilio_server.reject(PHONE, 21610, "Attempt to send to unsubscribed recipient")
    first = served.call("/send_sms", hub_request("unsubscribed"))
    assert first.status == 200 and first.json()["status"] == "suppressed", first.text
    later = served.call("/send_sms", hub_request("unsubscribed-later"))
    assert later.status == 200 and later.json()["status"] == "suppressed"
    assert len(twilio_server.creates()) == 1  # the second was never attempted


def test_the_same_request_id_for_another_recipient_is_409(
    served: Served, twilio_server: TwilioServer
) -> None:
    assert served.call("/send_sms", hub_request("reused")).status == 200
    answer = served.call("/send_sms", hub_request("reused", phone="+14155552672"))
    assert answer.status == 409
    assert answer.json()["status"] == "conflict"
    assert len(twilio_server.creates()) == 1


def test_a_body_that_is_not_json_is_406(served: Served, twilio_server: TwilioServer) -> None:
    answer = served.call("/send_sms", raw=b"request_id=1&sms=hello")
    assert answer.status == 406
    assert "not JSON" in answer.json()["summary"]
    assert twilio_server.creates() == []


def test_an_invalid_sms_is_422_naming_the_field(served: Served, twilio_server: TwilioServer) -> None:
    answer = served.call("/send_sms", {"request_id": "bad", "sms": {"phone": "12", "message": "hi"}})
    assert answer.status == 422
    body = answer.json()
    assert body["request_id"] == "bad" and body["status"] == "invalid"
    assert [error["path"] for error in body["errors"]] == ["sms.phone"]
    assert "sms.phone" in body["summary"]
    assert twilio_server.creates() == []


def test_a_json_value_that_is_not_a_request_is_422(served: Served) -> None:
    assert served.call("/send_sms", [1, 2]).status == 422
    assert served.call("/send_sms", {"sms": []}).status == 422


def test_a_body_over_one_megabyte_is_413(served: Served, twilio_server: TwilioServer) -> None:
    huge = json.dumps(hub_request("huge", message="x" * (1024 * 1024))).encode()
    answer = served.call("/send_sms", raw=huge)
    assert answer.status == 413
    assert twilio_server.creates() == []


def test_unknown_paths_and_methods(served: Served) -> None:
    assert served.call("/nowhere").status == 404
    wrong = served.call("/send_sms", method="GET")
    assert wrong.status == 405 and wrong.headers["allow"] == "POST"


def test_a_configured_key_is_required(keyed: Served, twilio_server: TwilioServer) -> None:
    assert keyed.call("/send_sms", hub_request("k1")).status == 401
    assert keyed.call("/send_sms", hub_request("k1"), headers={"X-Hub-Token": HUB_KEY + "x"}).status == 401
    assert keyed.call("/send_sms", hub_request("k1"), headers={"X-Hub-Token": HUB_KEY[:-1]}).status == 401
    assert twilio_server.creates() == []
    answer = keyed.call("/send_sms", hub_request("k1"), headers={"X-Hub-Token": HUB_KEY})
    assert answer.status == 200, answer.text
    assert keyed.call("/healthz").status == 200  # probes need no key


def test_validate_answers_the_reports(served: Served) -> None:
    good = served.call("/validate", {"phone": PHONE, "message": "hello"})
    assert good.status == 200 and good.json()["valid"] is True
    assert good.json()["results"][0]["phone"] == PHONE
    bad = served.call("/validate", {"phone": PHONE, "message": ""})
    assert bad.status == 422
    assert bad.json()["results"][0]["errors"][0]["path"] == "message"


def test_healthz_and_metrics(served: Served) -> None:
    assert served.call("/healthz").json()["ok"] is True
    served.call("/send_sms", hub_request("m1"))
    served.call("/send_sms", raw=b"{")
    metrics = served.call("/metrics")
    assert metrics.status == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'smspipe_http_requests_total{endpoint="/send_sms",status="200"} 1' in text
    assert 'smspipe_http_requests_total{endpoint="/send_sms",status="406"} 1' in text
    assert 'smspipe_sends_total{status="sent"} 1' in text
    assert 'smspipe_http_request_duration_seconds_count{endpoint="/send_sms"} 2' in text
    assert 'smspipe_http_request_duration_seconds_bucket{endpoint="/send_sms",le="+Inf"} 2' in text


def test_the_access_log_has_no_bodies(served: Served) -> None:
    served.call("/send_sms", hub_request("logged", message="a very private message body"))
    served.stop()
    assert '"POST /send_sms" 200' in served.stderr
    assert "a very private message body" not in served.stderr


def test_a_request_over_the_time_limit_is_504_and_its_retry_sends_nothing_more(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.latency = 3.0
    server = Served(send_env, "--request-timeout", "1")
    try:
        assert server.call("/send_sms", hub_request("slow")).status == 504
        assert wait_until(lambda: len(twilio_server.messages) == 1 and twilio_server.in_flight == 0)
        twilio_server.latency = 0.0
        retry = server.call("/send_sms", hub_request("slow"))
        assert retry.status == 200, retry.text
        assert retry.json()["sid"] == twilio_server.messages[0]["sid"]
        assert len(twilio_server.messages) == 1
    finally:
        server.kill()


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.latency = 1.5
    server = Served(send_env)
    answers: list[Answer] = []
    thread = threading.Thread(target=lambda: answers.append(server.call("/send_sms", hub_request("flight"))))
    thread.start()
    try:
        assert wait_until(lambda: twilio_server.in_flight == 1)
        code = server.stop()
        thread.join(30)
        assert [a.status for a in answers] == [200]
        assert answers[0].json()["sid"] == twilio_server.messages[0]["sid"]
        assert code == -signal.SIGTERM
        assert "Shutting down" in server.stderr
    finally:
        server.kill()


def test_a_public_bind_without_a_key_is_refused(send_env: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "smspipe", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env=send_env,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert "refusing to listen on 0.0.0.0 without an endpoint key" in line


def test_without_uvicorn_serve_exits_2_naming_the_install(send_env: dict[str, str]) -> None:
    code = "import sys; sys.modules['uvicorn'] = None; from smspipe.cli.app import main; main()"
    run = subprocess.run(
        [sys.executable, "-c", code, "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=send_env,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert "pip install 'smspipe[serve]'" in line


def test_send_does_not_import_the_server(send_env: dict[str, str], tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from smspipe.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'uvicorn' or m.startswith('smspipe.serve')],"
        " file=sys.stderr)\n"
    )
    document = tmp_path / "one.json"
    document.write_text(json.dumps(hub_request("no-server")))
    run = subprocess.run(
        [sys.executable, "-c", code, "send", str(document)],
        capture_output=True,
        text=True,
        env=send_env,
        timeout=60,
        check=False,
    )
    assert '"status": "sent"' in run.stdout or '"status":"sent"' in run.stdout, run.stderr
    assert run.stderr.splitlines()[-1] == "[]"


def test_translate_renders_hub_objects_and_names_those_that_fail(served: Served) -> None:
    order = {"id": "R1", "status": "complete", "shipping_address": {"phone": PHONE}}
    answer = served.call("/translate/order", {"order": order})
    assert answer.status == 200, answer.text
    [document] = answer.json()["requests"]
    assert document["request_id"] == "order:R1:complete"
    assert document["sms"]["phone"] == PHONE
    sample = json.loads((ROOT.parent / "shared" / "reference" / "hub-objects" / "order.json").read_text())
    refused = served.call("/translate/order", sample)
    assert refused.status == 422
    assert refused.json()["errors"] and refused.json()["requests"] == []
    assert served.call("/translate/invoice", {"invoice": {}}).status == 404


@pytest.mark.slow
def test_a_retry_settles_a_send_left_in_doubt_without_sending_it_again(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    """Twilio creates the message after the client gave up and the log does not show it yet: the
    first answer is 500 unknown; once it shows, the hub's retry is answered with its SID."""
    twilio_server.late_seconds = 6.0
    twilio_server.inject("late")
    config = tmp_path / "config.yaml"
    config.write_text("timeout: 1\n")
    config.chmod(0o600)
    server = Served({**send_env, "SMSPIPE_CONFIG": str(config)})
    try:
        first = server.call("/send_sms", hub_request("in-doubt"))
        assert first.status == 500, first.text
        assert first.json()["status"] == "unknown"
        assert wait_until(lambda: len(twilio_server.messages) == 1, timeout=30)
        retry = server.call("/send_sms", hub_request("in-doubt"))
        assert retry.status == 200, retry.text
        assert retry.json()["sid"] == twilio_server.messages[0]["sid"]
        assert len(twilio_server.messages) == 1
    finally:
        server.kill()


def test_a_chunked_body_over_one_megabyte_is_413_too(served: Served, twilio_server: TwilioServer) -> None:
    """No Content-Length to refuse early: the body is counted as it is read."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(served.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    chunks = (b"x" * 65536 for _ in range(20))  # 1.25 MB
    try:
        connection.request(
            "POST",
            "/send_sms",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
    finally:
        connection.close()
    assert twilio_server.creates() == []


@pytest.mark.slow
def test_a_send_cut_by_kill_9_is_safe_to_retry_on_the_next_server(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    """The server dies with a request at Twilio; the next one reconciles it at start-up (Twilio's
    log shows it), and the hub's retry is answered with the SID, nothing sent twice."""
    twilio_server.latency = 2.0
    first = Served(send_env)
    cut: list[BaseException] = []

    def call() -> None:
        try:
            first.call("/send_sms", hub_request("killed"))
        except OSError as exc:
            cut.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    try:
        assert wait_until(lambda: twilio_server.in_flight == 1)
        first.process.kill()
        thread.join(30)
        assert cut, "the request was answered before the kill"
        assert wait_until(lambda: len(twilio_server.messages) == 1 and twilio_server.in_flight == 0)
    finally:
        first.kill()
    twilio_server.latency = 0.0
    second = Served(send_env)
    try:
        retry = second.call("/send_sms", hub_request("killed"))
        assert retry.status == 200, retry.text
        assert retry.json()["sid"] == twilio_server.messages[0]["sid"]
        assert len(twilio_server.messages) == 1
    finally:
        second.kill()


def test_answers_name_settings_as_the_config_file_does_not_as_flags(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    """The hub cannot pass `--from`: a missing sender is explained with the config key, the
    environment and the document's own field."""
    env = {name: value for name, value in send_env.items() if name != "SMSPIPE_FROM"}
    server = Served(env)
    try:
        request = {"request_id": "no-sender", "sms": {"phone": PHONE, "message": "hi"}}
        answer = server.call("/send_sms", request)
    finally:
        server.kill()
    assert answer.status == 500
    message = answer.json()["error"]["message"]
    assert "give `from` or `messaging_service_sid`" in message and "SMSPIPE_FROM" in message
    assert "--" not in answer.text
    assert twilio_server.creates() == []


def test_a_deferred_message_is_503_with_retry_after(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    """Beyond max_per_recipient the message waits: the hub is told when to retry."""
    config = tmp_path / "config.yaml"
    config.write_text('max_per_recipient: "1/1h"\n')
    config.chmod(0o600)
    server = Served({**send_env, "SMSPIPE_CONFIG": str(config)})
    try:
        assert server.call("/send_sms", hub_request("first", message="one")).status == 200
        answer = server.call("/send_sms", hub_request("second", message="two"))
    finally:
        server.kill()
    assert answer.status == 503, answer.text
    assert answer.json()["status"] == "deferred"
    assert 1 <= int(answer.headers["retry-after"]) <= 3601
    assert twilio_server.created_bodies() == ["one"]
