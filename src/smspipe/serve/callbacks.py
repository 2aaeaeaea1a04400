"""Twilio's callbacks: ``POST /twilio/status`` (delivery status) and ``POST /twilio/inbound`` (replies).

Both carry ``X-Twilio-Signature``, an HMAC of the URL Twilio called and the
form fields under the account's auth token: checked before anything else
(403 when it does not match, or cannot be checked). The URL is the public
one (``public_url`` + path) behind a TLS proxy, else the request's own.

A status callback moves the message's status in the ledger (never a final
status back: several callbacks per message are normal, in any order). An
inbound message whose whole text is a STOP word adds its sender to the
suppression list, a START word removes it; Twilio is answered empty TwiML
(no reply of ours: Twilio sends its own confirmation for these words).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smspipe import api
from smspipe.errors import SmspipeError, redact
from smspipe.serve.http import Answer, Request, problem
from smspipe.serve.options import ServeOptions

if TYPE_CHECKING:
    from smspipe.serve.hub import Hub

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
EMPTY_TWIML = Answer(200, b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>', "text/xml")


@dataclass(frozen=True)
class StatusUpdate:
    sid: str
    status: str
    error_code: int | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Inbound:
    sender: str
    #: "stop", "start", or None for any other text
    word: str | None


def first(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def parse_status(form: Mapping[str, list[str]]) -> StatusUpdate | str:
    """The update a status callback carries, or what is missing from it."""
    sid = first(form, "MessageSid") or first(form, "SmsSid")
    status = first(form, "MessageStatus") or first(form, "SmsStatus")
    if not sid or not status:
        return "a status callback needs MessageSid and MessageStatus"
    code = first(form, "ErrorCode")
    return StatusUpdate(
        sid, status.lower(), int(code) if code and code.isdigit() else None, first(form, "ErrorMessage")
    )


def parse_inbound(form: Mapping[str, list[str]]) -> Inbound | str:
    """Who wrote, and whether the text is an opt-out or opt-in word (the whole text, any case)."""
    sender = first(form, "From")
    if not sender:
        return "an inbound message needs From"
    text = (first(form, "Body") or "").strip().upper()
    word = "stop" if text in STOP_WORDS else "start" if text in START_WORDS else None
    return Inbound(sender, word)


class Callbacks:
    def __init__(self, options: ServeOptions, hub: Hub, log: Callable[[str], None]) -> None:
        self._options = options
        self._hub = hub
        self._log = log

    async def status(self, request: Request) -> Answer:
        refused = self._refused(request)
        if refused is not None:
            return refused
        update = parse_status(request.form())
        if isinstance(update, str):
            return problem(400, update)
        self._log(f"status callback: {update.sid} {update.status}" + _code(update.error_code))
        await self._record_status(update)
        return EMPTY_TWIML

    async def inbound(self, request: Request) -> Answer:
        refused = self._refused(request)
        if refused is not None:
            return refused
        inbound = parse_inbound(request.form())
        if isinstance(inbound, str):
            return problem(400, inbound)
        if inbound.word is not None:
            self._log(f"inbound {inbound.word.upper()} from {inbound.sender}")
            await self._record_word(inbound)
        return EMPTY_TWIML

    def _refused(self, request: Request) -> Answer | None:
        """403 unless Twilio signed the request for the URL it called."""
        signature = request.headers.get("x-twilio-signature")
        if not signature:
            return problem(403, "no X-Twilio-Signature: only Twilio may call this endpoint")
        url = self.signed_url(request)
        settings_header = request.headers.get("x-twilio-webhooks-signature-settings")
        verdict = self._hub.outbox.signed_by_twilio(url, request.form(), signature, settings_header)
        if verdict is None:
            self._log("a Twilio callback was refused: checking its signature needs the auth token")
            return problem(403, "the server cannot check Twilio's signature: configure the auth token")
        if not verdict:
            self._log(f"a Twilio callback to {url} was refused: the signature does not match")
            return problem(403, "X-Twilio-Signature does not match (behind a proxy? give the public URL)")
        return None

    def signed_url(self, request: Request) -> str:
        base = self._options.public_url
        if not base:
            return request.own_url()
        return base.rstrip("/") + request.path + (f"?{request.query}" if request.query else "")

    async def _record_status(self, update: StatusUpdate) -> None:
        """The ledger moves the message's status forward only (never a final one back)."""
        try:
            changed = await asyncio.to_thread(
                functools.partial(
                    api.update_message_status,
                    update.sid,
                    update.status,
                    error_code=update.error_code,
                    error_message=update.error_message,
                    **self._ledger_arguments(),
                )
            )
        except SmspipeError as exc:  # Twilio would retry in vain: answered, and logged
            self._log(f"status callback for {update.sid} not recorded: {redact(str(exc))}")
            return
        if not changed:
            self._log(
                f"status callback for {update.sid}: nothing changed (unknown SID, or not a step forward)"
            )

    async def _record_word(self, inbound: Inbound) -> None:
        phones = [inbound.sender]
        arguments = self._ledger_arguments()
        try:
            if inbound.word == "stop":
                await asyncio.to_thread(
                    functools.partial(api.optout_add, phones, source="inbound", **arguments)
                )
            else:
                await asyncio.to_thread(functools.partial(api.optout_remove, phones, **arguments))
        except SmspipeError as exc:
            self._log(f"inbound {inbound.word} from {inbound.sender} not recorded: {redact(str(exc))}")

    def _ledger_arguments(self) -> dict[str, Any]:
        options = self._options
        return {"ledger": options.ledger, "config": options.config, "env": options.env}


def _code(code: int | None) -> str:
    return f" (error {code})" if code is not None else ""
