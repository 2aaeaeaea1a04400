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
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from smspipe import config, documents, phone, sms
from smspipe.errors import ConfigError, CredentialsError, UsageError, redact

if TYPE_CHECKING:
    from smspipe.gateway import Gateway, GatewayError

MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
SUMMARY_BODY_CHARS = 80
NO_SENDER = "no sender"
NO_SENDER_HINT = (
    "give --from or --messaging-service-sid, put \"from\" in the document, "
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
    def from_gateway(cls, exc: GatewayError, *, temporary: bool = False,
                     fatal: bool = False) -> ErrorInfo:
        return cls(message=exc.message, code=exc.code, more_info=exc.more_info,
                   temporary=temporary, fatal=fatal)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": redact(self.message),
                               "more_info": self.more_info}
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
        index = int(path[path.index("[") + 1: -1])
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
            ("flag", self.settings.flags.get("from"),
             self.settings.flags.get("messaging_service_sid")),
            ("environment", env.get(config.KEYS["from"].env or ""),
             env.get(config.KEYS["messaging_service_sid"].env or "")),
            (f"config file ({self.settings.path})", self.settings.file_values.get("from"),
             self.settings.file_values.get("messaging_service_sid")),
        ]
        out: list[tuple[str, Sender]] = []
        for label, raw_sender, raw_service in layers:
            sender = self._check_default_sender(raw_sender, label) if raw_sender else None
            service = str(raw_service) if raw_service else None
            if service and not MESSAGING_SERVICE_SID.fullmatch(service):
                raise _sender_error(label, f"messaging service SID {service!r} is not MG "
                                           "followed by 32 hex digits")
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
        document = Sender(verdict.sms.sender,
                          document_service if isinstance(document_service, str) else None)
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
            yield Result(verdict, Status.INVALID, verdict.key(),
                         error=ErrorInfo(f"{verdict.where}: {item.message}"))
            return
        for verdict in sms.check(item, self.policy):
            yield self._plan_one(verdict)

    def _plan_one(self, verdict: sms.Verdict) -> Job | Result:
        if not verdict.valid or verdict.sms is None:
            reasons = "; ".join(str(e) for e in verdict.errors)
            return Result(verdict, Status.INVALID, verdict.key(), note=reasons,
                          error=ErrorInfo(f"{verdict.where}: {reasons}"))
        sender = self.sender_for(verdict)
        credentials: config.Credentials | None = None
        try:
            credentials = self.credentials_for(verdict)
        except CredentialsError as exc:
            if self.need_credentials:
                return Result(verdict, Status.FAILED, verdict.key(), note=exc.message,
                              error=ErrorInfo(str(exc), fatal=True))
        account = credentials.account_sid if credentials else None
        message = verdict.sms
        if message.sender != sender.sender:
            message = _with_sender(message, sender.sender)
        # Without a request_id, the key is a hash of what is sent, from whom.
        key = verdict.request_id or sms.content_hash(
            _with_sender(message, sender.sender or sender.messaging_service_sid), account)
        if not sender:
            return Result(verdict, Status.INVALID, key, note=NO_SENDER,
                          error=ErrorInfo(f"{verdict.where}: {NO_SENDER}: {NO_SENDER_HINT}"))
        callback = (self._status_callback[0] or message.status_callback
                    or self._status_callback[1])
        return Job(verdict=verdict, sms=message, key=key, credentials=credentials,
                   sender=sender, status_callback=callback)


def _with_sender(message: sms.SMS, sender: str | None) -> sms.SMS:
    return sms.SMS(to=message.to, body=message.body, sender=sender,
                   media_url=message.media_url, status_callback=message.status_callback,
                   id=message.id)


def _has_credentials(parameters: Mapping[str, Any]) -> bool:
    return any(parameters.get(name) for name in ("twilio_account_sid", "twilio_auth_token",
                                                 "twilio_api_key", "twilio_api_secret"))


def _sender_error(label: str, message: str) -> UsageError | ConfigError:
    if label == "flag":
        return UsageError(message, hint="pass --from +15017122661 (E.164), a short code or an "
                                        "alphanumeric sender ID, or --messaging-service-sid MG…")
    return ConfigError(f"default sender from the {label}: {message}",
                       hint="fix it, or override it with --from")


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
    message = (f"{exc.message}; check the {credentials.method} for account "
               f"{credentials.account_sid} (from {credentials.source}); the batch was stopped")
    return ErrorInfo(message=message, code=exc.code, more_info=exc.more_info, fatal=True)


def dry_run(planned: Iterable[Job | Result]) -> Iterator[Result]:
    """Everything but the HTTP call."""
    for item in planned:
        if isinstance(item, Result):
            yield item
        else:
            yield Result(item.verdict, Status.DRY_RUN, item.key, job=item)


def deliver(planned: Iterable[Job | Result], gateways: Gateways) -> Iterator[Result]:
    """Send each job once, in order; stop at the first refusal of credentials."""
    from smspipe.gateway import AmbiguousFault, AuthRefused, Rejected, TemporaryFault

    for item in planned:
        if isinstance(item, Result):
            yield item
            continue
        job = item
        assert job.credentials is not None
        gateway = gateways.get(job.credentials)
        try:
            message = gateway.create_message(
                job.sms, sender=job.sender.sender,
                messaging_service_sid=job.sender.messaging_service_sid,
                status_callback=job.status_callback)
        except AuthRefused as exc:
            yield Result(job.verdict, Status.FAILED, job.key, job=job, attempts=1,
                         error=auth_error(exc, job.credentials))
            return
        except Rejected as exc:
            yield Result(job.verdict, Status.FAILED, job.key, job=job, attempts=1,
                         error=ErrorInfo.from_gateway(exc))
        except (TemporaryFault, AmbiguousFault) as exc:
            yield Result(job.verdict, Status.FAILED, job.key, job=job, attempts=1,
                         error=ErrorInfo.from_gateway(exc, temporary=True))
        else:
            yield Result(job.verdict, Status.SENT, job.key, job=job, sid=message.sid,
                         segments=message.segments, attempts=1)
