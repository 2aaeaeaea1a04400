"""Settling what may have been sent: looking messages up in Twilio's log.

After an ambiguous attempt (in the run that made it), and for keys a run that is
gone left open (in the next run), the message is looked for in Twilio's message
log: by recipient and sender, from a little before the attempt, with a body
that may show a trial prefix or smart encoding, passing over messages the
ledger records under other keys. A message found is recorded under the key
unless another open key to the same recipient has the same text (then it may
be that key's message: the key stays unknown).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from smspipe.delivery.results import ErrorInfo
from smspipe.delivery.states import Settlement, settle
from smspipe.errors import SmspipeError
from smspipe.gateway import AuthRefused, EndpointMisconfigured, GatewayError, SentMessage, smart_encode
from smspipe.ledger import FoundOutcome, KeyRow, Message

if TYPE_CHECKING:
    from smspipe import config
    from smspipe.delivery.runtime import Context
    from smspipe.gateway import AsyncGateway

#: a found SID another key holds is passed over; this many times at most in one look
MAX_TAKEN = 5


def match_digest(body: str) -> str:
    """The text as Twilio's log may show it (smart encoding applied), hashed."""
    from smspipe.delivery.planner import sha256

    return sha256(smart_encode(body))


@dataclass(frozen=True, slots=True)
class Probe:
    """What to look for: one message, under one key."""

    key: str
    to: str
    sender: str | None
    messaging_service_sid: str | None
    account_sid: str | None
    body: str
    body_sha256: str | None
    media_sha256: str | None
    #: the attempt started then (the log is searched from a little before)
    since: datetime
    #: the grace period since the attempt has passed: any message it created shows in the log
    settled: bool = False


@dataclass(frozen=True, slots=True)
class Found:
    """What the log said, and what the ledger made of it."""

    message: SentMessage | None = None
    #: the ledger's answer to the message found (None without a ledger)
    outcome: FoundOutcome | None = None
    #: the log answered at least once without the message
    answered: bool = False
    error: GatewayError | None = None

    @property
    def recorded(self) -> bool:
        return self.message is not None and self.outcome in (FoundOutcome.RECORDED, None)


async def find(ctx: Context, gateway: AsyncGateway, probe: Probe, waits: tuple[float, ...]) -> Found:
    """Look for *probe*'s message, once after each of *waits*; record it when found.

    A stop (a signal) cuts the waiting short: one last look, at once.
    """
    exclude: set[str] = set()
    if ctx.ledger is not None:
        # Every message the ledger knows to this recipient is some attempt's but this one's
        # (a --force resend's earlier message under the same key included).
        exclude = set(await ctx.ledger.run(ctx.ledger.ledger.known_sids, probe.to))
    answered = False
    error: GatewayError | None = None
    for wait in waits:
        stopped = not await ctx.sleep(wait)
        for _ in range(MAX_TAKEN):
            try:
                message = await gateway.find_message(
                    to=probe.to,
                    sender=probe.sender,
                    messaging_service_sid=probe.messaging_service_sid,
                    body=probe.body,
                    since=probe.since,
                    exclude=frozenset(exclude),
                )
            except (AuthRefused, EndpointMisconfigured) as exc:
                ctx.stop(ErrorInfo.from_gateway(exc, fatal=True))
                return Found(answered=answered, error=exc)
            except GatewayError as exc:
                error = exc
                break
            if message is None:
                answered = True
                break
            outcome = await _record(ctx, probe, message)
            if outcome == FoundOutcome.TAKEN:
                exclude.add(message.sid)
                continue
            return Found(message=message, outcome=outcome, answered=True)
        if stopped:
            break
    return Found(answered=answered, error=error)


async def _record(ctx: Context, probe: Probe, found: SentMessage) -> FoundOutcome | None:
    if ctx.ledger is None:
        return None
    message = Message(
        sid=found.sid,
        key=probe.key,
        recipient=probe.to,
        sender=found.sender or probe.sender,
        messaging_service_sid=probe.messaging_service_sid,
        account_sid=probe.account_sid,
        segments=found.segments,
        body_sha256=probe.body_sha256,
        media_sha256=probe.media_sha256,
        found_in_log=True,
        created_at=found.date_created.timestamp() if found.date_created else None,
    )
    book = ctx.ledger
    try:
        # Past the grace period this attempt's own message would show: a message found is
        # as good as any for this document, whoever else is open with the same text.
        match = None if probe.settled else match_digest(probe.body)
        return await book.run(book.ledger.record_found, probe.key, message, match)
    except SmspipeError as exc:
        # Found all the same; the key stays open and the next run finds it again.
        from smspipe.delivery.walk import _fault_info

        ctx.stop(_fault_info(exc))
        return None


