"""Delivery: from validated documents to messages Twilio has accepted.

:class:`Planner` turns each document into a :class:`Job` (validated exactly as
``validate`` does, credentials and sender resolved) or a final :class:`Result`
(invalid). :func:`deliver` sends the jobs and yields one :class:`Result` each.

This module knows nothing of Typer or rich, and does not import twilio: the
gateway is created through a factory only when something is sent.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from smspipe import config, documents, phone, sms
from smspipe.errors import ConfigError, CredentialsError, UsageError, redact

if TYPE_CHECKING:
    from smspipe.gateway import Gateway, GatewayError, SentMessage
    from smspipe.ledger import Ledger, Row

MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
SUMMARY_BODY_CHARS = 80
NO_SENDER = "no sender"
NO_SENDER_HINT = (
    'give --from or --messaging-service-sid, put "from" in the document, '
    "set SMSPIPE_FROM or SMSPIPE_MESSAGING_SERVICE_SID, or set `from` or "
    "`messaging_service_sid` in the config file"
)


class Status(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    INVALID = "invalid"
    DRY_RUN = "dry-run"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The ``error`` of a result: Twilio's code, message and docs link."""

    message: str
    code: int | None = None
    more_info: str | None = None
    #: a temporary fault: a later run should deliver it
    temporary: bool = False
    #: the credentials were refused or are missing (exit 2)
    fatal: bool = False

    @classmethod
    def from_gateway(cls, exc: GatewayError, *, temporary: bool = False, fatal: bool = False) -> ErrorInfo:
        return cls(
            message=exc.message, code=exc.code, more_info=exc.more_info, temporary=temporary, fatal=fatal
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": redact(self.message),
            "more_info": self.more_info,
        }
        if self.temporary:
            out["temporary"] = True
        return out


@dataclass(frozen=True, slots=True)
class Sender:
    """Who a message is sent from: a number/ID, a Messaging Service, or both."""

    sender: str | None = None
    messaging_service_sid: str | None = None

    def __bool__(self) -> bool:
        return bool(self.sender or self.messaging_service_sid)


@dataclass(frozen=True, slots=True)
class Job:
    """A valid document, ready to send."""

    verdict: sms.Verdict
    sms: sms.SMS
    key: str
    credentials: config.Credentials | None
    sender: Sender
    status_callback: str | None


