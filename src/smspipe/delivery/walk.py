"""One message's walk through the states: decide, claim, send, retry, look up, record.

:func:`deliver` takes one job to its result (or, when another live run holds
its key, to :class:`Waiting`, for the engine to re-check at the end of the run).
The decisions are :func:`smspipe.delivery.states.decide` and the retry policy's;
this module carries them out against the ledger and the gateway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from smspipe.delivery import gates, reconcile, states, suppression
from smspipe.delivery.policy import Next
from smspipe.delivery.results import ErrorInfo, Result, Status
from smspipe.delivery.states import Action, Settlement
from smspipe.errors import SmspipeError
from smspipe.gateway import GatewayError, SentMessage, TemporaryFault
from smspipe.ledger import (
    Attempt,
    FoundOutcome,
    KeyRow,
    LedgerError,
    Message,
    OptOut,
    SentQuery,
    SentRecord,
)

if TYPE_CHECKING:
    from smspipe.delivery.planner import Job
    from smspipe.delivery.runtime import Context
    from smspipe.gateway import AsyncGateway

#: a claim that keeps losing the compare-and-set race is re-decided this often at most
MAX_ROUNDS = 20
#: a start that waited longer than this for its turn (a slow --rate) marks its attempt again
TOUCH_AFTER = 2.0


@dataclass(frozen=True, slots=True)
class Waiting:
    """Another live run holds the job's key: the engine re-checks it at the end of the run."""

    job: Job
    note: str


class _Lost:
    """The key's row changed between reading and claiming it: decide again."""


LOST = _Lost()


async def deliver(ctx: Context, job: Job, *, fresh: bool = True) -> Result | Waiting:
    """Take *job* to its result (*fresh*: not seen before in this run, so its key is
    likely new)."""
    try:
        held = await _held(ctx, job)
        if ctx.ledger is None:
            if isinstance(held, Result):
                return held
            outcome = await _send(ctx, job, claim=None, send_at=held)
            assert not isinstance(outcome, _Lost)
            return outcome
        return await _decide_and_send(ctx, job, held, guess=fresh)
    except SmspipeError as exc:  # the ledger failed: stop the batch, report this one not sent
        return _ledger_fault(ctx, job, exc)


async def _decide_and_send(
    ctx: Context, job: Job, held: Result | datetime | None, *, guess: bool = True
) -> Result | Waiting:
    """*held*: what the gates made of it (smspipe.delivery.gates), applied once the key's row
    says it is to be sent (a key sent earlier is skipped, whatever the hour)."""
    assert ctx.ledger is not None
    book = ctx.ledger
    facts = states.Facts(job.sms.to, job.body_sha256, job.media_sha256)
    guess = guess and held is None and not job.legacy_keys and ctx.new_keys.likely()
    if guess:
        # No row is decided SEND: claiming the key as new reads it too (one call to the ledger, not two).
        outcome = await _send(ctx, job, claim=None)
        ctx.new_keys.seen(not isinstance(outcome, _Lost))
        if not isinstance(outcome, _Lost):
            return outcome
    for round_ in range(MAX_ROUNDS):
        if ctx.stopping:
            return not_sent(ctx, job)
        row = await book.run(book.ledger.get, job.key, job.legacy_keys)
        if round_ == 0 and not guess:
            ctx.new_keys.seen(row is None)
        decision = states.decide(row, facts, force=ctx.options.force, run_id=ctx.run_id)
        # A key sent earlier is skipped whatever the gates say; else a held message stops here.
        settled = settled_by(job, decision) or (held if isinstance(held, Result) else None)
        if settled is not None:
            return settled
        action = decision.action
        version: int | None = row.version if row is not None else None
        if action == Action.RECONCILE:
            assert row is not None
            adopted = await _reconcile(ctx, job, row)
            if adopted is None:
                continue  # found, unsettled, or changed meanwhile: decide again
            version = adopted.version
        send_at = held if isinstance(held, datetime) else None
        outcome = await _send(ctx, job, claim=version, send_at=send_at)
        if not isinstance(outcome, _Lost):
            return outcome
    return unknown(job, "its ledger row kept changing under other runs: the next run settles it")