# --- keys a run that is gone left open ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reconciled:
    settlement: Settlement
    #: the message found (FOUND)
    message: SentMessage | None = None
    #: why it is not settled (UNSETTLED)
    note: str | None = None


async def reconcile(ctx: Context, row: KeyRow, credentials: config.Credentials | None) -> Reconciled:
    """Settle an open key this run adopted: found (recorded), absent, or still unknown (recorded)."""
    assert ctx.ledger is not None
    book = ctx.ledger
    cannot = _cannot_look(row, credentials)
    if cannot is not None:
        await book.run(book.ledger.record_unknown, row.key, cannot)
        return Reconciled(Settlement.UNSETTLED, note=cannot)
    assert credentials is not None and row.body is not None
    age = row.attempt_age
    probe = Probe(
        key=row.key,
        to=row.recipient,
        sender=row.sender,
        messaging_service_sid=row.messaging_service_sid,
        account_sid=row.account_sid,
        body=row.body,
        body_sha256=row.body_sha256,
        media_sha256=row.media_sha256,
        since=datetime.fromtimestamp(time.time() - (age or 0.0), UTC),
        settled=age is None or age >= ctx.options.grace,
    )
    gateway = ctx.gateways.get(credentials)
    young = age is not None and age < ctx.options.grace
    found = await find(ctx, gateway, probe, ctx.options.lookup_waits if young else (0.0,))
    if found.message is not None:
        if found.outcome == FoundOutcome.AMBIGUOUS:
            note = _ambiguous_note(found.message.sid)
            await book.run(book.ledger.record_unknown, row.key, note)
            return Reconciled(Settlement.UNSETTLED, note=note)
        return Reconciled(Settlement.FOUND, message=found.message)
    outcome = settle(found=False, log_answered=found.answered, attempt_age=age, grace=ctx.options.grace)
    if outcome == Settlement.ABSENT:
        return Reconciled(Settlement.ABSENT)
    note = unsettled_note(found, age, ctx.options.grace, earlier=True)
    await book.run(book.ledger.record_unknown, row.key, note)
    return Reconciled(Settlement.UNSETTLED, note=note)


def _cannot_look(row: KeyRow, credentials: config.Credentials | None) -> str | None:
    if credentials is None:
        return "an earlier run left it unsettled, and this run has no credentials to look it up"
    if row.account_sid and row.account_sid != credentials.account_sid:
        return (
            f"an earlier run was sending it from account {row.account_sid}, whose message log "
            "this run cannot read: send it with that account's credentials"
        )
    if row.body is None:
        return "an earlier run left it unsettled without its text: it cannot be looked up"
    return None


def unsettled_note(found: Found, age: float | None, grace: float, *, earlier: bool) -> str:
    who = "an earlier run's attempt" if earlier else "the attempt"
    if found.error is not None and not found.answered:
        return (
            f"{who} may have created it, and Twilio's message log could not be checked "
            f"({found.error.message}): it is not sent again until the log shows it was not created"
        )
    left = max(0.0, grace - (age or 0.0))
    return (
        f"{who} may have created it, and Twilio's message log does not show it yet: it is not "
        f"sent again before the grace period of {grace:g} s has passed ({left:.0f} s left)"
    )


def _ambiguous_note(sid: str) -> str:
    return (
        f"Twilio's log holds a message with this text ({sid}), but another unsettled document "
        "to the same recipient has the same text, so it may be that one's: a later run settles it"
    )


async def reconcile_orphans(ctx: Context, credentials: config.Credentials | None) -> dict[str, int]:
    """Before anything is sent: settle the open keys runs that are gone left behind.

    Keys of other accounts (whose credentials come with their documents) are
    settled when their documents come.
    """
    counts = {"found": 0, "absent": 0, "unknown": 0, "elsewhere": 0}
    if ctx.ledger is None:
        return counts
    book = ctx.ledger
    rows = await book.run(book.ledger.orphans)
    import asyncio

    async def one(row: KeyRow) -> str:
        if credentials is None or (row.account_sid and row.account_sid != credentials.account_sid):
            return "elsewhere"
        async with ctx.slots:
            adopted = await book.run(book.ledger.adopt, row.key, row.version)
            if adopted is None:
                return "elsewhere"
            outcome = await reconcile(ctx, adopted, credentials)
            if outcome.settlement == Settlement.ABSENT:
                await book.run(book.ledger.release, row.key)
                return "absent"
            return "found" if outcome.settlement == Settlement.FOUND else "unknown"

    for name in await asyncio.gather(*(one(row) for row in rows)):
        counts[name] += 1
    return counts
