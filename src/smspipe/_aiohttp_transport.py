"""The HTTP client under :class:`smspipe.gateway.AsyncGateway`: twilio's AsyncHttpClient over aiohttp.

Imported only when an AsyncGateway is built (it imports aiohttp and twilio).
Not twilio's own ``AsyncTwilioHttpClient``: that one retries by itself
(retrying is the delivery engine's decision, made with the message log in
view) and authenticates through aiohttp's deprecated ``auth=``.

What it adds to a plain aiohttp session:

- every URL rebased onto ``api_url`` (whatever edge or region twilio chose);
- HTTPS_PROXY / HTTP_PROXY / NO_PROXY honoured as requests honours them,
  looked up once per host;
- one ``timeout`` for the whole request (connect, send, headers, body):
  aiohttp's total timeout, so a server that trickles its answer cannot keep
  a request alive past it;
- redirects never followed, and answered with :class:`EndpointMisconfigured`;
- every failure classified by whether the request may have reached Twilio
  (see :func:`transport_fault`);
- the ``-v`` log line (method, URL, status, milliseconds), secrets masked.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from yarl import URL

from smspipe.errors import redact
from smspipe.gateway import (
    AmbiguousFault,
    EndpointMisconfigured,
    GatewayError,
    Rejected,
    TemporaryFault,
    classify_redirect,
    classify_response,
    rebase_url,
)

#: POST is the one method whose effect must never be repeated blindly.
UNSAFE_METHODS = frozenset({"POST"})


class RequestProgress(SimpleNamespace):
    """How far one request got: set by aiohttp's tracing hooks."""

    connected: bool = False


async def _on_connected(session: Any, context: SimpleNamespace, params: Any) -> None:
    progress = context.trace_request_ctx
    if isinstance(progress, RequestProgress):
        progress.connected = True


def _tracing() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_on_connected)
    trace.on_connection_reuseconn.append(_on_connected)
    return trace


@dataclass(frozen=True, slots=True)
class _Route:
    """How requests to one host go: through the environment's proxy, or straight."""

    proxy: URL | None = None
    #: headers of the CONNECT request (an https:// target through the proxy)
    proxy_headers: dict[str, str] | None = None
    #: headers added to the request itself (an http:// target: the proxy reads them)
    request_headers: dict[str, str] | None = None

    @classmethod
    def from_environment(cls, url: URL) -> _Route:
        try:
            proxy, credentials = get_env_proxy_for_url(url)
        except LookupError:
            return cls()
        if credentials is None:
            return cls(proxy)
        authorization = {"Proxy-Authorization": credentials.encode()}
        if url.scheme == "https":
            return cls(proxy, proxy_headers=authorization)
        return cls(proxy, request_headers=authorization)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """One request, ready to go."""

    method: str
    target: str
    address: URL
    #: method and host, for messages
    where: str
    body: bytes | None
    headers: dict[str, str]
    route: _Route

    @property
    def shown(self) -> str:
        return f"{self.method} {redact(self.target)}"

    def response(self, status: int, text: str, headers: Any) -> Response:
        """Twilio's Response for a 2xx; the GatewayError that a redirect or an error means."""
        if 300 <= status < 400:
            raise classify_redirect(status, headers.get("Location"), self.method, self.target)
        if status >= 400:
            raise classify_response(status, _json_or_none(text), headers, self.where)
        return Response(status, text, headers)


class SmspipeAsyncHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """One aiohttp session (one connection pool) for one gateway. Build it inside a running loop."""

    def __init__(
        self,
        *,
        api_url: str | None,
        timeout: float,
        http_log: Callable[[str], None] | None,
        pool_size: int,
    ) -> None:
        super().__init__(logging.getLogger("smspipe.http"), True, timeout)
        self._api_url = api_url
        self._http_log = http_log
        self._authorization: dict[tuple[str, str], str] = {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.session = aiohttp.ClientSession(
            # One pool sized to the concurrency: every request in flight has
            # its connection, and kept-alive connections are reused.
            connector=aiohttp.TCPConnector(limit=max(pool_size, 1)),
            timeout=self._timeout,
            # Not trust_env: it would look up the proxy and ~/.netrc in a thread for
            # every request (and a netrc entry clashes with our Authorization header).
            # The environment's proxy is looked up once per host instead (_proxy_for).
            trust_env=False,
            trace_configs=[_tracing()],
        )
        self._routes: dict[tuple[str, str], _Route] = {}

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        outgoing = self._prepare(method.upper(), url, params, data, headers, auth)
        # Never None: aiohttp reads that as "no timeout at all".
        bound = aiohttp.ClientTimeout(total=timeout) if timeout else self._timeout
        progress = RequestProgress()
        started = time.monotonic()
        try:
            async with self.session.request(
                outgoing.method,
                outgoing.address,
                data=outgoing.body,
                headers=outgoing.headers,
                allow_redirects=False,
                timeout=bound,
                proxy=outgoing.route.proxy,
                proxy_headers=outgoing.route.proxy_headers,
                trace_request_ctx=progress,
            ) as answer:
                raw = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            fault = transport_fault(exc, outgoing.method, outgoing.where, bound.total, progress.connected)
            self._log(f"http: {outgoing.shown} -> {fault.message}")
            raise fault from None
        self._log(f"http: {outgoing.shown} -> {answer.status} ({(time.monotonic() - started) * 1000:.0f} ms)")
        return outgoing.response(answer.status, raw.decode("utf-8", "replace"), answer.headers)

    def _prepare(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None,
        data: dict[str, object] | None,
        headers: dict[str, str] | None,
        auth: tuple[str, str] | None,
    ) -> _Outgoing:
        target = _with_query(rebase_url(url, self._api_url), params)
        where = f"{method} {urlsplit(target).netloc}"
        try:
            address = URL(target, encoded=True)
        except ValueError as exc:
            raise EndpointMisconfigured(f"invalid API URL {redact(target)!r}: {exc}") from None
        route = self._proxy_for(address)
        sent_headers = {**(headers or {}), **(route.request_headers or {})}
        if auth is not None:
            sent_headers["Authorization"] = self._basic(auth)
        return _Outgoing(method, target, address, where, _form(data, where), sent_headers, route)

    def _proxy_for(self, url: URL) -> _Route:
        """HTTPS_PROXY / HTTP_PROXY (and their credentials) unless NO_PROXY exempts the host."""
        key = (url.scheme, url.host or "")
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = _Route.from_environment(url)
        return route

    def _basic(self, auth: tuple[str, str]) -> str:
        header = self._authorization.get(auth)
        if header is None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            header = self._authorization[auth] = f"Basic {token}"
        return header

    def _log(self, line: str) -> None:
        if self._http_log is not None:
            self._http_log(line)

    async def close(self) -> None:
        await self.session.close()


def _with_query(url: str, params: dict[str, object] | None) -> str:
    """*url* with *params* appended, percent-encoded once (a next-page URL already has its query)."""
    if not params:
        return url
    query = urlencode(params, doseq=True)
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _form(data: dict[str, object] | None, where: str) -> bytes | None:
    if not data:
        return None
    try:
        return urlencode(data, doseq=True).encode("ascii")
    except UnicodeEncodeError as exc:
        # A lone surrogate: nothing was sent, and resending cannot help.
        raise Rejected(f"the request cannot be encoded ({where}): {exc.reason}") from None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def transport_fault(
    exc: BaseException, method: str, where: str, timeout: float | None, connected: bool
) -> GatewayError:
    """An aiohttp failure as the delivery engine must treat it.

    Never connected (DNS, refused, TLS handshake, a timeout before any
    connection was ours): the request cannot have reached Twilio, so
    :class:`TemporaryFault`. Connected and no full answer (a timeout, a reset,
    a disconnect, a truncated body): a POST may have created the message, so
    :class:`AmbiguousFault`. A GET is safe to repeat, so always temporary.

    A kept-alive connection that the server had closed: aiohttp retries a GET
    on a fresh connection by itself, never a POST. A POST that fails this way
    is ambiguous, deliberately: its bytes went into a connection the server may
    have read them from before closing it, and nothing on the client side
    tells the two apart. The message log settles it; the cost is one lookup.
    """
    if isinstance(exc, aiohttp.InvalidURL):
        return EndpointMisconfigured(f"invalid API URL ({where}): {exc}: set api_url to Twilio's base URL")
    if isinstance(exc, aiohttp.ClientConnectorError) or (isinstance(exc, TimeoutError) and not connected):
        return TemporaryFault(f"cannot connect ({where}): {_reason(exc, timeout)}")
    if method not in UNSAFE_METHODS:
        return TemporaryFault(f"no answer ({where}): {_reason(exc, timeout)}")
    if isinstance(exc, TimeoutError):
        return AmbiguousFault(f"no answer within {timeout} s ({where})")
    return AmbiguousFault(f"the connection dropped before Twilio answered ({where}): {_reason(exc, timeout)}")


def _reason(exc: BaseException, timeout: float | None) -> str:
    """The cause in a few words (no URL: it may be long)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host name not found"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return "the proxy refused the connection"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientConnectorSSLError):
        return "TLS handshake failed"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout} s"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut short"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by peer"
        cause = cause.__cause__ or getattr(cause, "os_error", None)
    errno_text = getattr(exc, "strerror", None)
    return str(errno_text or exc or type(exc).__name__)[:200]