def settled_by(job: Job, decision: states.Decision) -> Result | Waiting | None:
    """What *decision* makes of *job* without sending anything: skipped, conflict, still
    held by another run, unsettled by this one; None when it is to be sent (or reconciled)."""
    action = decision.action
    if action == Action.SKIP:
        return Result(
            job.verdict,
            Status.SKIPPED,
            job.key,
            job=job,
            sid=decision.sid,
            segments=decision.segments,
            note=decision.note,
        )
    if action == Action.CONFLICT:
        return Result(
            job.verdict,
            Status.CONFLICT,
            job.key,
            job=job,
            note=decision.note,
            earlier=decision.earlier,
            error=ErrorInfo(decision.note or "conflict"),
        )
    if action == Action.WAIT:
        return Waiting(job, decision.note or "being sent by another run")
    if action == Action.UNSETTLED:
        return unknown(job, decision.note or "an earlier document of this run with this key is unsettled")
    return None


async def _held(ctx: Context, job: Job) -> Result | datetime | None:
    """What the gates make of *job* before any claim: suppressed or deferred (a Result), to
    be scheduled with Twilio (the moment), or None: send it now."""
    rules = ctx.rules
    now = rules.now()
    phone = suppression.bare(job.sms.to)
    opted_out: OptOut | None = None
    recent: list[SentRecord] | None = None
    book = ctx.ledger
    if book is not None:
        opted_out = await book.run(book.ledger.opted_out, phone)
        since = gates.cap_window(rules, now)
        if since is not None and rules.cap is not None:
            query = SentQuery(since=since, to=job.sms.to, limit=rules.cap.count)
            recent = await book.run(book.ledger.sent, query)
    elif phone in ctx.optouts:
        opted_out = OptOut(phone, "suppression list", now.timestamp())
    decision = gates.hold(job, rules, opted_out=opted_out, recent=recent, now=now)
    if decision is None:
        return None
    if decision.status == Status.SCHEDULED:
        return decision.not_before
    return Result(
        job.verdict, decision.status, job.key, job=job, note=decision.note, not_before=decision.not_before
    )


async def recheck(ctx: Context, waiting: list[Waiting]) -> list[Result | Waiting | None]:
    """Keys other runs held, looked at again in one read: each settled, still held, or
    None (to walk again: the holder is gone, or the key is free now). A ledger fault stops
    the batch and leaves them all waiting (reported unknown at its end)."""
    assert ctx.ledger is not None
    book = ctx.ledger
    try:
        rows = await book.run(book.ledger.get_many, [item.job.key for item in waiting])
    except SmspipeError as exc:
        ctx.stop(_fault_info(exc))
        return list(waiting)
    outcomes: list[Result | Waiting | None] = []
    for item in waiting:
        job = item.job
        row = rows.get(job.key)
        if row is None and job.legacy_keys:
            outcomes.append(None)  # a schema 1 row may stand for it: the full walk looks
            continue
        facts = states.Facts(job.sms.to, job.body_sha256, job.media_sha256)
        outcomes.append(
            settled_by(job, states.decide(row, facts, force=ctx.options.force, run_id=ctx.run_id))
        )
    return outcomes


async def _reconcile(ctx: Context, job: Job, row: KeyRow) -> KeyRow | None:
    """A dead run's open key: adopted and settled. The adopted row when nothing was created
    (send it now), else None (decide again: it is sent, or unsettled and this run's)."""
    assert ctx.ledger is not None
    book = ctx.ledger
    adopted = await book.run(book.ledger.adopt, row.key, row.version)
    if adopted is None:
        return None
    outcome = await reconcile.reconcile(ctx, adopted, job.credentials)
    return adopted if outcome.settlement == Settlement.ABSENT else None


