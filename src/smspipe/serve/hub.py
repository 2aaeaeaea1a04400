"""The hub's endpoints: ``POST /send_sms``, ``POST /validate``; each one :mod:`smspipe.api` call.

``/send_sms`` answers as the hub's Twilio endpoint did, ``{"request_id",
"summary"}``, with smspipe's result fields beside them (``status``, ``sid``,
``to``, ``segments``, ``error``). Its HTTP status tells a hub flow whether to
retry: 200 delivered (now or by an earlier request with this request_id), or
suppressed (the recipient opted out) or scheduled; 422 invalid (fix the
document); 409 the request_id was used for another recipient; 503 deferred by
quiet hours or the per-recipient cap (retry after Retry-After); 500 not
delivered (or not known yet). Retrying the same request is always safe: the
ledger never sends it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from smspipe import api
from smspipe.errors import redact
from smspipe.serve.http import Answer, Request, json_answer, problem
from smspipe.serve.metrics import Metrics
from smspipe.serve.options import ServeOptions

if TYPE_CHECKING:
    from smspipe.delivery import Result

Kind = Literal["order", "customer", "shipment"]
KINDS: tuple[Kind, ...] = ("order", "customer", "shipment")

#: record fields that describe a file, not a hub request
_FILE_FIELDS = ("source", "line")


class NotJson(Exception):
    """The body is not JSON (406, as the hub's endpoint answered)."""


def parse_json(request: Request) -> Any:
    try:
        return json.loads(request.body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotJson(f"the body is not JSON ({exc}): send the hub request as application/json") from None


class Hub:
    def __init__(self, options: ServeOptions, metrics: Metrics, log: Callable[[str], None]) -> None:
        self._options = options
        self._metrics = metrics
        self._log = log
        self._exits = contextlib.AsyncExitStack()
        self._outbox: api.Outbox | None = None

    async def open(self) -> None:
        """Open the outbox: the ledger, its run, what dead runs left reconciled (SmspipeError)."""
        box = api.outbox(
            ledger=self._options.ledger,
            config=self._options.config,
            env=self._options.env,
            on_line=self._log,
            on_warning=self._log,
            concurrency=self._options.max_sends,
        )
        self._outbox = await self._exits.enter_async_context(box)

    @property
    def outbox(self) -> api.Outbox:
        assert self._outbox is not None, "the outbox opens at startup"
        return self._outbox

    async def close(self) -> None:
        """End the outbox's run and close the ledger (the requests in flight are answered)."""
        await self._exits.aclose()

    async def send_sms(self, request: Request) -> Answer:
        document = parse_json(request)
        if not isinstance(document, dict):
            return problem(422, "the body must be one hub request, a JSON object with an sms")
        results = await self.outbox.send(_named(request.body))
        self._metrics.sent(result.status.value for result in results)
        if not results:
            return problem(422, "the request holds no SMS: give sms as an object (or a list of them)")
        return json_answer(
            _http_status(results), hub_answer(document, results), headers=_retry_after(results)
        )

    async def validate(self, request: Request) -> Answer:
        parse_json(request)
        validation = await asyncio.to_thread(
            lambda: [
                verdict.report()
                for verdict in api.validate(
                    _named(request.body), config=self._options.config, env=self._options.env
                )
            ]
        )
        reports = [_without_file_fields(report) for report in validation]
        valid = all(report["valid"] for report in reports)
        return json_answer(200 if valid else 422, {"valid": valid, "results": reports})

    async def translate(self, request: Request, kind: Kind) -> Answer:
        """Hub objects -> SMS request documents: 200, or 422 naming each object that failed."""
        parse_json(request)

        def run() -> tuple[list[dict[str, Any]], list[str]]:
            documents, errors = [], []
            for outcome in api.translate(
                _named(request.body), kind, config=self._options.config, env=self._options.env
            ):
                if outcome.request is not None:
                    documents.append(outcome.request)
                else:
                    errors.append(redact(outcome.error_line()))
            return documents, errors

        documents, errors = await asyncio.to_thread(run)
        return json_answer(422 if errors else 200, {"requests": documents, "errors": errors})


def hub_answer(document: dict[str, Any], results: list[Result]) -> dict[str, Any]:
    """One SMS: its record, the hub's request_id and summary first; a collection: each in results."""
    records = [_without_file_fields(result.record()) for result in results]
    request_id = _request_id(document)
    summary = redact("; ".join(result.summary for result in results))
    if len(records) == 1:
        return {**records[0], "request_id": request_id, "summary": summary}
    return {"request_id": request_id, "summary": summary, "status": _worst(results), "results": records}


def _request_id(document: dict[str, Any]) -> Any:
    """The hub's own request_id, echoed as it came (null when it gave none)."""
    return document.get("request_id")


def _named(body: bytes) -> io.BytesIO:
    """The body as smspipe's reader reads a file: messages say ``body:1: sms.phone: ...``."""
    stream = io.BytesIO(body)
    stream.name = "body"
    return stream


def _without_file_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name not in _FILE_FIELDS}


#: the HTTP status of each delivery status; in a collection the first that applies wins
_HTTP_STATUS = (
    (("failed", "unknown"), 500),
    # quiet hours or the per-recipient cap: not sent, the retry after Retry-After sends it
    (("deferred",), 503),
    (("conflict",), 409),
    (("invalid",), 422),
)


def _http_status(results: list[Result]) -> int:
    statuses = {result.status.value for result in results}
    for group, code in _HTTP_STATUS:
        if statuses.intersection(group):
            return code
    return 200


def _retry_after(results: list[Result]) -> tuple[tuple[str, str], ...]:
    """Seconds until the latest ``not_before`` of a deferred message, for the hub's retry."""
    from datetime import UTC, datetime

    waits = [
        (result.not_before - datetime.now(UTC)).total_seconds()
        for result in results
        if result.status.value == "deferred" and result.not_before is not None
    ]
    return (("retry-after", str(max(1, int(max(waits)) + 1))),) if waits else ()


def _worst(results: list[Result]) -> str:
    statuses = [result.status.value for result in results]
    for group, _code in _HTTP_STATUS:
        for status in group:
            if status in statuses:
                return status
    return statuses[0]
