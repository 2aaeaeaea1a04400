"""The loopback Twilio server is test infrastructure: each fault and knob does what it says.

Checked over plain HTTP (http.client, raw sockets), independently of smspipe.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from twilio_server import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    TRIAL_PREFIX,
    Lifecycle,
    ManualClock,
    TwilioServer,
    wait_until,
)

MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
AUTHORIZATION = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
TO = "+14155552671"


def request(
    server: TwilioServer, method: str, path: str, form: dict[str, Any] | None = None, timeout: float = 30
) -> tuple[int, dict[str, str], Any]:
    host, port = urlsplit(server.url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        body = urlencode(form, doseq=True) if form is not None else None
        headers = {"Authorization": AUTHORIZATION, "Content-Type": "application/x-www-form-urlencoded"}
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        return answer.status, dict(answer.getheaders()), json.loads(data) if data else None
    finally:
        connection.close()


def create(server: TwilioServer, body: str = "hello", to: str = TO, **extra: Any) -> dict[str, Any]:
    status, _, payload = request(
        server, "POST", MESSAGES, {"To": to, "From": "+15017122661", "Body": body, **extra}
    )
    assert status == 201, payload
    return dict(payload)


def log(server: TwilioServer, **query: str) -> list[dict[str, Any]]:
    status, _, payload = request(server, "GET", f"{MESSAGES}?{urlencode(query)}")
    assert status == 200
    return list(payload["messages"])


def fetch(server: TwilioServer, sid: str) -> tuple[int, Any]:
    status, _, payload = request(server, "GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json")
    return status, payload


@pytest.fixture
def server() -> Iterator[TwilioServer]:
    with TwilioServer() as running:
        yield running


# --- bursts ---------------------------------------------------------------------------


def test_a_burst_of_connections_is_queued_not_reset(server: TwilioServer) -> None:
    """400 clients connect at once, each on its own connection: every one is answered.

    With the listen backlog left at 5 (set after listen()), this burst had
    connections reset by peer and others stalled for minutes.
    """
    server.latency = 0.2
    barrier = threading.Barrier(400)
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}.json"

    def one(_: int) -> int:
        host, port = urlsplit(server.url).netloc.split(":")
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            barrier.wait(timeout=60)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTHORIZATION}\r\n\r\n".encode())
            head = sock.recv(12)
            return int(head.split()[1])

    with concurrent.futures.ThreadPoolExecutor(max_workers=400) as pool:
        statuses = list(pool.map(one, range(400)))
    assert statuses == [200] * 400


# --- late, trickle ----------------------------------------------------------------------


def test_late_creates_after_an_impatient_client_gave_up(server: TwilioServer) -> None:
    server.late_seconds = 5.0
    server.inject("late")
    with pytest.raises(TimeoutError):
        request(server, "POST", MESSAGES, {"To": TO, "From": "+15017122661", "Body": "late"}, timeout=0.5)
    assert server.messages == []  # it does not exist yet when the client gives up
    assert wait_until(lambda: len(server.messages) == 1, timeout=30)
    [record] = server.creates()
    assert record.fault == "late" and record.status == 201


def test_late_answers_a_patient_client_with_the_message(server: TwilioServer) -> None:
    server.late_seconds = 0.5
    server.inject("late")
    payload = create(server, "late but there")
    [message] = server.messages
    assert payload["sid"] == message["sid"] and payload["body"] == "late but there"


def test_trickle_sends_the_answer_one_byte_at_a_time(server: TwilioServer) -> None:
    server.trickle_interval = 0.2
    server.inject("trickle")
    host, port = urlsplit(server.url).netloc.split(":")
    form = urlencode({"To": TO, "From": "+15017122661", "Body": "slowly"})
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTHORIZATION}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(form)}\r\n\r\n{form}".encode()
        )
        received = b""
        reads = 0
        while len(received) < len(b"HTTP/1.1 201"):
            received += sock.recv(1024)
            reads += 1
    assert received.startswith(b"HTTP/1.1 201")
    assert reads > 1  # not the answer in one piece
    assert len(server.messages) == 1  # created before the first byte went out


def test_trickle_is_a_complete_answer_when_waited_for(server: TwilioServer) -> None:
    server.trickle_interval = 0.0
    server.inject("trickle")
    payload = create(server, "all of it")
    assert payload["sid"] == server.messages[0]["sid"]


# --- the message log: lag, rewritten bodies ---------------------------------------------


def test_log_lag_hides_a_new_message_from_the_log_only(server: TwilioServer) -> None:
    clock = ManualClock()
    server.clock = clock
    server.log_lag = 10.0
    sid = create(server)["sid"]
    assert log(server, To=TO) == []
    assert fetch(server, sid)[0] == 200
    clock.advance(10.0)
    assert [m["sid"] for m in log(server, To=TO)] == [sid]


@pytest.mark.parametrize(
    ("mode", "shown"),
    [
        ("trial", TRIAL_PREFIX + "Your order’s shipped — thanks…"),
        ("smart", "Your order's shipped - thanks..."),
        (None, "Your order’s shipped — thanks…"),
    ],
)
def test_log_body_rewrites_what_the_log_shows(server: TwilioServer, mode: str | None, shown: str) -> None:
    server.log_body = mode
    sent = "Your order’s shipped — thanks…"
    payload = create(server, sent)
    assert payload["body"] == sent  # the answer to the create is not rewritten
    [logged] = log(server, To=TO)
    assert logged["body"] == shown
    assert fetch(server, payload["sid"])[1]["body"] == shown
    assert server.created_bodies() == [sent]


# --- redirects --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307])
def test_redirect_answers_every_request_with_a_location(server: TwilioServer, status: int) -> None:
    server.redirect(status, "https://api.example.com/base")
    answer, headers, _ = request(server, "POST", MESSAGES, {"To": TO, "From": "+15017122661", "Body": "x"})
    assert answer == status
    assert headers["Location"] == f"https://api.example.com/base{MESSAGES}"
    answer, headers, _ = request(server, "GET", f"{MESSAGES}?To=%2B1")
    assert (answer, headers["Location"]) == (status, f"https://api.example.com/base{MESSAGES}?To=%2B1")
    assert server.messages == []


# --- fetch by SID and the life cycle ----------------------------------------------------


def test_fetch_by_sid_needs_the_account_and_knows_unknown_sids(server: TwilioServer) -> None:
    sid = create(server)["sid"]
    status, payload = fetch(server, sid)
    assert status == 200 and payload["sid"] == sid and payload["to"] == TO
    assert fetch(server, "SM" + "0" * 32)[0] == 404
    host, port = urlsplit(server.url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json")
    assert connection.getresponse().status == 401
    connection.close()


def test_lifecycle_queued_sent_delivered_with_a_price(server: TwilioServer) -> None:
    clock = ManualClock()
    server.clock = clock
    server.lifecycle = Lifecycle(step_seconds=60)
    sid = create(server)["sid"]
    seen = []
    for _ in range(4):
        message = fetch(server, sid)[1]
        seen.append((message["status"], message["price"], message["date_sent"] is not None))
        clock.advance(60)
    assert seen == [
        ("queued", None, False),
        ("sent", None, True),
        ("delivered", "-0.00790", True),
        ("delivered", "-0.00790", True),
    ]
    assert message["price_unit"] == "USD" and message["error_code"] is None


@pytest.mark.parametrize(
    ("outcome", "statuses", "price"),
    [
        (("undelivered", 30003), ["queued", "sent", "undelivered"], "-0.00790"),
        (("failed", 30007), ["queued", "failed", "failed"], "-0.00000"),
    ],
)
def test_lifecycle_outcomes_per_recipient(
    server: TwilioServer, outcome: tuple[str, int], statuses: list[str], price: str
) -> None:
    clock = ManualClock()
    server.clock = clock
    server.lifecycle = Lifecycle(step_seconds=1, outcomes={TO: outcome})
    sid = create(server)["sid"]
    other = create(server, to="+14155552672")["sid"]
    seen = []
    for _ in statuses:
        seen.append(fetch(server, sid)[1]["status"])
        clock.advance(1)
    assert seen == statuses
    final = fetch(server, sid)[1]
    assert final["error_code"] == outcome[1] and final["price"] == price
    assert fetch(server, other)[1]["status"] == "delivered"
    assert {m["sid"]: m["status"] for m in log(server)} == {sid: statuses[-1], other: "delivered"}


# --- status callbacks -------------------------------------------------------------------


@contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], dict[str, str]]]]]:
    """An HTTP server that records the status callbacks it is sent."""
    received: list[tuple[str, dict[str, str], dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            received.append((self.path, form, dict(self.headers.items())))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_status_callbacks_are_posted_in_order_and_signed(server: TwilioServer) -> None:
    clock = ManualClock()
    server.clock = clock
    server.lifecycle = Lifecycle(step_seconds=5, outcomes={"+14155552672": ("undelivered", 30005)})
    server.status_callbacks = True
    with receiver() as (base, received):
        url = f"{base}/twilio/status?shop=1"
        delivered = create(server, StatusCallback=url)["sid"]
        undelivered = create(server, to="+14155552672", StatusCallback=url)["sid"]
        create(server, to="+14155552673")  # no StatusCallback: never posted
        clock.advance(10)
        assert wait_until(lambda: len(received) == 4, timeout=30), received
    by_sid: dict[str, list[str]] = {}
    validator = RequestValidator(AUTH_TOKEN)
    for path, form, headers in received:
        assert path == "/twilio/status?shop=1"
        assert validator.validate(url, form, headers["X-Twilio-Signature"])
        assert form["AccountSid"] == ACCOUNT_SID and form["MessageStatus"] == form["SmsStatus"]
        by_sid.setdefault(form["MessageSid"], []).append(form["MessageStatus"])
        assert ("ErrorCode" in form) == (form["MessageStatus"] == "undelivered")
    assert by_sid == {delivered: ["sent", "delivered"], undelivered: ["sent", "undelivered"]}
    assert [c.status for c in server.callbacks] == [204] * 4


def test_status_callbacks_are_off_by_default(server: TwilioServer) -> None:
    server.lifecycle = Lifecycle(step_seconds=0)
    with receiver() as (base, received):
        create(server, StatusCallback=f"{base}/cb")
        assert fetch(server, server.messages[0]["sid"])[1]["status"] == "delivered"
    assert received == [] and server.callbacks == []