@dataclass(slots=True)
class Result:
    """What became of one document."""

    verdict: sms.Verdict
    status: Status
    key: str
    job: Job | None = None
    sid: str | None = None
    segments: int | None = None
    error: ErrorInfo | None = None
    #: why it was skipped, or where the sid came from
    note: str | None = None
    attempts: int = 0

    @property
    def to(self) -> str | None:
        return self.verdict.sms.to if self.verdict.sms else None

    @property
    def delivered(self) -> bool:
        return self.status in (Status.SENT, Status.SKIPPED)

    @property
    def summary(self) -> str:
        """The hub's wording: ``SMS "Order R12345 was shipped!" sent to +14155552671``."""
        message = self.verdict.sms
        if message is None:
            first = self.error.message if self.error else "invalid document"
            return f"invalid: {first}"
        text = f"SMS {quote_body(message.body)}"
        if self.status == Status.SENT:
            return f"{text} sent to {message.to}"
        if self.status == Status.SKIPPED:
            return f"{text} already sent to {message.to}" + (f" ({self.note})" if self.note else "")
        if self.status == Status.DRY_RUN:
            return f"{text} would be sent to {message.to}"
        if self.status == Status.INVALID:
            return f"{text} to {message.to} not sent: {self.note or 'invalid'}"
        reason = self.note or (self.error.message if self.error else "not sent")
        return f"{text} to {message.to} failed: {reason}"

    def record(self) -> dict[str, Any]:
        """The NDJSON line ``send`` prints for this document."""
        out: dict[str, Any] = {
            "request_id": self.key,
            "status": self.status.value,
            "summary": redact(self.summary),
            "sid": self.sid,
            "to": self.to,
            "segments": self.segments if self.segments is not None else self.verdict.segments,
            "error": self.error.as_dict() if self.error else None,
            "source": self.verdict.source,
            "line": self.verdict.line,
        }
        if self.verdict.index is not None:
            out["index"] = self.verdict.index
        if self.job is not None:
            out["from"] = self.job.sender.sender
            if self.job.sender.messaging_service_sid:
                out["messaging_service_sid"] = self.job.sender.messaging_service_sid
        if self.status == Status.INVALID and self.verdict.errors:
            out["errors"] = [issue.as_dict() for issue in self.verdict.errors]
        if self.status == Status.DRY_RUN and self.job is not None:
            out["body"] = self.job.sms.body
            out["encoding"] = self.verdict.encoding
            if self.job.sms.media_url:
                out["media_url"] = list(self.job.sms.media_url)
            if self.job.status_callback:
                out["status_callback"] = self.job.status_callback
        if self.note and self.status == Status.SKIPPED:
            out["note"] = self.note
        return out

    def failed_document(self) -> dict[str, Any] | None:
        """The original document (or this item of a collection), for ``--failed``."""
        original = self.verdict.original
        if not isinstance(original, dict):
            return None
        path = self.verdict.path
        if not path.endswith("]"):
            return original
        key = path[: path.index("[")]
        index = int(path[path.index("[") + 1 : -1])
        items = original.get(key)
        if not isinstance(items, list) or index >= len(items):
            return original
        single = {k: v for k, v in original.items() if k != key}
        if self.verdict.request_id is not None:
            single["request_id"] = self.verdict.request_id
        single[key] = items[index]
        return single


def quote_body(body: str) -> str:
    flat = " ".join(body.split())
    if len(flat) > SUMMARY_BODY_CHARS:
        flat = flat[: SUMMARY_BODY_CHARS - 1] + "…"
    return f'"{flat}"'


# --- planning ----------------------------------------------------------------


