"""A Twilio-compatible HTTP server on 127.0.0.1 for tests (and bench/), with fault injection.

It speaks the slice of Twilio's 2010-04-01 REST API smspipe uses, the way the
real ``twilio`` library expects it:

- ``POST /2010-04-01/Accounts/{AC}/Messages.json``: checks Basic auth (account
  SID + auth token, or API key + secret), checks the form fields, answers 201
  with Twilio's message JSON or 4xx with Twilio's error JSON.
- ``GET /2010-04-01/Accounts/{AC}/Messages.json``: the message log, newest
  first, filtered by ``To``, ``From``, ``DateSent>``, paged with
  ``next_page_uri`` as twilio-python follows it.
- ``GET /2010-04-01/Accounts/{AC}/Messages/{SM}.json``: one message, as it
  stands in its life cycle (:attr:`TwilioServer.lifecycle`).
- ``GET /2010-04-01/Accounts/{AC}.json``: the account.

Everything it receives is recorded (:attr:`TwilioServer.requests`), and every
message created is kept (:attr:`TwilioServer.messages`): tests assert on
what the server saw, not on what smspipe says.

Faults, injected per request by :meth:`TwilioServer.inject` (the next N
creates) or at random by :attr:`TwilioServer.fault_mix` (seeded):

- ``429``: rate limited, with ``Retry-After``;
- ``500`` / ``503``: server errors, nothing created;
- ``reset``: the connection is reset before the body is read, nothing created;
- ``drop``: the message is created, then the connection is closed without an answer;
- ``slow``: the message is created and the answer comes after ``slow_seconds``
  (longer than the client's timeout);
- ``late``: the message is created only ``late_seconds`` after the request
  arrived, and answered then: Twilio creates it after the client gave up;
- ``trickle``: the message is created and the answer (status line, headers,
  body) is written one byte every ``trickle_interval`` seconds.

Knobs for the whole server:

- ``log_lag``: a message shows in the message log (GET Messages.json) only
  ``log_lag`` seconds after it was created (fetching it by SID works at once);
- ``log_body``: the body the log (and a fetch by SID) shows is rewritten as a
  real account's would be: ``"trial"`` (the trial-account prefix) or
  ``"smart"`` (Smart Encoding's replacements);
- :meth:`TwilioServer.redirect`: every request is answered 301/302/307 to
  another URL (an ``api_url`` that is not the API's);
- ``lifecycle`` (:class:`Lifecycle`): each message moves queued -> sent ->
  delivered (or undelivered/failed, with an error code, per recipient) on a
  schedule, with a price once final; ``status_callbacks`` posts each change
  to the message's StatusCallback URL, signed as Twilio signs it;
- ``clock``: the time the server reads (tests replace it to move time on).

It listens with a deep backlog: a burst of connections (aiohttp opening a
hundred at once) is queued by the kernel, not reset.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

API = "/2010-04-01"
FAULTS = ("429", "500", "503", "reset", "drop", "slow", "late", "trickle")
TRIAL_PREFIX = "Sent from your Twilio trial account - "
# A few of Smart Encoding's replacements, written down here independently of
# smspipe's table (https://www.twilio.com/docs/messaging/services/smart-encoding-char-list).
SMART_ENCODING = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u00bd": "1/2",
        "\uff01": "!",
        "\u200b": "",
    }
)
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "tok_" + "s3cr3t" * 5
API_KEY = "SK" + "2" * 32
API_SECRET = "sec_" + "k3y" * 10
OTHER_ACCOUNT_SID = "AC" + "3" * 32
OTHER_AUTH_TOKEN = "tok_" + "0th3r" * 6

CREATE_FIELDS = frozenset(
    {
        "To",
        "From",
        "MessagingServiceSid",
        "Body",
        "MediaUrl",
        "StatusCallback",
        "ApplicationSid",
        "MaxPrice",
        "ProvideFeedback",
        "Attempt",
        "ValidityPeriod",
        "ForceDelivery",
        "ContentRetention",
        "AddressRetention",
        "SmartEncoded",
        "PersistentAction",
        "TrafficType",
        "ShortenUrls",
        "ScheduleType",
        "SendAt",
        "SendAsMms",
        "ContentVariables",
        "MessageIntent",
        "RiskCheck",
        "FallbackFrom",
        "ContentSid",
    }
)


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC))


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class Lifecycle:
    """How created messages move on: one step every ``step_seconds``.

    queued -> sent -> delivered, or -> undelivered with the recipient's error
    code; a ``failed`` recipient goes queued -> failed. Final messages carry a
    price. ``outcomes`` maps a recipient to (final status, error code).
    """

    step_seconds: float = 1.0
    outcomes: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    price_per_segment: str = "0.00790"

    def statuses(self, to: str) -> list[str]:
        """The statuses a message to *to* goes through after its first."""
        final, _ = self.outcomes.get(to, ("delivered", None))
        return [final] if final == "failed" else ["sent", final]

    def error_code(self, to: str) -> int | None:
        return self.outcomes.get(to, ("delivered", None))[1]


@dataclass
class Callback:
    """One status callback the server posted."""

    url: str
    form: dict[str, str]
    headers: dict[str, str]
    #: the receiver's HTTP status, or None when it could not be reached
    status: int | None


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    username: str | None
    password: str | None
    started: float
    status: int | None = None
    fault: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: the request target as sent: a path, or an absolute URL when sent to a proxy
    target: str = ""

    @property
    def is_create(self) -> bool:
        return self.method == "POST" and self.path.endswith("/Messages.json")

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


class TwilioServer:
    """The server, its state, and the knobs tests turn."""

    def __init__(self, *, latency: float = 0.0, seed: int = 0) -> None:
        self.accounts: dict[str, str] = {ACCOUNT_SID: AUTH_TOKEN, OTHER_ACCOUNT_SID: OTHER_AUTH_TOKEN}
        self.api_keys: dict[str, tuple[str, str]] = {API_KEY: (ACCOUNT_SID, API_SECRET)}
        #: seconds every request takes (after it is read, before it is answered)
        self.latency = latency
        #: seconds a created message stays without date_sent (queued)
        self.queue_seconds = 0.0
        #: recipient -> (code, message): Twilio's permanent rejections
        self.rejections: dict[str, tuple[int, str]] = {}
        #: fault name -> probability, for creates (seeded)
        self.fault_mix: dict[str, float] = {}
        self.retry_after = "1"
        #: the next N message log lookups (GET Messages.json) are answered 503
        self.fail_lookups = 0
        #: the next GETs of one message by SID are answered these statuses ("429", "500", "503")
        self.fetch_faults: deque[str] = deque()
        self.slow_seconds = 2.0
        self.late_seconds = 3.0
        self.trickle_interval = 0.5
        #: seconds before a created message shows in the message log
        self.log_lag = 0.0
        #: None, "trial" or "smart": how the log rewrites bodies
        self.log_body: str | None = None
        self.lifecycle: Lifecycle | None = None
        #: post status changes to StatusCallback URLs (needs a lifecycle)
        self.status_callbacks = False
        self.callbacks: list[Callback] = []
        self.clock: Callable[[], float] = time.time
        self._redirect: tuple[int, str] | None = None
        self.page_size_cap = 1000
        self.requests: list[Recorded] = []
        self.messages: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._planned: deque[str] = deque()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._stopped = threading.Event()

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> TwilioServer:
        handler = _handler_for(self)
        server = _Listener(("127.0.0.1", 0), handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="twilio-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TwilioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- knobs ---------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        """The next creates meet these faults, in order (then behave)."""
        for fault in faults:
            assert fault in FAULTS, fault
        with self._lock:
            self._planned.extend(faults)

    def redirect(self, status: int = 301, base: str = "https://api.twilio.com") -> None:
        """Answer every request with *status*, ``Location`` *base* + the path asked for."""
        assert status in (301, 302, 303, 307, 308), status
        self._redirect = (status, base.rstrip("/"))

    def reject(self, to: str, code: int = 21211, message: str | None = None) -> None:
        self.rejections[to] = (code, message or f"The 'To' number {to} is not a valid phone number.")

    def reset_records(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    # --- what was received ---------------------------------------------------

    def lookups(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.path.endswith("/Messages.json")]

    def duplicates(self) -> dict[str, int]:
        """Bodies created more than once (the thing that must never happen)."""
        counts: dict[str, int] = {}
        for body in self.created_bodies():
            counts[body] = counts.get(body, 0) + 1
        return {body: n for body, n in counts.items() if n > 1}

    def fetches(self) -> list[Recorded]:
        """GETs of one message by its SID."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and "/Messages/" in r.path]

    def creates(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.is_create]

    def created_bodies(self) -> list[str]:
        with self._lock:
            return [m["body"] for m in self.messages]

    def created_count(self, body: str) -> int:
        return self.created_bodies().count(body)

    def create_starts(self) -> list[float]:
        return sorted(r.started for r in self.creates())

    def max_starts_in_window(self, window: float = 1.0) -> int:
        starts = self.create_starts()
        best = 0
        left = 0
        for right, moment in enumerate(starts):
            while moment - starts[left] >= window:
                left += 1
            best = max(best, right - left + 1)
        return best

    def all_text(self) -> str:
        """Everything received, as text (to search for leaked secrets, say)."""
        with self._lock:
            return "\n".join(json.dumps(r.__dict__, default=str) for r in self.requests)

    # --- handling ------------------------------------------------------------

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._planned:
                return self._planned.popleft()
            if self.fault_mix:
                roll = self._random.random()
                for name, probability in self.fault_mix.items():
                    if roll < probability:
                        return name
                    roll -= probability
        return None

    def _next_fetch_fault(self) -> str | None:
        with self._lock:
            return self.fetch_faults.popleft() if self.fetch_faults else None

    def _authenticate(self, username: str | None, password: str | None, account: str) -> bool:
        if username is None or password is None:
            return False
        if username.startswith("AC"):
            return self.accounts.get(username) == password and username == account
        key = self.api_keys.get(username)
        return key is not None and key[1] == password and key[0] == account

    def _create(self, account: str, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        def first(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        unknown = sorted(set(form) - CREATE_FIELDS)
        if unknown:
            return 400, twilio_error(21000, f"Unknown parameter {unknown[0]}", 400)
        to = first("To")
        sender = first("From")
        service = first("MessagingServiceSid")
        body = first("Body")
        media = form.get("MediaUrl", [])
        refused = self._refusal(to, sender, service, body, media)
        if refused is not None:
            return refused
        assert to is not None
        created = self.clock()
        send_at = None
        if first("ScheduleType") is not None or first("SendAt") is not None:
            scheduled = self._check_schedule(first("ScheduleType"), first("SendAt"), service, created)
            if isinstance(scheduled, tuple):
                return scheduled
            send_at = scheduled
        now = datetime.fromtimestamp(created, UTC)
        sid = "SM" + uuid.uuid4().hex
        body = body or ""
        segments = max(1, -(-len(body) // 153)) if len(body) > 160 else 1
        message = {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": rfc2822(now),
            "date_updated": rfc2822(now),
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": str(segments),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "scheduled" if send_at else "accepted" if service and not sender else "queued",
            "subresource_uris": {"media": f"{API}/Accounts/{account}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"{API}/Accounts/{account}/Messages/{sid}.json",
            "_created": created,
            "_status_callback": first("StatusCallback"),
            "_media": media,
            "_notified": 0,
            "_send_at": send_at,
        }
        with self._lock:
            self.messages.append(message)
        if message["_status_callback"] and self.status_callbacks:
            self._start_dispatcher()
        return 201, _public(message)

    def _refusal(
        self, to: str | None, sender: str | None, service: str | None, body: str | None, media: list[str]
    ) -> tuple[int, dict[str, Any]] | None:
        """Twilio's 400 for a create it refuses, or None."""
        if not to:
            return 400, twilio_error(21604, "A 'To' phone number is required.", 400)
        if not sender and not service:
            return 400, twilio_error(
                21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.", 400
            )
        if not body and not media:
            return 400, twilio_error(21602, "Message body is required.", 400)
        if len(media) > 10:
            return 400, twilio_error(21623, "Too many media URLs", 400)
        if to in self.rejections:
            code, reason = self.rejections[to]
            return 400, twilio_error(code, reason, 400)
        return None

    @staticmethod
    def _check_schedule(
        schedule_type: str | None, send_at: str | None, service: str | None, now: float
    ) -> float | tuple[int, dict[str, Any]]:
        """Twilio's rules for a scheduled message: the moment to send it, or the refusal."""
        if schedule_type != "fixed":
            return 400, twilio_error(35126, "The ScheduleType value provided is not supported", 400)
        if not service:
            return 400, twilio_error(35118, "MessagingServiceSid is required to schedule a message", 400)
        if not send_at:
            return 400, twilio_error(35111, "SendAt timestamp is missing", 400)
        moment = datetime.fromisoformat(send_at.replace("Z", "+00:00")).timestamp()
        if not 300 <= moment - now <= 35 * 86400:
            return 400, twilio_error(35114, "Scheduling does not support this timestamp", 400)
        return moment

    def _view(self, message: dict[str, Any], now: float) -> dict[str, Any]:
        """The message as the API shows it at *now*: its life cycle so far, its body as logged."""
        record = dict(message)
        if record["_send_at"] is not None:
            if now < record["_send_at"]:
                return _public(record)  # scheduled: nothing moves before its moment
            record["_created"] = record["_send_at"]
        elapsed = now - record["_created"]
        if self.lifecycle is not None:
            self._advance(record, elapsed, self.lifecycle)
        elif record["date_sent"] is None and elapsed >= self.queue_seconds:
            record["date_sent"] = record["date_created"]
            record["status"] = "sent"
        if self.log_body == "trial":
            record["body"] = TRIAL_PREFIX + record["body"]
        elif self.log_body == "smart":
            record["body"] = record["body"].translate(SMART_ENCODING)
        return _public(record)

    @staticmethod
    def _advance(record: dict[str, Any], elapsed: float, lifecycle: Lifecycle) -> None:
        step = lifecycle.step_seconds
        done = len(lifecycle.statuses(record["to"])) if step <= 0 else int(elapsed // step)
        passed = lifecycle.statuses(record["to"])[:done]
        if not passed:
            return
        created = record["_created"]
        record["status"] = passed[-1]
        record["date_updated"] = rfc2822(datetime.fromtimestamp(created + len(passed) * step, UTC))
        if "sent" in passed:
            record["date_sent"] = rfc2822(datetime.fromtimestamp(created + step, UTC))
        if passed[-1] in FINAL_STATUSES:
            code = lifecycle.error_code(record["to"])
            record["error_code"] = code
            record["error_message"] = f"Twilio error {code}" if code else None
            segments = int(record["num_segments"])
            unit = 0.0 if passed[-1] == "failed" else float(lifecycle.price_per_segment)
            record["price"] = f"{-unit * segments:.5f}"

    def _fetch(self, account: str, sid: str) -> dict[str, Any] | None:
        now = self.clock()
        with self._lock:
            found = [m for m in self.messages if m["sid"] == sid and m["account_sid"] == account]
        return self._view(found[0], now) if found else None

    # --- status callbacks ----------------------------------------------------

    def _start_dispatcher(self) -> None:
        with self._lock:
            if self._dispatcher is not None:
                return
            self._dispatcher = threading.Thread(target=self._dispatch, name="twilio-callbacks", daemon=True)
        self._dispatcher.start()

    def _dispatch(self) -> None:
        """Post each message's status changes, in order, as the clock passes them."""
        while not self._stopped.wait(0.02):
            lifecycle = self.lifecycle
            if lifecycle is None or not self.status_callbacks:
                continue
            now = self.clock()
            with self._lock:
                pending = [m for m in self.messages if m["_status_callback"]]
            for message in pending:
                self._notify(message, now, lifecycle)

    def _notify(self, message: dict[str, Any], now: float, lifecycle: Lifecycle) -> None:
        statuses = lifecycle.statuses(message["to"])
        step = lifecycle.step_seconds
        due = len(statuses) if step <= 0 else min(int((now - message["_created"]) // step), len(statuses))
        while message["_notified"] < due:
            status = statuses[message["_notified"]]
            message["_notified"] += 1
            self._post_callback(message, status, lifecycle.error_code(message["to"]))

    def _post_callback(self, message: dict[str, Any], status: str, code: int | None) -> None:
        from twilio.request_validator import RequestValidator

        url = message["_status_callback"]
        form = {
            "SmsSid": message["sid"],
            "SmsStatus": status,
            "MessageStatus": status,
            "To": message["to"],
            "MessageSid": message["sid"],
            "AccountSid": message["account_sid"],
            "From": message["from"] or "",
            "ApiVersion": "2010-04-01",
        }
        if message["messaging_service_sid"]:
            form["MessagingServiceSid"] = message["messaging_service_sid"]
        if code and status in ("undelivered", "failed"):
            form["ErrorCode"] = str(code)
        token = self.accounts[message["account_sid"]]
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "X-Twilio-Signature": RequestValidator(token).compute_signature(url, form),
        }
        request = urllib.request.Request(url, data=urlencode(form).encode(), headers=headers, method="POST")
        answer: int | None
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = response.status
        except urllib.error.HTTPError as exc:
            answer = exc.code
        except OSError:
            answer = None
        with self._lock:
            self.callbacks.append(Callback(url, form, headers, answer))

    def _list(self, account: str, query: dict[str, list[str]]) -> dict[str, Any]:
        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        now = self.clock()
        with self._lock:
            logged = [m for m in self.messages if m["account_sid"] == account]
        records = [
            {**self._view(m, now), "_created": m["_created"]}
            for m in logged
            if now - m["_created"] >= self.log_lag
        ]
        to, sender, after = first("To"), first("From"), first("DateSent>")
        if to:
            records = [r for r in records if r["to"] == to]
        if sender:
            records = [r for r in records if r["from"] == sender]
        if after:
            bound = _parse_date(after)
            records = [
                r
                for r in records
                if r["date_sent"] is not None
                and datetime.fromtimestamp(r["_created"], UTC).replace(microsecond=0) >= bound
            ]
        records.sort(key=lambda r: r["_created"], reverse=True)
        size = min(int(first("PageSize") or 50), self.page_size_cap)
        page = int(first("Page") or 0)
        chunk = records[page * size : (page + 1) * size]
        base = {k: v[0] for k, v in query.items() if k not in ("Page", "PageToken")}
        uri = f"{API}/Accounts/{account}/Messages.json"

        def page_uri(number: int) -> str:
            return f"{uri}?{urlencode({**base, 'PageSize': size, 'Page': number})}"

        has_next = (page + 1) * size < len(records)
        return {
            "messages": [_public(r) for r in chunk],
            "page": page,
            "page_size": size,
            "start": page * size,
            "end": page * size + max(len(chunk) - 1, 0),
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "next_page_uri": (page_uri(page + 1) + f"&PageToken=PA{page + 1}") if has_next else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        }

    def _account(self, account: str) -> dict[str, Any]:
        return {
            "sid": account,
            "friendly_name": f"Test account {account[-4:]}",
            "status": "active",
            "type": "Full",
            "owner_account_sid": account,
            # Twilio returns the auth token with the account: it must never be shown.
            "auth_token": self.accounts.get(account, ""),
            "date_created": rfc2822(datetime(2024, 1, 2, tzinfo=UTC)),
            "date_updated": rfc2822(datetime(2024, 1, 2, tzinfo=UTC)),
            "uri": f"{API}/Accounts/{account}.json",
            "subresource_uris": {},
        }


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if not k.startswith("_")}


def _parse_date(text: str) -> datetime:
    for pattern in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
    raise ValueError(text)


class _Listener(ThreadingHTTPServer):
    """The listening socket and its accept loop: one thread per connection.

    The backlog must be set before listen(), which the constructor calls:
    assigning request_queue_size afterwards (as this server once did) leaves
    the default of 5, and a burst of connections then overflows the accept
    queue and is reset. The kernel caps it at net.core.somaxconn.
    """

    request_queue_size = 1024
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests as Twilio would, faults and all."""

    #: the server whose state and knobs this handler uses (set per server: _handler_for)
    twilio: TwilioServer

    protocol_version = "HTTP/1.1"
    server_version = "twilio-test/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Answers are written in two parts: without this, Nagle and delayed
        # ACKs add 40 ms to every request on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _credentials(self) -> tuple[str | None, str | None]:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None, None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None, None
        return user, password

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        username, password = self._credentials()
        record = Recorded(
            method,
            parts.path,
            query,
            {},
            username,
            password,
            started,
            headers={k: v for k, v in self.headers.items()},
            target=self.path,
        )
        fault = self.twilio._next_fault() if method == "POST" else None
        with self.twilio._lock:
            self.twilio.requests.append(record)
            self.twilio.in_flight += 1
            self.twilio.max_in_flight = max(self.twilio.max_in_flight, self.twilio.in_flight)
        try:
            if fault == "reset":
                record.fault = fault
                self._reset()
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            record.form = parse_qs(raw, keep_blank_values=True)
            if self.twilio.latency:
                time.sleep(self.twilio.latency)
            if self.twilio._redirect is not None:
                status, base = self.twilio._redirect
                record.status = status
                asked = parts.path + (f"?{parts.query}" if parts.query else "")
                self._answer(status, {}, {"Location": base + asked})
                return
            status, payload, headers = self._route(method, parts.path, query, record, fault)
            record.status = status
            if status == 0:
                return  # the connection was dropped
            self._answer(status, payload, headers, trickle=fault == "trickle" and status == 201)
        finally:
            with self.twilio._lock:
                self.twilio.in_flight -= 1

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], record: Recorded, fault: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not path.startswith(f"{API}/Accounts/"):
            return 404, twilio_error(20404, "The requested resource was not found", 404), {}
        rest = path[len(f"{API}/Accounts/") :]
        account = rest.split("/")[0].removesuffix(".json")
        if not self.twilio._authenticate(record.username, record.password, account):
            return (
                401,
                twilio_error(20003, "Authenticate", 401),
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if rest == f"{account}.json" and method == "GET":
            return 200, self.twilio._account(account), {}
        one = rest.removeprefix(f"{account}/Messages/").removesuffix(".json")
        if method == "GET" and rest == f"{account}/Messages/{one}.json" and "/" not in one:
            failing = self.twilio._next_fetch_fault()
            if failing is not None:
                record.fault = failing
                status = int(failing)
                headers = {"Retry-After": self.twilio.retry_after} if status == 429 else {}
                return status, twilio_error(20429 if status == 429 else 20500, "Injected", status), headers
            message = self.twilio._fetch(account, one)
            if message is None:
                return 404, twilio_error(20404, f"The requested resource {path} was not found", 404), {}
            return 200, message, {}
        if rest != f"{account}/Messages.json":
            return 404, twilio_error(20404, "The requested resource was not found", 404), {}
        if method == "GET":
            return self._lookup(account, query, record)
        return self._create(account, record, fault)

    def _lookup(
        self, account: str, query: dict[str, list[str]], record: Recorded
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """GET .../Messages.json: the message log (or a lookup failing as told)."""
        with self.twilio._lock:
            failing = self.twilio.fail_lookups > 0
            self.twilio.fail_lookups -= failing
        if failing:
            record.fault = "503"
            return 503, twilio_error(20503, "Service Unavailable", 503), {}
        return 200, self.twilio._list(account, query), {}

    def _create(
        self, account: str, record: Recorded, fault: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """POST .../Messages.json: a message created, or the fault injected for this request."""
        record.fault = fault
        if fault == "429":
            return (
                429,
                twilio_error(20429, "Too Many Requests", 429),
                {"Retry-After": self.twilio.retry_after},
            )
        if fault in ("500", "503"):
            code = int(fault)
            title = "Internal Server Error" if code == 500 else "Service Unavailable"
            return code, twilio_error(20500 if code == 500 else 20503, title, code), {}
        if fault == "late":
            # Twilio is slow to create it: the client has given up by then.
            time.sleep(max(0.0, record.started + self.twilio.late_seconds - time.monotonic()))
        status, payload = self.twilio._create(account, record.form)
        if fault == "drop" and status == 201:
            self._drop()
            return 0, {}, {}
        if fault == "slow" and status == 201:
            time.sleep(self.twilio.slow_seconds)
        return status, payload, {}

    def _answer(
        self, status: int, payload: dict[str, Any], headers: dict[str, str], *, trickle: bool = False
    ) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            if trickle:
                self._trickle(b"".join(self._headers_buffer) + b"\r\n" + data)
                return
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _trickle(self, answer: bytes) -> None:
        """Write *answer* one byte at a time, until done or the client has gone."""
        self._headers_buffer: list[bytes] = []
        self.close_connection = True
        for index in range(len(answer)):
            if self.twilio._stopped.is_set():
                return
            self.connection.sendall(answer[index : index + 1])
            time.sleep(self.twilio.trickle_interval)

    def _reset(self) -> None:
        """Close with RST, the request body unread."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True

    def _drop(self) -> None:
        """Close the connection cleanly, without an answer."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        self.close_connection = True


def _handler_for(server: TwilioServer) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"twilio": server})


class ManualClock:
    """A clock for :attr:`TwilioServer.clock` that moves only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def running(**options: Any) -> Iterator[TwilioServer]:
    server = TwilioServer(**options).start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
