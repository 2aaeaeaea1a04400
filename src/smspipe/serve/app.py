"""The ASGI application: routing, the hub key, body and time bounds, access log, metrics.

It parses requests and renders answers; what an endpoint does is a
:mod:`smspipe.api` call (:mod:`smspipe.serve.hub`, :mod:`smspipe.serve.twilio`).
The access log names the client, method, path (never the query string),
status and duration: never a body or a header, so never a token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smspipe import __version__
from smspipe.errors import SmspipeError, redact, register_secret
from smspipe.serve.callbacks import Callbacks
from smspipe.serve.http import (
    Answer,
    BodyTooLarge,
    Receive,
    Request,
    Scope,
    Send,
    json_answer,
    problem,
    read_body,
    text_answer,
    write,
)
from smspipe.serve.hub import KINDS, Hub, Kind, NotJson
from smspipe.serve.metrics import Metrics
from smspipe.serve.options import ServeOptions

ACCESS_LOG = logging.getLogger("smspipe.serve.access")
LOG = logging.getLogger("smspipe.serve")

Handler = Callable[[Request], Awaitable[Answer]]


@dataclass(frozen=True)
class Route:
    method: str
    handler: Handler
    #: the caller must give the endpoint key (X-Hub-Token), when one is configured
    hub_key: bool = True


class App:
    """``smspipe serve``'s ASGI application."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.metrics = Metrics()
        #: why the server could not start (the ledger, the credentials), raised once uvicorn returns
        self.startup_error: SmspipeError | None = None
        register_secret(options.hub_key)
        self.hub = Hub(options, self.metrics, LOG.info)
        callbacks = Callbacks(options, self.hub, LOG.info)
        self.routes: dict[str, Route] = {
            "/send_sms": Route("POST", self.hub.send_sms),
            "/validate": Route("POST", self.hub.validate),
            **{f"/translate/{kind}": Route("POST", self._translator(kind)) for kind in KINDS},
            "/twilio/status": Route("POST", callbacks.status, hub_key=False),
            "/twilio/inbound": Route("POST", callbacks.inbound, hub_key=False),
            "/healthz": Route("GET", self._healthz, hub_key=False),
            "/metrics": Route("GET", self._metrics, hub_key=False),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.monotonic()
        route = self.routes.get(scope["path"])
        try:
            async with asyncio.timeout(self.options.request_timeout):
                answer = await self._answer(scope, receive, route)
        except TimeoutError:
            answer = problem(
                504,
                f"the request took longer than {self.options.request_timeout:g} s; it may or may not "
                "have been sent: retry the same request_id (nothing is sent twice)",
            )
        await write(send, answer)
        endpoint = scope["path"] if route is not None else "other"
        elapsed = time.monotonic() - started
        self.metrics.request(endpoint, answer.status, elapsed)
        client = scope.get("client")
        ACCESS_LOG.info(
            '%s "%s %s" %d %.0fms',
            f"{client[0]}:{client[1]}" if client else "-",
            scope["method"],
            scope["path"],
            answer.status,
            elapsed * 1000,
        )

    async def _answer(self, scope: Scope, receive: Receive, route: Route | None) -> Answer:
        if route is None:
            return problem(404, f"no endpoint {scope['path']}: the endpoints are {', '.join(self.routes)}")
        if scope["method"] != route.method:
            return Answer(405, b"", headers=(("allow", route.method),))
        if route.hub_key and not self._key_matches(scope):
            return problem(
                401, "missing or wrong X-Hub-Token: give the endpoint key the server was started with"
            )
        try:
            body = await read_body(scope, receive, self.options.max_body)
        except BodyTooLarge:
            return problem(
                413, f"the body is over {self.options.max_body} bytes: send one hub request per POST"
            )
        request = Request.from_scope(scope, body)
        try:
            return await route.handler(request)
        except NotJson as exc:
            return problem(406, str(exc))
        except SmspipeError as exc:  # the server's own set-up (config, ledger): not the caller's fault
            LOG.error("%s: %s", scope["path"], redact(str(exc)))
            return problem(500, redact(str(exc)))
        except Exception as exc:  # a bug: one line in the log, a 500 to the caller, the server keeps on
            LOG.error("internal error on %s: %s: %s", scope["path"], type(exc).__name__, redact(str(exc)))
            return problem(
                500, f"internal error: {type(exc).__name__}: this is a bug in smspipe, see its log"
            )

    def _key_matches(self, scope: Scope) -> bool:
        expected = self.options.hub_key
        if expected is None:
            return True
        given = b""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"x-hub-token":
                given = value
        return hmac.compare_digest(given, expected.encode("utf-8"))

    def _translator(self, kind: Kind) -> Handler:
        async def translate(request: Request) -> Answer:
            return await self.hub.translate(request, kind)

        return translate

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Startup opens the outbox (ledger, run, reconciliation); shutdown, once uvicorn has
        answered the requests in flight, ends the run and closes the ledger."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.hub.open()
                except SmspipeError as exc:
                    self.startup_error = exc
                    await send({"type": "lifespan.startup.failed", "message": redact(str(exc))})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _healthz(self, request: Request) -> Answer:
        return json_answer(200, {"ok": True, "version": __version__})

    async def _metrics(self, request: Request) -> Answer:
        return text_answer(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