@dataclass(slots=True)
class Planner:
    """Validates documents and resolves, for each, credentials, sender and key."""

    settings: config.Settings
    policy: sms.Policy
    #: resolve credentials even when not sending (dry-run: only for the key)
    need_credentials: bool = True
    _default_credentials: config.Credentials | None = None
    _credentials_error: CredentialsError | None = None
    _defaults: list[tuple[str, Sender]] = field(default_factory=list)
    _status_callback: tuple[str | None, str | None] = (None, None)

    def __post_init__(self) -> None:
        self._defaults = self._default_senders()
        flag_callback = self.settings.flags.get("status_callback")
        file_callback = self.settings.file_values.get("status_callback")
        self._status_callback = (flag_callback, file_callback)
        try:
            self._default_credentials = config.resolve_credentials(self.settings)
        except CredentialsError as exc:
            self._credentials_error = exc

    @property
    def default_credentials(self) -> config.Credentials | None:
        return self._default_credentials

    def _default_senders(self) -> list[tuple[str, Sender]]:
        """The sender layers other than the document: flags, environment, config file."""
        env = self.settings.env
        layers = [
            ("flag", self.settings.flags.get("from"), self.settings.flags.get("messaging_service_sid")),
            (
                "environment",
                env.get(config.KEYS["from"].env or ""),
                env.get(config.KEYS["messaging_service_sid"].env or ""),
            ),
            (
                f"config file ({self.settings.path})",
                self.settings.file_values.get("from"),
                self.settings.file_values.get("messaging_service_sid"),
            ),
        ]
        out: list[tuple[str, Sender]] = []
        for label, raw_sender, raw_service in layers:
            sender = self._check_default_sender(raw_sender, label) if raw_sender else None
            service = str(raw_service) if raw_service else None
            if service and not MESSAGING_SERVICE_SID.fullmatch(service):
                raise _sender_error(
                    label, f"messaging service SID {service!r} is not MG followed by 32 hex digits"
                )
            out.append((label, Sender(sender, service)))
        return out

    def _check_default_sender(self, raw: Any, label: str) -> str:
        result = phone.check_sender(str(raw), self.policy.default_region)
        if result.e164 is None:
            raise _sender_error(label, result.error or f"{raw!r} is not a valid sender")
        return result.e164

    def sender_for(self, verdict: sms.Verdict) -> Sender:
        """Precedence: flags > the document (from, parameters) > environment > config."""
        assert verdict.sms is not None
        document_service = verdict.parameters.get("twilio_messaging_service_sid")
        document = Sender(verdict.sms.sender, document_service if isinstance(document_service, str) else None)
        flags, *rest = self._defaults
        for _, candidate in (flags, ("document", document), *rest):
            if candidate:
                return candidate
        return Sender()

    def credentials_for(self, verdict: sms.Verdict) -> config.Credentials | None:
        """The document's credentials; raises CredentialsError when there are none."""
        if not _has_credentials(verdict.parameters):
            if self._default_credentials is not None:
                return self._default_credentials
            assert self._credentials_error is not None
            raise self._credentials_error
        return config.resolve_credentials(self.settings, verdict.parameters)

    def plan(self, item: documents.Document | documents.Problem) -> Iterator[Job | Result]:
        """One Job (ready to send) or Result (invalid, no credentials) per SMS in *item*."""
        if isinstance(item, documents.Problem):
            verdict = sms.problem_verdict(item)
            yield Result(
                verdict, Status.INVALID, verdict.key(), error=ErrorInfo(f"{verdict.where}: {item.message}")
            )
            return
        for verdict in sms.check(item, self.policy):
            yield self._plan_one(verdict)

    def _plan_one(self, verdict: sms.Verdict) -> Job | Result:
        if not verdict.valid or verdict.sms is None:
            reasons = "; ".join(str(e) for e in verdict.errors)
            return Result(
                verdict,
                Status.INVALID,
                verdict.key(),
                note=reasons,
                error=ErrorInfo(f"{verdict.where}: {reasons}"),
            )
        sender = self.sender_for(verdict)
        credentials: config.Credentials | None = None
        try:
            credentials = self.credentials_for(verdict)
        except CredentialsError as exc:
            if self.need_credentials:
                return Result(
                    verdict,
                    Status.FAILED,
                    verdict.key(),
                    note=exc.message,
                    error=ErrorInfo(str(exc), fatal=True),
                )
        account = credentials.account_sid if credentials else None
        message = verdict.sms
        if message.sender != sender.sender:
            message = _with_sender(message, sender.sender)
        # Without a request_id, the key is a hash of what is sent, from whom.
        key = verdict.request_id or sms.content_hash(
            _with_sender(message, sender.sender or sender.messaging_service_sid), account
        )
        if not sender:
            return Result(
                verdict,
                Status.INVALID,
                key,
                note=NO_SENDER,
                error=ErrorInfo(f"{verdict.where}: {NO_SENDER}: {NO_SENDER_HINT}"),
            )
        callback = self._status_callback[0] or message.status_callback or self._status_callback[1]
        return Job(
            verdict=verdict,
            sms=message,
            key=key,
            credentials=credentials,
            sender=sender,
            status_callback=callback,
        )


def _with_sender(message: sms.SMS, sender: str | None) -> sms.SMS:
    return sms.SMS(
        to=message.to,
        body=message.body,
        sender=sender,
        media_url=message.media_url,
        status_callback=message.status_callback,
        id=message.id,
    )


def _has_credentials(parameters: Mapping[str, Any]) -> bool:
    return any(
        parameters.get(name)
        for name in ("twilio_account_sid", "twilio_auth_token", "twilio_api_key", "twilio_api_secret")
    )


def _sender_error(label: str, message: str) -> UsageError | ConfigError:
    if label == "flag":
        return UsageError(
            message,
            hint="pass --from +15017122661 (E.164), a short code or an "
            "alphanumeric sender ID, or --messaging-service-sid MG…",
        )
    return ConfigError(
        f"default sender from the {label}: {message}", hint="fix it, or override it with --from"
    )