async def _send(
    ctx: Context, job: Job, *, claim: int | None, send_at: datetime | None = None
) -> Result | _Lost:
    """Claim (*claim*: the version read, None for no row), then create the message:
    retrying what certainly created nothing, never resending what may exist unseen."""
    assert job.credentials is not None
    gateway = ctx.gateways.get(job.credentials)
    claimed = ctx.ledger is None
    attempt = 0
    async with ctx.slots:
        while True:
            attempt += 1
            started = await _begin(ctx, job, None if claimed else claim, claimed=claimed)
            if not isinstance(started, float):
                return started
            claimed = True
            outcome = await _create(ctx, gateway, job, send_at)
            if not isinstance(outcome, GatewayError):
                break
            step = ctx.options.policy.after(outcome, attempt, ctx.rng)
            if step.next != Next.RETRY:
                return await _after_failure(
                    ctx, job, gateway, outcome, step.next, step.note, attempt, started
                )
            if not await _wait_to_retry(ctx, outcome, step.delay):
                return await _give_back(ctx, job, True, not_sent(ctx, job))
    # Recording what Twilio created holds no slot: the next request may go meanwhile.
    return await _sent(ctx, job, outcome, attempt, send_at)


async def _begin(ctx: Context, job: Job, claim: int | None, *, claimed: bool) -> float | Result | _Lost:
    """One attempt's turn: claim the key (or mark another attempt), wait for the start's
    moment, make sure this run may still send. The moment it starts, or why it does not."""
    book = ctx.ledger
    async with ctx.pacer.turn(_pace_name(job)) as turn:
        if ctx.stopping:
            return await _give_back(ctx, job, claimed, not_sent(ctx, job))
        if book is not None and not claimed:
            if await book.run(book.ledger.claim, job.key, claim, _attempt(job)) is None:
                return LOST
        elif book is not None:
            await book.run(book.ledger.touch, job.key)
        try:
            waited = await turn.ready()
        except SmspipeError as exc:  # a shared rate's turn could not be asked for: nothing left
            ctx.stop(_fault_info(exc))
            return await _give_back(ctx, job, True, not_sent(ctx, job))
        if waited > TOUCH_AFTER and book is not None:
            # The grace period runs from the attempt: it starts now, not at the claim.
            await book.run(book.ledger.touch, job.key)
        if ctx.stopping or not ctx.may_send:
            if not ctx.stopping:
                ctx.stop(_lease_doubt(ctx))
            return await _give_back(ctx, job, True, not_sent(ctx, job))
        return time.time()


async def _create(
    ctx: Context, gateway: AsyncGateway, job: Job, send_at: datetime | None
) -> SentMessage | GatewayError:
    ctx.progress.in_flight += 1
    try:
        return await gateway.create_message(
            job.sms,
            sender=job.sender.sender,
            messaging_service_sid=job.sender.messaging_service_sid,
            status_callback=job.status_callback,
            send_at=send_at,
        )
    except GatewayError as fault:
        return fault
    finally:
        ctx.progress.in_flight -= 1


async def _wait_to_retry(ctx: Context, fault: GatewayError, delay: float) -> bool:
    """Wait before the next attempt (a 429's Retry-After holds every start); False if stopped."""
    if isinstance(fault, TemporaryFault) and fault.status == 429 and fault.retry_after:
        ctx.pacer.hold(fault.retry_after)
    ctx.progress.retrying += 1
    try:
        return await ctx.sleep(delay)
    finally:
        ctx.progress.retrying -= 1


