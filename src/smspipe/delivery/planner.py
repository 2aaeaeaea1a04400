"""Documents -> jobs: validated exactly as ``validate`` does, sender, credentials and key resolved.

A message's key is the document's ``request_id`` (item ``i`` of a collection:
``request_id[i]``), else a hash of the document's own content: recipient, the
document's own ``from`` (if any), body and media. Never credentials, never a
default sender: a dry run and a real run, with or without credentials, derive
the same key, and a changed default sender is not a different message.

Ledgers written by smspipe before the ledger package (schema 1) keyed such
documents by a hash that also held the account and the resolved sender; a job
carries those keys too (``legacy_keys``, one per account the ledger names) so
that an upgrade never sends anything again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from smspipe import config, documents, phone, sms
from smspipe.config.precedence import DOCUMENT, FLAG
from smspipe.delivery.results import NO_SENDER, ErrorInfo, Result, Status, no_sender_hint
from smspipe.errors import ConfigError, CredentialsError, UsageError
from smspipe.spelling import setting

MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")


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
    body_sha256: str
    media_sha256: str
    #: schema 1 keys this message may be recorded under (documents without request_id)
    legacy_keys: tuple[str, ...] = ()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def media_digest(media_url: tuple[str, ...]) -> str:
    return sha256(json.dumps(list(media_url), separators=(",", ":")))


def content_key(message: sms.SMS) -> str:
    """The key of a document without request_id: its own content, nothing configured."""
    material = json.dumps(
        ["sms/2", message.to, message.sender, message.body, list(message.media_url)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return "sha256:" + sha256(material)[:32]


def legacy_key(message: sms.SMS, sender: Sender, account: str | None) -> str:
    """The key schema 1 gave a document without request_id (account and resolved sender in it)."""
    resolved = sms.SMS(
        to=message.to,
        body=message.body,
        sender=sender.sender or sender.messaging_service_sid,
        media_url=message.media_url,
    )
    return sms.content_hash(resolved, account)


@dataclass(slots=True)
class Planner:
    """Validates documents and resolves, for each, credentials, sender and key."""

    settings: config.Settings
    policy: sms.Policy
    #: resolve credentials (a real run); a dry run needs none
    need_credentials: bool = True
    #: accounts of the ledger's schema 1 content-hash keys (see legacy_keys)
    legacy_accounts: tuple[str | None, ...] = ()
    _default_credentials: config.Credentials | None = None
    #: why there are no default credentials (a string: a stored exception re-raised
    #: for every document would grow its traceback each time)
    _no_credentials: tuple[str, str | None] | None = None
    #: the run's own senders, checked once, by the kind of source they came from
    _senders: dict[str, Sender] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._senders = {
            choice.kind: _checked_sender(choice, self.policy)
            for choice in config.sender_choices(self.settings)
        }
        if not self.need_credentials:
            return
        try:
            self._default_credentials = config.resolve_credentials(self.settings, documents=True)
        except CredentialsError as exc:
            self._no_credentials = (exc.message, exc.hint)

    @property
    def default_credentials(self) -> config.Credentials | None:
        return self._default_credentials

    def sender_for(self, verdict: sms.Verdict) -> Sender:
        """The sender, by the one precedence (config.resolve_sender): the caller's >
        the document's (from, parameters) > environment > config file."""
        assert verdict.sms is not None
        choice = config.resolve_sender(self.settings, verdict.sms.sender, verdict.parameters)
        if choice is None:
            return Sender()
        if choice.kind == DOCUMENT:  # its from was checked with the document
            return Sender(choice.sender, choice.messaging_service_sid)
        return self._senders[choice.kind]

    def credentials_for(self, verdict: sms.Verdict) -> config.Credentials | ErrorInfo:
        """The document's credentials, or why there are none (a fatal error: exit 2)."""
        if _has_credentials(verdict.parameters):
            try:
                return config.resolve_credentials(self.settings, verdict.parameters)
            except CredentialsError as exc:
                return ErrorInfo(str(exc), fatal=True)
        if self._default_credentials is not None:
            return self._default_credentials
        message, hint = self._no_credentials or ("no Twilio credentials", None)
        return ErrorInfo(f"{message}: {hint}" if hint else message, fatal=True)

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
        message = verdict.sms
        sender = self.sender_for(verdict)
        key = verdict.request_id or content_key(message)
        if not sender:
            # A setup problem, not bad data: said once, exit 2 (as missing credentials are).
            return Result(
                verdict,
                Status.FAILED,
                key,
                note=NO_SENDER,
                error=ErrorInfo(f"{NO_SENDER}: {no_sender_hint()}", fatal=True),
            )
        credentials: config.Credentials | None = None
        if self.need_credentials:
            found = self.credentials_for(verdict)
            if isinstance(found, ErrorInfo):
                return Result(verdict, Status.FAILED, key, note=found.message, error=found)
            credentials = found
        legacy: tuple[str, ...] = ()
        if verdict.request_id is None and self.legacy_accounts:
            legacy = tuple(legacy_key(message, sender, account) for account in self.legacy_accounts)
        if message.sender != sender.sender:
            message = message._replace(sender=sender.sender)
        callback = self.settings.for_document("status_callback", message.status_callback)
        return Job(
            verdict=verdict,
            sms=message,
            key=key,
            credentials=credentials,
            sender=sender,
            status_callback=callback,
            body_sha256=sha256(message.body),
            media_sha256=media_digest(message.media_url),
            legacy_keys=legacy,
        )


def _has_credentials(parameters: Mapping[str, Any]) -> bool:
    return any(
        parameters.get(name)
        for name in ("twilio_account_sid", "twilio_auth_token", "twilio_api_key", "twilio_api_secret")
    )


def _checked_sender(choice: config.SenderChoice, policy: sms.Policy) -> Sender:
    """A sender the run was given (not a document's), checked: an error names its source."""
    sender = None
    if choice.sender:
        result = phone.check_sender(choice.sender, policy.default_region)
        if result.e164 is None:
            raise _sender_error(choice, result.error or f"{choice.sender!r} is not a valid sender")
        sender = result.e164
    service = choice.messaging_service_sid
    if service and not MESSAGING_SERVICE_SID.fullmatch(service):
        raise _sender_error(choice, f"messaging service SID {service!r} is not MG followed by 32 hex digits")
    return Sender(sender, service)


def _sender_error(choice: config.SenderChoice, message: str) -> UsageError | ConfigError:
    if choice.kind == FLAG:
        return UsageError(
            message,
            hint=f"pass {setting('from')} +15017122661 (E.164), a short code or an "
            f"alphanumeric sender ID, or {setting('messaging_service_sid')} MG…",
        )
    return ConfigError(
        f"default sender from the {choice.source}: {message}",
        hint=f"fix it, or override it with {setting('from')}",
    )