# --- gateways ----------------------------------------------------------------

GatewayFactory = Callable[[config.Credentials], "Gateway"]


class Gateways:
    """One Gateway per distinct credentials, created on first use."""

    def __init__(self, factory: GatewayFactory) -> None:
        self._factory = factory
        self._gateways: dict[tuple[str, str, str], Gateway] = {}
        self._lock = threading.Lock()

    def get(self, credentials: config.Credentials) -> Gateway:
        key = (credentials.account_sid, credentials.username, credentials.password)
        with self._lock:
            gateway = self._gateways.get(key)
            if gateway is None:
                gateway = self._gateways[key] = self._factory(credentials)
            return gateway

    def close(self) -> None:
        with self._lock:
            for gateway in self._gateways.values():
                gateway.close()
            self._gateways.clear()


# --- delivery ----------------------------------------------------------------


@dataclass(slots=True)
class Totals:
    """Counts by status, and what decides the exit code."""

    counts: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    temporary: int = 0
    #: the first missing-credentials or refused-credentials message (exit 2)
    fatal_message: str | None = None
    interrupted: bool = False
    #: some document had no sender (the hint is printed once, at the end)
    no_sender: bool = False

    def add(self, result: Result) -> None:
        self.counts[result.status] += 1
        if result.note == NO_SENDER:
            self.no_sender = True
        if result.error is not None and result.status == Status.FAILED:
            if result.error.temporary:
                self.temporary += 1
            if result.error.fatal and self.fatal_message is None:
                self.fatal_message = result.error.message

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        parts = [f"{self.counts[s]} {s.value}" for s in Status if self.counts[s]]
        noun = "document" if self.total == 1 else "documents"
        text = f"{self.total} {noun}" + (": " + ", ".join(parts) if parts else "")
        if self.temporary:
            text += f" ({self.temporary} undelivered after temporary faults: run again later)"
        return text


def auth_error(exc: GatewayError, credentials: config.Credentials) -> ErrorInfo:
    """Credentials refused: say which ones, and that the batch stopped."""
    message = (
        f"{exc.message}; check the {credentials.method} for account "
        f"{credentials.account_sid} (from {credentials.source}); the batch was stopped"
    )
    return ErrorInfo(message=message, code=exc.code, more_info=exc.more_info, fatal=True)


def dry_run(planned: Iterable[Job | Result]) -> Iterator[Result]:
    """Everything but the HTTP call."""
    for item in planned:
        if isinstance(item, Result):
            yield item
        else:
            yield Result(item.verdict, Status.DRY_RUN, item.key, job=item)


# --- the engine ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineOptions:
    concurrency: int = 4
    #: at most this many requests started in any one second (None: no limit)
    rate: float | None = None
    #: retries of a temporary fault per message
    retries: int = 5
    #: the longest wait between two attempts, in seconds
    max_wait: float = 60.0
    #: send even what the ledger says was sent
    force: bool = False
    #: first backoff step, in seconds (doubles each retry, full jitter)
    backoff: float = 0.5
    #: lookups of the message log per reconciliation (GETs, safe to repeat)
    lookups: int = 3