async def _after_failure(
    ctx: Context,
    job: Job,
    gateway: AsyncGateway,
    fault: GatewayError,
    step: Next,
    note: str | None,
    attempt: int,
    started: float,
) -> Result:
    book = ctx.ledger
    if step == Next.FAIL:
        if book is not None:
            await book.run(book.ledger.record_failed, job.key, fault.code, fault.message)
        if fault.code in suppression.OPT_OUT_CODES:
            return await _opted_out(ctx, job, fault, attempt)
        return Result(
            job.verdict,
            Status.FAILED,
            job.key,
            job=job,
            attempts=attempt,
            error=ErrorInfo.from_gateway(fault),
        )
    if step == Next.HALT:
        assert job.credentials is not None
        error = halt_error(fault, job.credentials)
        ctx.stop(error)
        return await _give_back(
            ctx,
            job,
            True,
            Result(job.verdict, Status.FAILED, job.key, job=job, attempts=attempt, error=error),
        )
    if step == Next.GIVE_UP:
        return await _give_back(
            ctx,
            job,
            True,
            Result(
                job.verdict,
                Status.FAILED,
                job.key,
                job=job,
                attempts=attempt,
                error=ErrorInfo.from_gateway(fault, temporary=True),
                note=note,
            ),
        )
    return await _look_up(ctx, job, gateway, fault, attempt, started)


async def _look_up(
    ctx: Context, job: Job, gateway: AsyncGateway, fault: GatewayError, attempt: int, started: float
) -> Result:
    """The attempt may have created the message: look, never resend in this run."""
    probe = reconcile.Probe(
        key=job.key,
        to=job.sms.to,
        sender=job.sender.sender,
        messaging_service_sid=job.sender.messaging_service_sid,
        account_sid=job.credentials.account_sid if job.credentials else None,
        body=job.sms.body,
        body_sha256=job.body_sha256,
        media_sha256=job.media_sha256,
        since=datetime.fromtimestamp(started, UTC),
    )
    found = await reconcile.find(ctx, gateway, probe, (0.0,) if ctx.stopping else ctx.options.lookup_waits)
    if found.message is not None and found.outcome != FoundOutcome.AMBIGUOUS:
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
    if found.message is not None:
        detail = reconcile._ambiguous_note(found.message.sid)
    else:
        age = time.time() - started
        detail = reconcile.unsettled_note(found, age, ctx.options.grace, earlier=False)
    note = f"{fault.message}; {detail}"
    if ctx.ledger is not None:
        book = ctx.ledger
        try:
            await book.run(book.ledger.record_unknown, job.key, note, time.time() - started)
        except SmspipeError as exc:  # the key stays open all the same: the next run looks
            ctx.stop(_fault_info(exc))
    return unknown(job, note, attempts=attempt, code=fault.code, more_info=fault.more_info)


async def _opted_out(ctx: Context, job: Job, fault: GatewayError, attempt: int) -> Result:
    """Twilio refused it because the recipient opted out: on the list from now on, and not a failure."""
    assert fault.code is not None
    source = suppression.source_for(fault.code)
    if ctx.ledger is not None:
        book = ctx.ledger
        await book.run(book.ledger.add_optouts, [suppression.bare(job.sms.to)], source)
    return Result(
        job.verdict,
        Status.SUPPRESSED,
        job.key,
        job=job,
        attempts=attempt,
        note=f"opted out: Twilio refused it ({fault.code}: {suppression.OPT_OUT_CODES[fault.code]}); "
        "added to the suppression list",
        error=ErrorInfo.from_gateway(fault),
    )


async def _sent(
    ctx: Context, job: Job, message: SentMessage, attempt: int, send_at: datetime | None = None
) -> Result:
    result = Result(
        job.verdict,
        Status.SCHEDULED if send_at is not None else Status.SENT,
        job.key,
        job=job,
        sid=message.sid,
        segments=message.segments,
        attempts=attempt,
        not_before=send_at,
        note=f"quiet hours: Twilio sends it at {send_at:%Y-%m-%d %H:%M} UTC" if send_at else None,
    )
    if ctx.ledger is None:
        return result
    book = ctx.ledger
    record = Message(
        sid=message.sid,
        key=job.key,
        recipient=job.sms.to,
        sender=message.sender or job.sender.sender,
        messaging_service_sid=job.sender.messaging_service_sid,
        account_sid=job.credentials.account_sid if job.credentials else None,
        segments=message.segments,
        body_sha256=job.body_sha256,
        media_sha256=job.media_sha256,
        status=message.status,
    )
    try:
        await book.later(book.ledger.record_sent, job.key, record)
    except SmspipeError as exc:
        # Delivered all the same: say so, with its SID. The key stays open, and the
        # next run's reconciliation finds the message in Twilio's log.
        ctx.stop(_fault_info(exc))
        result.note = f"not recorded in the ledger ({exc.message}): the next run finds it in Twilio's log"
    return result


