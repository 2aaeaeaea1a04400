"""The gateways over real HTTP: the real twilio library against the loopback server,
how each failure is classified, the message log lookup, and what `config check` does.

AsyncGateway (twilio's async interface over aiohttp) is tested first; the
synchronous Gateway, which today's engine and `config check` still use, after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import typer
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import Run
from smspipe._smart_encoding import REPLACEMENTS
from smspipe.config import Credentials
from smspipe.gateway import (
    TRIAL_PREFIX,
    AmbiguousFault,
    AsyncGateway,
    AuthRefused,
    EndpointMisconfigured,
    GatewayError,
    MessageState,
    Rejected,
    SentMessage,
    TemporaryFault,
    classify_response,
    parse_retry_after,
    rebase_url,
    same_message,
    smart_encode,
    verify_account,
)
from smspipe.sms import SMS
from twilio_server import (
    ACCOUNT_SID,
    API_KEY,
    API_SECRET,
    AUTH_TOKEN,
    Lifecycle,
    ManualClock,
    TwilioServer,
    wait_until,
)

CREDENTIALS = Credentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN, "test")
MESSAGE = SMS(to="+14155552671", body="Order R12345 was shipped!")
SENDER = "+15017122661"
SERVICE = "MG" + "a" * 32
T = TypeVar("T")


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port held by a socket that is bound but not listening: connections are refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def use(
    api_url: str,
    scenario: Callable[[AsyncGateway], Awaitable[T]],
    *,
    credentials: Credentials = CREDENTIALS,
    timeout: float = 10.0,
    log: list[str] | None = None,
    pool_size: int = 10,
) -> T:
    """Run *scenario* with an AsyncGateway made (and closed) in a fresh event loop."""

    async def main() -> T:
        gateway = AsyncGateway(
            credentials,
            api_url=api_url,
            timeout=timeout,
            http_log=log.append if log is not None else None,
            pool_size=pool_size,
        )
        try:
            return await scenario(gateway)
        finally:
            await gateway.aclose()

    return asyncio.run(main())


async def create(
    g: AsyncGateway,
    message: SMS = MESSAGE,
    *,
    sender: str | None = SENDER,
    service: str | None = None,
    callback: str | None = None,
) -> SentMessage:
    return await g.create_message(
        message, sender=sender, messaging_service_sid=service, status_callback=callback
    )


def sent(server: TwilioServer, message: SMS = MESSAGE, **options: Any) -> SentMessage:
    return use(server.url, lambda g: create(g, message, **options))


def failure(api_url: str, scenario: Callable[[AsyncGateway], Awaitable[Any]], **options: Any) -> GatewayError:
    """The GatewayError *scenario* raised (and nothing else)."""
    with pytest.raises(GatewayError) as caught:
        use(api_url, scenario, **options)
    return caught.value


async def lookup(
    g: AsyncGateway,
    since: datetime,
    body: str = MESSAGE.body,
    *,
    to: str = MESSAGE.to,
    sender: str | None = SENDER,
    service: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> SentMessage | None:
    return await g.find_message(
        to=to, sender=sender, messaging_service_sid=service, body=body, since=since, exclude=exclude
    )


@contextlib.contextmanager
def plain_server(status: int, body: bytes, content_type: str = "text/html") -> Iterator[str]:
    """Not Twilio: answers every request with *status* and *body* (a captive portal, say)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer()

        def _answer(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def hanging_up_server() -> Iterator[str]:
    """Accepts each connection, reads the request, and closes without a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                with contextlib.suppress(OSError):
                    connection.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


@contextlib.contextmanager
def unanswered_connect() -> Iterator[str]:
    """A port whose accept queue is full: a connection attempt is never completed."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            for filler in fillers:
                filler.close()


# --- AsyncGateway: what it sends and what it returns -----------------------------------------


def test_importing_the_gateway_imports_no_http_library() -> None:
    code = (
        "import sys, smspipe.gateway; "
        "print([m for m in ('twilio', 'requests', 'aiohttp') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_async_gateway_must_be_made_inside_an_event_loop() -> None:
    with pytest.raises(RuntimeError):
        AsyncGateway(CREDENTIALS, api_url="http://127.0.0.1:9", timeout=1)


def test_async_create_returns_what_twilio_answered(twilio_server: TwilioServer) -> None:
    message = sent(twilio_server)
    [stored] = twilio_server.messages
    assert message.sid == stored["sid"] and message.status == "queued"
    assert (message.to, message.sender, message.segments) == (MESSAGE.to, SENDER, 1)
    assert message.date_created is not None
    assert abs(message.date_created - datetime.now(UTC)) < timedelta(minutes=5)


def test_async_create_puts_every_field_on_the_wire(twilio_server: TwilioServer) -> None:
    mms = SMS(
        to="+14155552672", body="Your receipt", media_url=("https://e.com/a.png", "https://e.com/b.jpg")
    )
    sent(twilio_server, mms, callback="https://e.com/status")
    sent(twilio_server, SMS(to="+14155552673", body="via a service"), sender=None, service=SERVICE)
    sent(twilio_server, SMS(to="whatsapp:+14155552674", body="on WhatsApp"), sender="whatsapp:" + SENDER)
    first, second, third = twilio_server.creates()
    assert first.form == {
        "To": ["+14155552672"],
        "From": [SENDER],
        "Body": ["Your receipt"],
        "MediaUrl": ["https://e.com/a.png", "https://e.com/b.jpg"],
        "StatusCallback": ["https://e.com/status"],
    }
    assert second.form == {
        "To": ["+14155552673"],
        "MessagingServiceSid": [SERVICE],
        "Body": ["via a service"],
    }
    assert third.form["To"] == ["whatsapp:+14155552674"] and third.form["From"] == ["whatsapp:" + SENDER]
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_async_api_key_authentication(twilio_server: TwilioServer) -> None:
    sent_with_key = use(
        twilio_server.url, create, credentials=Credentials(ACCOUNT_SID, API_KEY, API_SECRET, "test")
    )
    [create_request] = twilio_server.creates()
    assert (create_request.username, create_request.password) == (API_KEY, API_SECRET)
    assert sent_with_key.sid == twilio_server.messages[0]["sid"]


def test_async_edge_and_region_never_rewrite_the_api_url(
    twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    sent(twilio_server)
    assert len(twilio_server.messages) == 1


def test_one_pool_bounds_the_requests_in_flight(twilio_server: TwilioServer) -> None:
    twilio_server.latency = 0.05

    async def hundred(g: AsyncGateway) -> list[SentMessage]:
        return await asyncio.gather(
            *(create(g, SMS(to=f"+1415555{n:04d}", body=f"message {n}")) for n in range(100))
        )

    messages = use(twilio_server.url, hundred, pool_size=20)
    assert len({m.sid for m in messages}) == 100 == len(twilio_server.messages)
    assert twilio_server.max_in_flight <= 20


def test_a_burst_as_wide_as_the_pool_is_answered(twilio_server: TwilioServer) -> None:
    twilio_server.latency = 0.2

    async def burst(g: AsyncGateway) -> list[dict[str, Any]]:
        return await asyncio.gather(*(g.fetch_account() for _ in range(300)))

    accounts = use(twilio_server.url, burst, pool_size=300, timeout=60)
    assert [a["sid"] for a in accounts] == [ACCOUNT_SID] * 300


def test_https_proxy_environment_is_honoured(
    twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loopback server plays the proxy: it receives absolute-form targets.
    monkeypatch.setenv("HTTP_PROXY", twilio_server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    use("http://api.twilio.invalid", create)
    [request] = twilio_server.creates()
    assert request.target.startswith("http://api.twilio.invalid/2010-04-01/Accounts/")


def test_proxy_credentials_go_in_proxy_authorization(
    twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = twilio_server.url.removeprefix("http://")
    monkeypatch.setenv("HTTP_PROXY", f"http://proxyuser:proxypass@{host}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    use("http://api.twilio.invalid", create)
    [request] = twilio_server.creates()
    assert request.headers["Proxy-Authorization"] == "Basic cHJveHl1c2VyOnByb3h5cGFzcw=="
    assert (request.username, request.password) == (ACCOUNT_SID, AUTH_TOKEN)


def test_a_netrc_entry_for_the_api_host_changes_nothing(
    twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    sent(twilio_server)
    [request] = twilio_server.creates()
    assert (request.username, request.password) == (ACCOUNT_SID, AUTH_TOKEN)


def test_no_proxy_bypasses_the_proxy(twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with refusing_port() as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        sent(twilio_server)
    [request] = twilio_server.creates()
    assert request.target.startswith("/2010-04-01/")


# --- AsyncGateway: every failure, classified ---------------------------------------------------


def test_async_wrong_token_is_auth_refused(twilio_server: TwilioServer) -> None:
    wrong = Credentials(ACCOUNT_SID, ACCOUNT_SID, "not-the-token-at-all", "test")
    error = failure(twilio_server.url, create, credentials=wrong)
    assert isinstance(error, AuthRefused)
    assert error.status == 401 and error.code == 20003
    assert "not-the-token-at-all" not in str(error)


def test_async_rejection_carries_code_message_and_docs_link(twilio_server: TwilioServer) -> None:
    twilio_server.reject(MESSAGE.to, 21211)
    error = failure(twilio_server.url, create)
    assert isinstance(error, Rejected)
    assert (error.status, error.code) == (400, 21211)
    assert error.more_info == "https://www.twilio.com/docs/errors/21211"


def test_async_429_is_temporary_with_retry_after(twilio_server: TwilioServer) -> None:
    twilio_server.retry_after = "7"
    twilio_server.inject("429")
    error = failure(twilio_server.url, create)
    assert isinstance(error, TemporaryFault)
    assert error.retry_after == 7.0 and error.code == 20429 and not error.may_have_created


@pytest.mark.parametrize(("fault", "maybe"), [("500", True), ("503", False)])
def test_async_server_errors_are_temporary(twilio_server: TwilioServer, fault: str, maybe: bool) -> None:
    twilio_server.inject(fault)
    error = failure(twilio_server.url, create)
    assert isinstance(error, TemporaryFault)
    assert error.status == int(fault) and error.may_have_created is maybe


@pytest.mark.parametrize("operation", ["create", "lookup"])
def test_refused_connection_is_temporary_and_names_the_host(operation: str) -> None:
    scenario = create if operation == "create" else (lambda g: lookup(g, datetime.now(UTC)))
    with refusing_port() as port:
        error = failure(f"http://127.0.0.1:{port}", scenario)
    assert isinstance(error, TemporaryFault) and not error.may_have_created
    assert f"127.0.0.1:{port}" in str(error) and "connection refused" in str(error)


def test_unknown_host_is_temporary() -> None:
    error = failure("http://api.twilio.invalid", create, timeout=10)
    assert isinstance(error, TemporaryFault)
    assert "cannot connect" in str(error)


def test_a_connection_never_completed_within_the_timeout_is_temporary() -> None:
    with unanswered_connect() as url:
        error = failure(url, create, timeout=0.5)
    assert isinstance(error, TemporaryFault)
    assert "cannot connect" in str(error) and "timed out" in str(error)


@pytest.mark.parametrize("fault", ["reset", "drop"])
def test_async_connection_lost_after_sending_is_ambiguous(twilio_server: TwilioServer, fault: str) -> None:
    twilio_server.inject(fault)
    error = failure(twilio_server.url, create)
    assert isinstance(error, AmbiguousFault)
    # "drop" created the message; "reset" did not: the caller cannot tell.
    assert len(twilio_server.messages) == (1 if fault == "drop" else 0)


def test_async_timeout_after_sending_is_ambiguous(twilio_server: TwilioServer) -> None:
    twilio_server.slow_seconds = 3.0
    twilio_server.inject("slow")
    error = failure(twilio_server.url, create, timeout=0.3)
    assert isinstance(error, AmbiguousFault)
    assert "no answer within 0.3 s" in str(error)


def test_a_trickled_answer_is_bounded_by_the_timeout(twilio_server: TwilioServer) -> None:
    """One byte every half second never trips a per-read timeout; the total timeout ends it."""
    twilio_server.trickle_interval = 0.5
    twilio_server.inject("trickle")
    started = time.monotonic()
    error = failure(twilio_server.url, create, timeout=1.0)
    assert isinstance(error, AmbiguousFault)
    assert len(twilio_server.messages) == 1  # created: only the answer was slow
    # The trickled answer takes minutes; giving up is far quicker (a bound, not a measurement).
    assert time.monotonic() - started < 60


def test_twilio_creating_after_the_client_gave_up(twilio_server: TwilioServer) -> None:
    twilio_server.late_seconds = 3.0
    twilio_server.inject("late")
    since = datetime.now(UTC)
    error = failure(twilio_server.url, create, timeout=0.5)
    assert isinstance(error, AmbiguousFault)
    assert wait_until(lambda: len(twilio_server.messages) == 1, timeout=30)
    found = use(twilio_server.url, lambda g: lookup(g, since))
    assert found is not None and found.sid == twilio_server.messages[0]["sid"]


def test_a_get_that_loses_its_connection_is_temporary_not_ambiguous() -> None:
    with hanging_up_server() as url:
        error = failure(url, lambda g: lookup(g, datetime.now(UTC)))
    assert isinstance(error, TemporaryFault)


def test_a_post_that_loses_its_connection_is_ambiguous() -> None:
    with hanging_up_server() as url:
        error = failure(url, create)
    assert isinstance(error, AmbiguousFault)


def test_a_failed_lookup_is_temporary(twilio_server: TwilioServer) -> None:
    twilio_server.fail_lookups = 1
    error = failure(twilio_server.url, lambda g: lookup(g, datetime.now(UTC)))
    assert isinstance(error, TemporaryFault) and error.status == 503


def test_a_body_that_cannot_be_encoded_is_rejected_before_sending(twilio_server: TwilioServer) -> None:
    error = failure(twilio_server.url, lambda g: create(g, SMS(to=MESSAGE.to, body="lone \ud800 surrogate")))
    assert isinstance(error, Rejected)
    assert twilio_server.requests == []


# --- AsyncGateway: an endpoint that is not Twilio's API ----------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307])
@pytest.mark.parametrize("operation", ["create", "lookup", "account"])
def test_a_redirect_is_a_misconfigured_endpoint(
    twilio_server: TwilioServer, status: int, operation: str
) -> None:
    twilio_server.redirect(status, "https://api.twilio.com")
    scenarios: dict[str, Callable[[AsyncGateway], Awaitable[Any]]] = {
        "create": create,
        "lookup": lambda g: lookup(g, datetime.now(UTC)),
        "account": lambda g: g.fetch_account(),
    }
    error = failure(twilio_server.url, scenarios[operation])
    assert isinstance(error, EndpointMisconfigured)
    assert error.status == status
    text = str(error)
    assert f"({status})" in text and "to https://api.twilio.com/2010-04-01/Accounts/" in text
    assert "set api_url" in text and "nothing was sent" in text
    assert len(twilio_server.requests) == 1  # never followed
    assert twilio_server.messages == []


def test_a_redirect_location_never_shows_a_secret(twilio_server: TwilioServer) -> None:
    twilio_server.redirect(302, f"https://portal.example/login?token={AUTH_TOKEN}&to=")
    error = failure(twilio_server.url, create)
    assert isinstance(error, EndpointMisconfigured)
    assert AUTH_TOKEN not in str(error) and "portal.example" in str(error)


@pytest.mark.parametrize("operation", ["lookup", "account", "fetch"])
def test_a_get_answered_with_a_web_page_is_a_misconfigured_endpoint(operation: str) -> None:
    scenarios: dict[str, Callable[[AsyncGateway], Awaitable[Any]]] = {
        "lookup": lambda g: lookup(g, datetime.now(UTC)),
        "account": lambda g: g.fetch_account(),
        "fetch": lambda g: g.fetch_message("SM" + "1" * 32),
    }
    with plain_server(200, b"<html>Welcome to the hotel wifi</html>") as url:
        error = failure(url, scenarios[operation])
    assert isinstance(error, EndpointMisconfigured)
    assert "did not answer with Twilio's JSON" in str(error) and "set api_url" in str(error)


@pytest.mark.parametrize("answer", [b"[]", b'{"messages": 1, "other": 2}', b'{"date_created": 5}'])
def test_a_get_answered_with_json_that_is_not_twilios_is_a_misconfigured_endpoint(answer: bytes) -> None:
    with plain_server(200, answer, "application/json") as url:
        errors = [
            failure(url, lambda g: lookup(g, datetime.now(UTC))),
            failure(url, lambda g: g.fetch_message("SM" + "1" * 32)),
            failure(url, lambda g: g.fetch_account()),
        ]
    assert all(isinstance(e, EndpointMisconfigured) for e in errors), errors


def test_fetch_message_refuses_what_is_not_a_message_sid(twilio_server: TwilioServer) -> None:
    error = failure(twilio_server.url, lambda g: g.fetch_message("SM1/../../Accounts"))
    assert isinstance(error, Rejected) and "not a message SID" in str(error)
    assert twilio_server.requests == []


def test_a_create_answered_with_a_web_page_is_ambiguous() -> None:
    with plain_server(200, b"<html>ok</html>") as url:
        error = failure(url, create)
    assert isinstance(error, AmbiguousFault)
    assert "unexpected answer" in str(error)


def test_verify_account_is_synchronous(twilio_server: TwilioServer) -> None:
    log: list[str] = []
    account = verify_account(CREDENTIALS, api_url=twilio_server.url, timeout=5, http_log=log.append)
    assert account == {
        "sid": ACCOUNT_SID,
        "friendly_name": "Test account 1111",
        "status": "active",
        "type": "Full",
    }
    assert len(log) == 1 and "-> 200" in log[0]


def test_verify_account_refuses_a_redirect(twilio_server: TwilioServer) -> None:
    twilio_server.redirect(301, "https://api.twilio.com")
    with pytest.raises(EndpointMisconfigured):
        verify_account(CREDENTIALS, api_url=twilio_server.url, timeout=5)


# --- AsyncGateway: the message log ------------------------------------------------------------


def test_find_message_matches_recipient_sender_body_and_time(twilio_server: TwilioServer) -> None:
    since = datetime.now(UTC)

    async def scenario(g: AsyncGateway) -> None:
        target = await create(g)
        await create(g, SMS(to=MESSAGE.to, body="another text"))
        found = await lookup(g, since)
        assert found is not None and found.sid == target.sid
        assert await lookup(g, since, to="+14155552672") is None
        assert await lookup(g, since, sender="+15017120000") is None
        assert await lookup(g, since, exclude=frozenset({target.sid})) is None
        assert await lookup(g, datetime.now(UTC) + timedelta(hours=1)) is None

    use(twilio_server.url, scenario)
    first = twilio_server.lookups()[0]
    assert first.query["To"] == [MESSAGE.to] and first.query["From"] == [SENDER]
    assert "DateSent>" in first.query


def test_find_message_pages_through_the_log(twilio_server: TwilioServer) -> None:
    since = datetime.now(UTC)

    async def scenario(g: AsyncGateway) -> tuple[SentMessage, SentMessage | None]:
        target = await create(g)
        for number in range(7):
            await create(g, SMS(to=MESSAGE.to, body=f"later {number}"))
        twilio_server.page_size_cap = 3
        return target, await lookup(g, since)

    target, found = use(twilio_server.url, scenario)
    assert found is not None and found.sid == target.sid
    pages = twilio_server.lookups()
    assert len(pages) == 3 and "PageToken" in pages[-1].query


def test_find_message_sees_a_message_still_queued(twilio_server: TwilioServer) -> None:
    twilio_server.queue_seconds = 60  # no date_sent yet: invisible to DateSent>
    since = datetime.now(UTC)
    target = sent(twilio_server)
    found = use(twilio_server.url, lambda g: lookup(g, since))
    assert found is not None and found.sid == target.sid
    assert len(twilio_server.lookups()) == 2 and "DateSent>" not in twilio_server.lookups()[1].query


def test_find_message_waits_for_a_lagging_log(twilio_server: TwilioServer) -> None:
    clock = ManualClock()
    twilio_server.clock = clock
    twilio_server.log_lag = 30
    since = datetime.fromtimestamp(clock.now, UTC)
    target = sent(twilio_server)
    assert use(twilio_server.url, lambda g: lookup(g, since)) is None
    clock.advance(30)
    found = use(twilio_server.url, lambda g: lookup(g, since))
    assert found is not None and found.sid == target.sid


@pytest.mark.parametrize("log_body", ["trial", "smart"])
def test_find_message_through_a_rewritten_log(twilio_server: TwilioServer, log_body: str) -> None:
    twilio_server.log_body = log_body
    body = "Your order’s on its way — “R12345”… ½ off next time!"
    since = datetime.now(UTC)

    async def scenario(g: AsyncGateway) -> tuple[SentMessage, SentMessage | None, SentMessage | None]:
        target = await create(g, SMS(to=MESSAGE.to, body=body))
        other = body.replace("R12345", "R12346")
        return target, await lookup(g, since, body), await lookup(g, since, other)

    target, found, not_found = use(twilio_server.url, scenario)
    assert found is not None and found.sid == target.sid
    assert found.body != body  # it was found as the log shows it
    assert not_found is None


def test_find_message_sent_through_a_messaging_service(twilio_server: TwilioServer) -> None:
    since = datetime.now(UTC)
    via = SMS(to=MESSAGE.to, body=MESSAGE.body)

    async def scenario(g: AsyncGateway) -> tuple[SentMessage, SentMessage | None, SentMessage | None]:
        target = await create(g, via, sender=None, service=SERVICE)
        await create(g, via, sender=None, service="MG" + "b" * 32)
        mine = await lookup(g, since, sender=None, service=SERVICE)
        elsewhere = await lookup(g, since, sender=None, service="MG" + "c" * 32)
        return target, mine, elsewhere

    target, mine, elsewhere = use(twilio_server.url, scenario)
    assert mine is not None and mine.sid == target.sid
    assert elsewhere is None
    assert all("From" not in r.query for r in twilio_server.lookups())


# --- AsyncGateway: fetch by SID, the account ---------------------------------------------------


def test_fetch_message_follows_the_life_cycle(twilio_server: TwilioServer) -> None:
    clock = ManualClock()
    twilio_server.clock = clock
    twilio_server.lifecycle = Lifecycle(step_seconds=60, outcomes={"+14155552672": ("undelivered", 30003)})

    async def scenario(g: AsyncGateway) -> list[MessageState]:
        delivered = await create(g)
        undelivered = await create(g, SMS(to="+14155552672", body="unreachable"))
        states = [await g.fetch_message(delivered.sid)]
        clock.advance(60)
        states.append(await g.fetch_message(delivered.sid))
        clock.advance(60)
        states += [await g.fetch_message(delivered.sid), await g.fetch_message(undelivered.sid)]
        return states

    queued, sending, delivered, undelivered = use(twilio_server.url, scenario)
    assert (queued.status, queued.date_sent, queued.price) == ("queued", None, None)
    assert sending.status == "sent" and sending.date_sent is not None
    assert (delivered.status, delivered.price, delivered.price_unit) == ("delivered", "-0.00790", "USD")
    assert delivered.error_code is None and delivered.num_segments == 1
    assert (undelivered.status, undelivered.error_code) == ("undelivered", 30003)
    assert undelivered.to == "+14155552672" and undelivered.sender == SENDER
    assert [r.path.rsplit("/", 1)[1] for r in twilio_server.fetches()] == [
        f"{delivered.sid}.json",
        f"{delivered.sid}.json",
        f"{delivered.sid}.json",
        f"{undelivered.sid}.json",
    ]


def test_fetch_message_of_an_unknown_sid_is_rejected(twilio_server: TwilioServer) -> None:
    error = failure(twilio_server.url, lambda g: g.fetch_message("SM" + "0" * 32))
    assert isinstance(error, Rejected) and (error.status, error.code) == (404, 20404)


def test_async_fetch_account_never_returns_the_auth_token(twilio_server: TwilioServer) -> None:
    account = use(twilio_server.url, lambda g: g.fetch_account())
    assert account == {
        "sid": ACCOUNT_SID,
        "friendly_name": "Test account 1111",
        "status": "active",
        "type": "Full",
    }


# --- AsyncGateway: the -v log, and secrets -----------------------------------------------------


def test_async_verbose_log_has_method_url_status_and_time(twilio_server: TwilioServer) -> None:
    log: list[str] = []
    since = datetime.now(UTC)
    use(twilio_server.url, create, log=log)
    use(twilio_server.url, lambda g: lookup(g, since), log=log)
    post, get = log
    assert post.startswith(
        f"http: POST {twilio_server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json -> 201 ("
    )
    assert post.endswith(" ms)")
    assert get.startswith(
        f"http: GET {twilio_server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?To="
    )
    assert "-> 200 (" in get


def test_no_secret_in_any_error_or_log_line(twilio_server: TwilioServer) -> None:
    log: list[str] = []
    texts: list[str] = []
    wrong = Credentials(ACCOUNT_SID, ACCOUNT_SID, "wrong-" + AUTH_TOKEN, "test")
    twilio_server.slow_seconds = 2.0
    for fault in ("429", "500", "reset", "drop", "slow"):
        twilio_server.inject(fault)
        texts.append(str(failure(twilio_server.url, create, log=log, timeout=0.5)))
    texts.append(str(failure(twilio_server.url, create, credentials=wrong, log=log)))
    twilio_server.redirect(301, "https://api.twilio.com")
    texts.append(str(failure(twilio_server.url, create, log=log)))
    with refusing_port() as port:
        texts.append(str(failure(f"http://127.0.0.1:{port}", create, log=log)))
    everything = "\n".join(texts + log)
    assert len(log) == 8
    assert AUTH_TOKEN not in everything and "wrong-" not in everything


def test_async_repr_shows_no_secret(twilio_server: TwilioServer) -> None:
    shown = use(twilio_server.url, lambda g: asyncio.sleep(0, result=repr(g)))
    assert AUTH_TOKEN not in shown and ACCOUNT_SID in shown


# --- same_message: the body as Twilio's log may show it -----------------------------------------

# Bodies made of characters Smart Encoding leaves alone, and bodies with those it replaces.
PLAIN = st.text(st.characters(codec="utf-8", exclude_characters=set(REPLACEMENTS)))
BODIES = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from("’‘“”—–…«» ½＂！ᴀ\u200b"),
    ),
    min_size=1,
)


@given(BODIES)
def test_a_body_matches_itself_and_the_forms_the_log_shows(body: str) -> None:
    assert same_message(body, body)
    assert same_message(body, TRIAL_PREFIX + body)
    assert same_message(body, smart_encode(body))
    assert same_message(body, TRIAL_PREFIX + smart_encode(body))


@given(PLAIN, PLAIN)
def test_two_different_plain_bodies_never_match(sent_body: str, logged: str) -> None:
    assume(sent_body != logged and logged != TRIAL_PREFIX + sent_body)
    assert not same_message(sent_body, logged)


@given(BODIES, st.characters(codec="utf-8"), st.data())
def test_a_body_with_a_character_more_or_another_never_matches(
    body: str, extra: str, data: st.DataObject
) -> None:
    logged = smart_encode(body) if data.draw(st.booleans()) else body
    position = data.draw(st.integers(0, len(logged)))
    assume(extra not in REPLACEMENTS and extra != "\u200b")
    assert not same_message(body, logged[:position] + extra + logged[position:])
    plain_positions = [i for i, c in enumerate(logged) if c not in REPLACEMENTS]
    if plain_positions:
        i = data.draw(st.sampled_from(plain_positions))
        other = data.draw(st.characters(codec="utf-8").filter(lambda c: c != logged[i]))
        assume(smart_encode(other) != smart_encode(logged[i]))
        assert not same_message(body, logged[:i] + other + logged[i + 1 :])


def test_same_message_examples() -> None:
    assert same_message("It’s here — “R1”…", 'It\'s here - "R1"...')
    assert same_message("½ off", "1/2 off")
    assert same_message("a\u00a0b", "a b")
    assert not same_message("It's here", "It’s here")  # Twilio never puts the curly one back
    assert not same_message("Order R1 shipped", "order r1 shipped")
    assert not same_message("Order R1 shipped", "Order R1  shipped")
    assert not same_message("Order R1 shipped", "Sent from your Twilio trial account: Order R1 shipped")


def test_no_replacement_contains_a_replaceable_character() -> None:
    """What makes same_message's single pass exact."""
    table = REPLACEMENTS
    for character, replacements in table.items():
        assert character not in replacements
        assert len({r[:1] for r in replacements}) == len(replacements), character
        for replacement in replacements:
            assert not set(replacement) & set(table), (character, replacement)


# --- URLs ------------------------------------------------------------------------------


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


def test_config_check_behind_a_redirect_is_exit_2_naming_it(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.redirect(301, "https://api.twilio.com")
    run = run_check()
    assert run.exit_code == 2
    assert "redirect (301) to https://api.twilio.com/2010-04-01/Accounts/" in run.stderr
    assert "set api_url" in run.stderr and AUTH_TOKEN not in run.everything
    # The endpoint is wrong, not the account: nothing about the account SID.
    assert "account SID" not in run.stderr and "did not return the account" not in run.stderr
    assert run.stdout == ""


def test_config_check_against_a_web_page_is_exit_2_naming_the_endpoint(
    send_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with plain_server(200, b"<html>Welcome to the hotel wifi</html>") as url:
        monkeypatch.setenv("SMSPIPE_API_URL", url)
        run = run_check()
    assert run.exit_code == 2, run.stderr
    assert "did not answer with Twilio's JSON" in run.stderr and "--api-url" in run.stderr
    assert "account SID" not in run.stderr and AUTH_TOKEN not in run.everything


def test_config_check_without_credentials_says_how_to_give_them(bare_env: dict[str, str]) -> None:
    run = run_check()
    assert run.exit_code == 2
    assert "TWILIO_ACCOUNT_SID" in run.stderr and "smspipe config init" in run.stderr


def test_config_check_unreachable_is_75(send_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with refusing_port() as port:
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
