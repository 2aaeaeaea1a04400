"""The HTTP layer's plain data: a request as read, an answer to write, and how to write it (ASGI)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from smspipe.errors import redact

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body is over the bound."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    #: header names in lower case
    headers: dict[str, str]
    body: bytes
    scheme: str
    client: str

    @classmethod
    def from_scope(cls, scope: Scope, body: bytes) -> Request:
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        client = scope.get("client")
        return cls(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            scheme=scope.get("scheme", "http"),
            client=f"{client[0]}:{client[1]}" if client else "-",
        )

    def own_url(self) -> str:
        """The URL the request was made to, as its Host header names it."""
        host = self.headers.get("host", "localhost")
        return f"{self.scheme}://{host}{self.path}" + (f"?{self.query}" if self.query else "")

    def form(self) -> dict[str, list[str]]:
        """An application/x-www-form-urlencoded body (Twilio's callbacks)."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())


def json_answer(status: int, value: Any, *, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"
    return Answer(status, text.encode("utf-8"), headers=headers)


def text_answer(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Answer:
    return Answer(status, text.encode("utf-8"), content_type)


def problem(status: int, summary: str, **fields: Any) -> Answer:
    """An error answer: what is wrong and how to fix it, in ``summary`` as the hub reads it."""
    return json_answer(status, {"summary": summary, **fields})


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body; BodyTooLarge as soon as it is known to be over *limit* bytes."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def write(send: Send, answer: Answer) -> None:
    """Write *answer*; every body passes through redact() here, so no answer can carry a secret
    (a token the caller put in a field echoed back in an error, say)."""
    body = redact(answer.body.decode("utf-8")).encode("utf-8")
    headers = [
        (b"content-type", answer.content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