async def _give_back(ctx: Context, job: Job, claimed: bool, result: Result) -> Result:
    """The attempt certainly created nothing: the key goes back to what it was."""
    if claimed and ctx.ledger is not None:
        book = ctx.ledger
        try:
            await book.run(book.ledger.release, job.key)
        except SmspipeError as exc:
            ctx.stop(_fault_info(exc))
    return result


def _pace_name(job: Job) -> str:
    """What a shared rate is kept for: the sender (a number, or a Messaging Service) of an account."""
    account = job.credentials.account_sid if job.credentials else ""
    return f"{account}/{job.sender.sender or job.sender.messaging_service_sid or ''}"


def _attempt(job: Job) -> Attempt:
    return Attempt(
        recipient=job.sms.to,
        sender=job.sender.sender,
        messaging_service_sid=job.sender.messaging_service_sid,
        account_sid=job.credentials.account_sid if job.credentials else None,
        body=job.sms.body,
        body_sha256=job.body_sha256,
        media_sha256=job.media_sha256,
        match_sha256=reconcile.match_digest(job.sms.body),
    )


# --- results ------------------------------------------------------------------------------


def not_sent(ctx: Context, job: Job) -> Result:
    """A job the batch stopped before sending: why, and whether a re-run will do."""
    reason = ctx.stop_reason
    if ctx.signal is not None or reason is None:
        message = "not sent: interrupted"
        error = ErrorInfo(message, temporary=True)
    else:
        message = f"not sent: the batch stopped: {reason.message}"
        error = ErrorInfo(message, code=reason.code, temporary=reason.temporary, fatal=reason.fatal)
    return Result(job.verdict, Status.FAILED, job.key, job=job, note=message, error=error)


def unknown(
    job: Job, note: str, *, attempts: int = 0, code: int | None = None, more_info: str | None = None
) -> Result:
    return Result(
        job.verdict,
        Status.UNKNOWN,
        job.key,
        job=job,
        note=note,
        attempts=attempts,
        error=ErrorInfo(note, code=code, more_info=more_info, temporary=True),
    )


def halt_error(fault: GatewayError, credentials: object) -> ErrorInfo:
    """Credentials refused or the endpoint misconfigured: say which, and that the batch stopped."""
    from smspipe.gateway import AuthRefused

    if isinstance(fault, AuthRefused):
        method = getattr(credentials, "method", "credentials")
        account = getattr(credentials, "account_sid", "?")
        source = getattr(credentials, "source", "?")
        message = (
            f"{fault.message}; check the {method} for account {account} (from {source}); "
            "the batch was stopped"
        )
    else:
        message = f"{fault.message}; the batch was stopped"
    return ErrorInfo(message=message, code=fault.code, more_info=fault.more_info, fatal=True)


def _fault_info(exc: SmspipeError) -> ErrorInfo:
    fatal = isinstance(exc, LedgerError)
    return ErrorInfo(str(exc), fatal=fatal, temporary=not fatal)


def _ledger_fault(ctx: Context, job: Job, exc: SmspipeError) -> Result:
    ctx.stop(_fault_info(exc))
    return not_sent(ctx, job)


def _lease_doubt(ctx: Context) -> ErrorInfo:
    return ErrorInfo(
        f"this run could not renew its lease on the ledger within {ctx.options.lease / 2:g} s "
        "(the process was stopped or stalled): another run may hold its messages now, so it "
        "sends nothing more; run again",
        temporary=True,
    )