class RateLimiter:
    """Never more than *rate* starts in any window of one second.

    Each start reserves a moment: no earlier than the start ``floor(rate)``
    places before it plus the window, so that any ``floor(rate) + 1``
    consecutive starts span more than a second. Below one per second the
    window stretches to ``1 / rate`` seconds. The window has a small margin so
    that network jitter cannot crowd rate + 1 arrivals into one second at
    Twilio's end. A 429's Retry-After holds every start until it has passed.
    """

    MARGIN = 0.05

    def __init__(self, rate: float | None, *, clock: Callable[[], float] | None = None) -> None:
        import time
        from collections import deque

        self.rate = rate
        self._clock = clock or time.monotonic
        self._capacity = max(1, int(rate)) if rate else 0
        self._window = (1.0 / rate if rate and rate < 1 else 1.0) + self.MARGIN
        self._starts: deque[float] = deque(maxlen=max(self._capacity, 1))
        self._hold_until = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        """No start before *seconds* from now (a 429's Retry-After)."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + seconds)

    def reserve(self) -> float:
        """Reserve the next start; return how long to wait for it (seconds)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._hold_until)
            if self._capacity:
                if len(self._starts) == self._capacity:
                    start = max(start, self._starts[0] + self._window)
                self._starts.append(start)
            return start - now

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for a start; False if *stop* was set meanwhile."""
        if stop.is_set():
            return False
        delay = self.reserve()
        if delay > 0:
            return not stop.wait(delay)
        return True


@dataclass(slots=True)
class Progress:
    """Live counters for a progress display (read from another thread)."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    invalid: int = 0
    retrying: int = 0
    in_flight: int = 0
    started: float = 0.0

    def count(self, result: Result) -> None:
        if result.status == Status.SENT:
            self.sent += 1
        elif result.status == Status.SKIPPED:
            self.skipped += 1
        elif result.status == Status.FAILED:
            self.failed += 1
        elif result.status == Status.INVALID:
            self.invalid += 1


class _OtherKeys:
    """Sids the ledger records under another key: never taken as this message."""

    def __init__(self, ledger: Ledger | None, key: str) -> None:
        self._ledger = ledger
        self._key = key

    def __contains__(self, sid: object) -> bool:
        if self._ledger is None or not isinstance(sid, str):
            return False
        owner = self._ledger.sid_owner(sid)
        return owner is not None and owner != self._key


@dataclass(frozen=True, slots=True)
class _Lookup:
    """What the message log said: found (a message), absent, or could not tell."""

    message: SentMessage | None = None
    failed: GatewayError | None = None

    @property
    def found(self) -> bool:
        return self.message is not None


