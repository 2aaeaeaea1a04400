"""The Twilio gateway: the one module that talks to Twilio, and the only one that imports twilio.

:class:`AsyncGateway`, on asyncio, over the official ``twilio`` library:
twilio's async interface (``create_async``, ``stream_async``, ``fetch_async``)
over aiohttp, through our own ``AsyncHttpClient``
(:mod:`smspipe._aiohttp_transport`). Its ``timeout`` bounds the whole request.
:func:`verify_account` (and :func:`verify_account_async`) fetch the account
the credentials belong to.

``twilio`` and ``aiohttp`` are imported inside the constructor, so importing
this module costs nothing: ``send --dry-run``, ``validate`` and ``translate``
never load them.

Every failure of a call becomes one of five exceptions, by what it means for
delivery rather than by how it happened:

- :class:`Rejected`: Twilio refused the request for good (a 4xx); no message was
  created and retrying cannot help.
- :class:`AuthRefused`: the credentials were refused (401 / 20003); stop the batch.
- :class:`EndpointMisconfigured`: ``api_url`` does not lead to Twilio's API (it
  redirects, or a GET is answered with something other than Twilio's JSON);
  stop the batch, exit 2, as for refused credentials.
- :class:`TemporaryFault`: a fault that may pass (429, 5xx, a connection that
  could not be opened). ``may_have_created`` is set for 500/502/504, after
  which the message log must be checked before a retry.
- :class:`AmbiguousFault`: the request was sent but no answer came back (a
  timeout, a dropped connection): the message may exist; never resend it
  before looking it up in the message log.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from smspipe._smart_encoding import TRIAL_PREFIX, same_message, smart_encode
from smspipe.config import Credentials
from smspipe.errors import redact, register_secret
from smspipe.sms import SMS

__all__ = [
    "TRIAL_PREFIX",
    "AmbiguousFault",
    "AsyncGateway",
    "AuthRefused",
    "EndpointMisconfigured",
    "GatewayError",
    "MessageState",
    "Rejected",
    "SentMessage",
    "TemporaryFault",
    "same_message",
    "smart_encode",
    "verify_account",
    "verify_account_async",
]

TWILIO_BASE_URL = "https://api.twilio.com"
ERROR_DOCS = "https://www.twilio.com/docs/errors/{code}"
AUTH_ERROR_CODES = frozenset({20003})
# Statuses after which Twilio may nonetheless have processed the request (an
# internal error, or a gateway that gave up while the backend went on).
MAYBE_PROCESSED_STATUSES = frozenset({500, 502, 504})
# Clocks differ: the message log is searched from a little before the attempt.
CLOCK_SKEW = timedelta(seconds=120)
# How far back a message log lookup pages at most (records for one recipient).
LOOKUP_LIMIT = 500
# Second lookup without a date filter: a message still queued has no date_sent.
RECENT_LIMIT = 50
# SM… for SMS, MM… for MMS: it goes into the URL's path as it is.
MESSAGE_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")


def docs_link(code: int | None) -> str | None:
    return ERROR_DOCS.format(code=code) if code else None


class GatewayError(Exception):
    """A call to Twilio that did not succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        more_info: str | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.message = redact(message)
        self.status = status
        self.code = code
        self.more_info = more_info or docs_link(code)

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        """The ``error`` object of a send result."""
        return {"code": self.code, "message": self.message, "more_info": self.more_info}


class Rejected(GatewayError):
    """Twilio refused this request for good (a 4xx other than 401 and 429)."""


class AuthRefused(GatewayError):
    """Twilio refused the credentials: nothing else will succeed with them."""