class Engine:
    """Sends jobs with bounded concurrency, a rate limit, retries and the ledger.

    :meth:`submit` blocks while the pipeline is full, so memory stays
    constant whatever the input's length; results are handed to *on_result*
    (from worker threads, one at a time) as they complete.
    """

    def __init__(
        self,
        options: EngineOptions,
        gateways: Gateways,
        ledger: Ledger | None,
        on_result: Callable[[Result], None],
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        import random
        from concurrent.futures import ThreadPoolExecutor

        self.options = options
        self.gateways = gateways
        self.ledger = ledger
        self.progress = Progress()
        self.limiter = RateLimiter(options.rate)
        self._on_result = on_result
        self._result_lock = threading.Lock()
        self._stop = threading.Event()
        self._interrupted = False
        self._stop_reason: ErrorInfo | None = None
        self._random = random.Random()
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(options.concurrency * 2)
        self._executor = ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix="smspipe-send"
        )

    # --- control ---------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def interrupted(self) -> bool:
        return self._interrupted

    def interrupt(self) -> None:
        """Ctrl-C: start nothing new; requests in flight finish and are recorded."""
        self._interrupted = True
        self._stop.set()

    def _halt(self, reason: ErrorInfo) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def submit(self, job: Job) -> bool:
        """Queue *job*; blocks while the pipeline is full. False once the batch stopped."""
        while not self._slots.acquire(timeout=0.1):
            if self._stop.is_set():
                break
        else:
            if not self._stop.is_set():
                future = self._executor.submit(self._run, job)
                future.add_done_callback(lambda _: self._slots.release())
                return True
            self._slots.release()
        self.report(self._not_sent(job))
        return False

    def close(self) -> None:
        """Wait for every job in flight; then the ledger is consistent."""
        self._executor.shutdown(wait=True)

    def report(self, result: Result) -> None:
        """Hand a result to on_result (also for documents that were never jobs)."""
        with self._result_lock:
            self.progress.count(result)
            self._on_result(result)

    def _wait(self, seconds: float) -> bool:
        """Sleep; False if the batch stopped meanwhile (woken at once)."""
        if seconds <= 0:
            return not self._stop.is_set()
        if self._sleep is not None:
            self._sleep(seconds)
            return not self._stop.is_set()
        return not self._stop.wait(seconds)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Full jitter: uniform(0, min(max_wait, backoff * 2**attempt)), at least Retry-After.

        None when Retry-After is longer than --max-wait: the message waits for
        the next run rather than for Twilio here.
        """
        ceiling = min(self.options.max_wait, self.options.backoff * 2 ** max(attempt - 1, 0))
        delay = self._random.uniform(0, ceiling)
        if retry_after is not None:
            if retry_after > self.options.max_wait:
                return None
            delay = max(delay, retry_after)
        return delay

    # --- one job -----------------------------------------------------------------

    def _run(self, job: Job) -> None:
        try:
            result = self._deliver(job)
        except Exception as exc:  # a bug: report it with the document, keep the batch going
            result = Result(
                job.verdict,
                Status.FAILED,
                job.key,
                job=job,
                error=ErrorInfo(f"internal error: {type(exc).__name__}: {exc}", temporary=True),
            )
        self.report(result)

    def _not_sent(self, job: Job) -> Result:
        reason = self._stop_reason
        if self._interrupted or reason is None:
            message = "not sent: interrupted"
        else:
            message = "not sent: the batch stopped because Twilio refused the credentials"
        return Result(
            job.verdict,
            Status.FAILED,
            job.key,
            job=job,
            note=message,
            error=ErrorInfo(message, temporary=True),
        )

    def _deliver(self, job: Job) -> Result:
        from smspipe.ledger import ClaimResult, Entry

        if self._stop.is_set():
            return self._not_sent(job)
        assert job.credentials is not None
        gateway = self.gateways.get(job.credentials)
        entry = Entry(
            key=job.key,
            account_sid=job.credentials.account_sid,
            to=job.sms.to,
            sender=job.sender.sender,
            messaging_service_sid=job.sender.messaging_service_sid,
            body=job.sms.body,
        )
        previous: Row | None = None
        since = _now()
        if self.ledger is not None:
            claim = self.ledger.claim(entry, force=self.options.force)
            if claim.result == ClaimResult.ALREADY_SENT:
                assert claim.row is not None
                return Result(
                    job.verdict,
                    Status.SKIPPED,
                    job.key,
                    job=job,
                    sid=claim.row.sid,
                    segments=claim.row.segments,
                )
            if claim.result == ClaimResult.BUSY:
                return Result(
                    job.verdict, Status.SKIPPED, job.key, job=job, note=f"being sent by {claim.holder}"
                )
            if claim.result == ClaimResult.STALE:
                assert claim.row is not None
                stale = self._reconcile_row(claim.row, gateway)
                if stale is not None:
                    return stale.as_result(job)
                self.ledger.restart(entry)
            else:
                previous = claim.row
        return self._send(job, gateway, previous, since)

    def _send(self, job: Job, gateway: Gateway, previous: Row | None, since: datetime) -> Result:
        """Create the message: retry what may pass, never resend what may exist unseen."""
        from smspipe.gateway import AmbiguousFault, AuthRefused, Rejected, TemporaryFault

        attempt = 0
        retrying = False
        try:
            while True:
                if not self.limiter.acquire(self._stop):
                    self._release(job, previous)
                    return self._not_sent(job)
                attempt += 1
                self.progress.in_flight += 1
                fault: GatewayError
                try:
                    message = gateway.create_message(
                        job.sms,
                        sender=job.sender.sender,
                        messaging_service_sid=job.sender.messaging_service_sid,
                        status_callback=job.status_callback,
                    )
                except Rejected as exc:
                    if self.ledger is not None:
                        self.ledger.mark_failed(job.key, exc.code, exc.message)
                    return Result(
                        job.verdict,
                        Status.FAILED,
                        job.key,
                        job=job,
                        attempts=attempt,
                        error=ErrorInfo.from_gateway(exc),
                    )
                except AuthRefused as exc:
                    assert job.credentials is not None
                    self._release(job, previous)
                    error = auth_error(exc, job.credentials)
                    self._halt(error)
                    return Result(job.verdict, Status.FAILED, job.key, job=job, attempts=attempt, error=error)
                except TemporaryFault as exc:
                    if exc.status == 429 and exc.retry_after:
                        self.limiter.hold(exc.retry_after)
                    fault, maybe_created = exc, exc.may_have_created
                    delay = self.backoff(attempt, exc.retry_after)
                except AmbiguousFault as exc:
                    fault, maybe_created = exc, True
                    delay = self.backoff(attempt)
                else:
                    if self.ledger is not None:
                        self.ledger.mark_sent(job.key, message.sid, message.segments)
                    return Result(
                        job.verdict,
                        Status.SENT,
                        job.key,
                        job=job,
                        sid=message.sid,
                        segments=message.segments,
                        attempts=attempt,
                    )
                finally:
                    self.progress.in_flight -= 1
                if maybe_created:
                    # The message may exist: wait as for a retry (the log may lag),
                    # then look, and resend only if it is not there.
                    if delay is not None:
                        self._wait(delay)
                    found = self._lookup(job, gateway, since)
                    if found.found or found.failed:
                        return self._settle(job, found, attempt, fault)
                    delay = 0.0 if delay is not None else None
                # The message certainly does not exist.
                if attempt > self.options.retries or delay is None or self._stop.is_set():
                    self._release(job, previous)
                    if self._stop.is_set():
                        return self._not_sent(job)
                    return Result(
                        job.verdict,
                        Status.FAILED,
                        job.key,
                        job=job,
                        attempts=attempt,
                        error=ErrorInfo.from_gateway(fault, temporary=True),
                        note=_undelivered_note(fault, attempt, delay is None),
                    )
                if not retrying:
                    retrying = True
                    self.progress.retrying += 1
                if not self._wait(delay):
                    self._release(job, previous)
                    return self._not_sent(job)
        finally:
            if retrying:
                self.progress.retrying -= 1

    def _settle(self, job: Job, found: _Lookup, attempt: int, fault: GatewayError) -> Result:
        """After an ambiguous failure: the log had the message, or could not tell."""
        if found.message is not None:
            if self.ledger is not None:
                self.ledger.mark_sent(job.key, found.message.sid, found.message.segments)
            return Result(
                job.verdict,
                Status.SENT,
                job.key,
                job=job,
                sid=found.message.sid,
                segments=found.message.segments,
                attempts=attempt,
                note="found in Twilio's message log after: " + fault.message,
            )
        lookup_error = found.failed
        assert lookup_error is not None
        message = (
            f"{fault.message}; the message may have been created and Twilio's "
            f"message log could not be checked ({lookup_error.message}): the next run "
            "checks again before sending"
        )
        if self.ledger is not None:
            self.ledger.mark_unknown(job.key, message)
        return Result(
            job.verdict,
            Status.FAILED,
            job.key,
            job=job,
            attempts=attempt,
            error=ErrorInfo(message, code=fault.code, more_info=fault.more_info, temporary=True),
        )

    def _release(self, job: Job, previous: Row | None) -> None:
        if self.ledger is not None:
            self.ledger.release(job.key, previous)

    def _lookup(
        self,
        job: Job,
        gateway: Gateway,
        since: datetime,
        *,
        to: str | None = None,
        sender: str | None = None,
        body: str | None = None,
    ) -> _Lookup:
        """Look for the message in Twilio's log (a few tries: a GET is safe to repeat)."""
        from smspipe.gateway import AuthRefused, GatewayError

        last: GatewayError | None = None
        for attempt in range(1, self.options.lookups + 1):
            try:
                found = gateway.find_messages(
                    to or job.sms.to,
                    sender if to else job.sender.sender,
                    body if body is not None else job.sms.body,
                    since,
                    exclude=_OtherKeys(self.ledger, job.key),
                )
            except AuthRefused as exc:
                assert job.credentials is not None
                self._halt(auth_error(exc, job.credentials))
                return _Lookup(failed=exc)
            except GatewayError as exc:
                last = exc
                if attempt < self.options.lookups and not self._wait(self.backoff(attempt) or 0):
                    break
                continue
            return _Lookup(message=found)
        return _Lookup(failed=last)

    # --- rows left by dead runs ----------------------------------------------------

    def _reconcile_row(self, row: Row, gateway: Gateway) -> _Settled | None:
        """A row a dead run left pending or unknown (now ours): what became of it?

        Returns the settled outcome, or None when the message was not created
        (the caller sends it).
        """
        assert self.ledger is not None
        since = datetime.fromtimestamp(row.attempted_at or 0, UTC)
        probe = Job(
            verdict=_placeholder_verdict(),
            sms=sms.SMS(to=row.to, body=row.body or ""),
            key=row.key,
            credentials=gateway.credentials,
            sender=Sender(row.sender, row.messaging_service_sid),
            status_callback=None,
        )
        found = self._lookup(probe, gateway, since)
        if found.message is not None:
            self.ledger.mark_sent(row.key, found.message.sid, found.message.segments)
            return _Settled(
                Status.SKIPPED,
                found.message.sid,
                found.message.segments,
                note="found in Twilio's message log: sent by an earlier run that was interrupted",
            )
        if found.failed is not None:
            message = (
                "an earlier run was interrupted while sending it, and Twilio's message "
                f"log could not be checked ({found.failed.message}): not sent again yet"
            )
            self.ledger.mark_unknown(row.key, message)
            return _Settled(
                Status.FAILED, None, None, error=ErrorInfo(message, code=found.failed.code, temporary=True)
            )
        return None

    def reconcile_open_rows(self, credentials: config.Credentials | None) -> dict[str, int]:
        """Before anything is sent: settle rows that dead runs left pending or unknown.

        Rows of other accounts (whose credentials came with their documents)
        are settled when their document comes through.
        """
        counts = {"found": 0, "absent": 0, "unknown": 0, "skipped": 0}
        if self.ledger is None:
            return counts
        rows = self.ledger.open_rows()
        if not rows:
            return counts
        if credentials is None:
            counts["skipped"] = len(rows)
            return counts
        gateway = self.gateways.get(credentials)
        mine = [row for row in rows if row.account_sid in (None, credentials.account_sid)]
        counts["skipped"] = len(rows) - len(mine)

        def settle(row: Row) -> str:
            assert self.ledger is not None
            if not self.ledger.adopt(row):
                return "skipped"
            outcome = self._reconcile_row(row, gateway)
            if outcome is None:
                self.ledger.release(row.key)
                return "absent"
            return "found" if outcome.status == Status.SKIPPED else "unknown"

        for outcome in self._executor.map(settle, mine):
            counts[outcome] += 1
        return counts


@dataclass(frozen=True, slots=True)
class _Settled:
    status: Status
    sid: str | None
    segments: int | None
    note: str | None = None
    error: ErrorInfo | None = None

    def as_result(self, job: Job) -> Result:
        return Result(
            job.verdict,
            self.status,
            job.key,
            job=job,
            sid=self.sid,
            segments=self.segments,
            note=self.note,
            error=self.error,
        )


def _placeholder_verdict() -> sms.Verdict:
    return sms.Verdict(
        source="ledger", line=0, index=None, path="", request_id=None, parameters={}, original=None
    )


def _undelivered_note(fault: GatewayError, attempts: int, waited_too_long: bool) -> str:
    if waited_too_long:
        return f"not sent: Twilio asked to wait longer than --max-wait ({fault.message})"
    tries = "once" if attempts == 1 else f"{attempts} times"
    return f"not sent after trying {tries}: {fault.message}; run again later"


def _now() -> datetime:
    return datetime.now(UTC)