class TemporaryFault(GatewayError):
    """A fault that may pass: rate limited, a 5xx, a connection that could not be opened."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        more_info: str | None = None,
        retry_after: float | None = None,
        may_have_created: bool = False,
    ) -> None:
        super().__init__(message, status=status, code=code, more_info=more_info)
        self.retry_after = retry_after
        self.may_have_created = may_have_created


class AmbiguousFault(GatewayError):
    """The request went out and no answer came back: the message may exist."""


class EndpointMisconfigured(GatewayError):
    """``api_url`` does not lead to Twilio's API: a redirect, or a GET answered with something else.

    Nothing was created (Twilio's API never redirects), and nothing sent to
    this endpoint will be: stop the batch, exit 2.
    """


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message as Twilio reports it."""

    sid: str
    status: str | None
    to: str | None
    sender: str | None
    segments: int | None
    date_created: datetime | None
    body: str | None = None


@dataclass(frozen=True, slots=True)
class MessageState:
    """Where a message stands in Twilio's life cycle (``GET .../Messages/{sid}.json``)."""

    sid: str
    status: str | None
    error_code: int | None
    error_message: str | None
    #: what Twilio billed, as Twilio writes it (a negative decimal string), once known
    price: str | None
    price_unit: str | None
    num_segments: int | None
    date_created: datetime | None
    date_sent: datetime | None
    date_updated: datetime | None
    to: str | None
    sender: str | None


def rebase_url(url: str, base: str | None) -> str:
    """*url* with its scheme and host (whatever edge or region chose) replaced by *base*."""
    if not base:
        return url
    target = urlsplit(base.rstrip("/"))
    parts = urlsplit(url)
    return urlunsplit((target.scheme, target.netloc, target.path + parts.path, parts.query, ""))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify_redirect(status: int, location: str | None, method: str, url: str) -> EndpointMisconfigured:
    """A 3xx answer: never followed (it would carry the credentials and the message elsewhere)."""
    host = urlsplit(url).netloc
    to = f"to {redact(location)}" if location else "without a Location"
    return EndpointMisconfigured(
        f"{host} answered {method} {urlsplit(url).path} with a redirect ({status}) {to}; "
        f"smspipe does not follow redirects and nothing was sent: set api_url ({_api_url_ways()}) "
        "to the final URL",
        status=status,
    )


def _api_url_ways() -> str:
    """Where api_url is set: the caller's way (an argument, a flag), the environment."""
    from smspipe.spelling import setting

    caller = setting("api_url")
    return f"{caller}, SMSPIPE_API_URL" if caller != "api_url" else "SMSPIPE_API_URL, the config file"


def classify_response(status: int, payload: Any, headers: Any, where: str) -> GatewayError:
    """The exception for an HTTP error answer from Twilio (or a Twilio-compatible server)."""
    body = payload if isinstance(payload, dict) else {}
    raw_code = body.get("code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    text = body.get("message") or body.get("detail") or body.get("title")
    message = str(text) if text else f"HTTP {status}"
    problems = body.get("validation")  # a mock's (Prism's) reasons for a 422
    if isinstance(problems, list):
        reasons = [str(p.get("message")) for p in problems if isinstance(p, dict)]
        if reasons:
            message = f"{message}: {'; '.join(reasons)}"
    more_info = body.get("more_info") if isinstance(body.get("more_info"), str) else None
    if status == 401 or code in AUTH_ERROR_CODES:
        return AuthRefused(
            f"Twilio refused the credentials ({where}): {message}",
            status=status,
            code=code or 20003,
            more_info=more_info,
        )
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        return TemporaryFault(
            f"rate limited by Twilio ({where}): {message}",
            status=status,
            code=code or 20429,
            more_info=more_info,
            retry_after=retry_after,
        )
    if status >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        return TemporaryFault(
            f"Twilio answered {status} ({where}): {message}",
            status=status,
            code=code,
            more_info=more_info,
            retry_after=retry_after,
            may_have_created=status in MAYBE_PROCESSED_STATUSES,
        )
    return Rejected(message, status=status, code=code, more_info=more_info)


class AsyncGateway:
    """One Twilio client for one set of credentials, on asyncio.

    Construct it inside a running event loop (its aiohttp session belongs to
    that loop) and ``await aclose()`` it when done. Coroutines may run
    concurrently: up to *pool_size* requests are in flight at once, each on
    its own kept-alive connection.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        api_url: str | None,
        timeout: float,
        http_log: Callable[[str], None] | None = None,
        pool_size: int = 10,
    ) -> None:
        import asyncio

        asyncio.get_running_loop()  # RuntimeError now, not a hang later
        from twilio.base.exceptions import TwilioException
        from twilio.rest import Client

        from smspipe._aiohttp_transport import SmspipeAsyncHttpClient

        register_secret(credentials.password)
        self.credentials = credentials
        self.account_sid = credentials.account_sid
        self.api_url = api_url.rstrip("/") if api_url else None
        self.host = urlsplit(self.api_url or TWILIO_BASE_URL).netloc
        #: what twilio raises when an answer is not the JSON it expects (not JSON, a list, odd types)
        self._unreadable: tuple[type[Exception], ...] = (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            TwilioException,
        )
        self._http = SmspipeAsyncHttpClient(
            api_url=self.api_url, timeout=timeout, http_log=http_log, pool_size=pool_size
        )
        client = Client(
            credentials.username,
            credentials.password,
            account_sid=credentials.account_sid,
            http_client=self._http,
        )
        if self.api_url:
            # A base URL given by the user wins over TWILIO_EDGE / TWILIO_REGION.
            client.edge = None
            client.region = None
        self._account = client.api.v2010.accounts(self.account_sid)
        self._messages = self._account.messages

    def __repr__(self) -> str:
        return f"<AsyncGateway {self.account_sid} via {self.host}>"

    async def create_message(
        self,
        sms: SMS,
        *,
        sender: str | None,
        messaging_service_sid: str | None,
        status_callback: str | None,
        send_at: datetime | None = None,
    ) -> SentMessage:
        """POST a message (*send_at*: scheduled, Twilio sends it then; a Messaging Service only).
        Raises one of the :class:`GatewayError` subclasses on failure."""
        arguments = _create_arguments(sms, sender, messaging_service_sid, status_callback)
        if send_at is not None:
            arguments["schedule_type"] = "fixed"
            arguments["send_at"] = send_at.astimezone(UTC)
        try:
            message = await self._messages.create_async(**arguments)
        except self._unreadable as exc:
            # A 2xx that is not Twilio's JSON: the request went out, the message may exist.
            raise AmbiguousFault(f"unexpected answer from {self.host}: {_brief(exc)}") from None
        return _sent_message(message)

    async def find_message(
        self,
        *,
        to: str,
        sender: str | None,
        messaging_service_sid: str | None,
        body: str,
        since: datetime,
        exclude: Container[str] = (),
    ) -> SentMessage | None:
        """The message to *to* with this *body* created since *since*, from Twilio's message log.

        Filtered by To and From; for a Messaging Service send without From
        (Twilio picks the number), each record's Messaging Service is
        compared instead. Looks first among messages sent since *since* (less
        the clock skew), then among the most recent ones (a message still
        queued has no date sent). The body may differ as Twilio's log shows it
        (:func:`same_message`). Sids in *exclude* (known to belong to other
        documents) are passed over.
        """
        since = since.astimezone(UTC) - CLOCK_SKEW
        filters: dict[str, Any] = {"to": to}
        if sender:
            filters["from_"] = sender
        wanted = _Wanted(to, sender or None, None if sender else messaging_service_sid, body, since, exclude)
        queries = [({**filters, "date_sent_after": since}, LOOKUP_LIMIT), (filters, RECENT_LIMIT)]
        for query, limit in queries:
            try:
                records = await self._messages.stream_async(limit=limit, page_size=50, **query)
                async for record in records:
                    if wanted.matches(record):
                        return _sent_message(record)
            except self._unreadable as exc:
                raise self._not_twilio("the message log", exc) from None
        return None

    async def fetch_message(self, sid: str) -> MessageState:
        """The message's current state (for ``smspipe status --refresh``)."""
        if not MESSAGE_SID.fullmatch(sid):
            raise Rejected(f"not a message SID: {sid!r} (two letters, then 32 hexadecimal digits)")
        try:
            record = await self._messages(sid).fetch_async()
        except self._unreadable as exc:
            raise self._not_twilio(f"message {sid}", exc) from None
        if not isinstance(record.sid, str):
            raise self._not_twilio(f"message {sid}", ValueError("no sid in the answer"))
        return _message_state(record)

    async def fetch_account(self) -> dict[str, Any]:
        """The account the credentials belong to (never its auth token)."""
        try:
            account = await self._account.fetch_async()
        except self._unreadable as exc:
            raise self._not_twilio(f"account {self.account_sid}", exc) from None
        if not isinstance(account.sid, str):
            raise self._not_twilio(f"account {self.account_sid}", ValueError("no sid in the answer"))
        return {
            "sid": account.sid,
            "friendly_name": account.friendly_name,
            "status": account.status,
            "type": account.type,
        }

    async def aclose(self) -> None:
        await self._http.close()

    def _not_twilio(self, what: str, exc: Exception) -> EndpointMisconfigured:
        return EndpointMisconfigured(
            f"{self.host} did not answer with Twilio's JSON for {what} ({_brief(exc)}): "
            f"set api_url ({_api_url_ways()}) to Twilio's API or a Twilio-compatible one"
        )


@dataclass(frozen=True, slots=True)
class _Wanted:
    """What a message log record must be to be the message looked for."""

    to: str
    sender: str | None
    messaging_service_sid: str | None
    body: str
    since: datetime
    exclude: Container[str]

    def matches(self, record: Any) -> bool:
        if record.sid in self.exclude or record.to != self.to:
            return False
        if self.sender is not None and record.from_ != self.sender:
            return False
        if (
            self.messaging_service_sid is not None
            and record.messaging_service_sid != self.messaging_service_sid
        ):
            return False
        created = record.date_created
        if isinstance(created, datetime) and created < self.since:
            return False
        return same_message(self.body, record.body or "")


async def verify_account_async(
    credentials: Credentials,
    *,
    api_url: str | None,
    timeout: float,
    http_log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fetch the account the credentials belong to (never its auth token), in the running loop."""
    gateway = AsyncGateway(credentials, api_url=api_url, timeout=timeout, http_log=http_log, pool_size=1)
    try:
        return await gateway.fetch_account()
    finally:
        await gateway.aclose()


def verify_account(
    credentials: Credentials,
    *,
    api_url: str | None,
    timeout: float,
    http_log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """:func:`verify_account_async` from synchronous code (an event loop of its own)."""
    import asyncio

    return asyncio.run(verify_account_async(credentials, api_url=api_url, timeout=timeout, http_log=http_log))


def _create_arguments(
    sms: SMS, sender: str | None, messaging_service_sid: str | None, status_callback: str | None
) -> dict[str, Any]:
    arguments: dict[str, Any] = {"to": sms.to, "body": sms.body}
    if sender:
        arguments["from_"] = sender
    if messaging_service_sid:
        arguments["messaging_service_sid"] = messaging_service_sid
    if sms.media_url:
        arguments["media_url"] = list(sms.media_url)
    if status_callback:
        arguments["status_callback"] = status_callback
    return arguments


def _brief(exc: Exception) -> str:
    return redact(f"{type(exc).__name__}: {exc}")[:200]


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _message_state(record: Any) -> MessageState:
    return MessageState(
        sid=str(record.sid),
        status=str(record.status) if record.status is not None else None,
        error_code=_integer(record.error_code),
        error_message=record.error_message,
        price=str(record.price) if record.price is not None else None,
        price_unit=record.price_unit,
        num_segments=_integer(record.num_segments),
        date_created=_moment(record.date_created),
        date_sent=_moment(record.date_sent),
        date_updated=_moment(record.date_updated),
        to=record.to,
        sender=record.from_,
    )


def _sent_message(record: Any) -> SentMessage:
    return SentMessage(
        sid=str(record.sid),
        status=str(record.status) if record.status is not None else None,
        to=record.to,
        sender=record.from_,
        segments=_integer(record.num_segments),
        date_created=_moment(record.date_created),
        body=record.body,
    )
