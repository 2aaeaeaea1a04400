"""After the 201: fetching where messages stand (``status --refresh``, ``send --wait``).

Each message is fetched by SID (``GET .../Messages/{sid}.json``) with the
very machinery sending uses: the run's :class:`~smspipe.delivery.runtime.Context`
(at most ``concurrency`` requests in flight, ``rate`` starts per second, a
429's Retry-After holding every start) and the engine's
:class:`~smspipe.delivery.policy.RetryPolicy` (429, 5xx and network faults
retried with backoff; a fault that would make a create ambiguous is simply
retried: a GET changes nothing). What comes back is stored in the ledger
only as a step forward (:mod:`smspipe.lifecycle`); an error code that means
the recipient opted out puts it on the suppression list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from smspipe import config, lifecycle
from smspipe.delivery import suppression
from smspipe.delivery.policy import Next
from smspipe.delivery.runtime import Context
from smspipe.delivery.walk import halt_error
from smspipe.errors import AuthenticationError
from smspipe.gateway import AsyncGateway, GatewayError, MessageState, TemporaryFault
from smspipe.ledger import Delivery, Ledger

#: ``send --wait``: the first pause between two rounds of fetches, doubling up to the longest
FIRST_POLL = 1.0
LONGEST_POLL = 30.0


@dataclass(slots=True)
class Fetched:
    """What fetching a set of messages found."""

    states: dict[str, MessageState] = field(default_factory=dict)
    #: sid -> the fault that outlasted the retries (or a refusal: not found, another account)
    faults: dict[str, GatewayError] = field(default_factory=dict)
    #: ledger rows changed (a step forward)
    changed: int = 0


def delivery_of(state: MessageState) -> Delivery:
    return Delivery(
        status=state.status or "unknown",
        error_code=state.error_code,
        error_message=state.error_message,
        price=state.price,
        price_unit=state.price_unit,
        date_sent=_seconds(state.date_sent),
        date_updated=_seconds(state.date_updated),
        segments=state.num_segments,
    )


def _seconds(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


async def fetch_all(ctx: Context, gateway: AsyncGateway, sids: Iterable[str]) -> Fetched:
    """Fetch every SID (bounded, paced, retried) and store each answer in the ledger as it comes."""
    fetched = Fetched()
    # At most a window of tasks alive at once: 10,000 SIDs are not 10,000 coroutines in memory.
    window = asyncio.Semaphore(ctx.options.admitted)
    tasks: set[asyncio.Task[None]] = set()
    for sid in sids:
        if ctx.stopping:
            break
        await window.acquire()
        task = asyncio.create_task(_fetch_and_store(ctx, gateway, sid, fetched))
        tasks.add(task)
        task.add_done_callback(_finished(tasks, window))
    while tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
    return fetched


def _finished(
    tasks: set[asyncio.Task[None]], window: asyncio.Semaphore
) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        window.release()

    return done


async def _fetch_and_store(ctx: Context, gateway: AsyncGateway, sid: str, fetched: Fetched) -> None:
    outcome = await fetch_one(ctx, gateway, sid)
    if isinstance(outcome, GatewayError):
        fetched.faults[sid] = outcome
        return
    if outcome is None:
        return
    fetched.states[sid] = outcome
    if ctx.ledger is None:
        return
    book = ctx.ledger
    if await book.run(book.ledger.update_delivery, sid, delivery_of(outcome)):
        fetched.changed += 1
    code = outcome.error_code
    if code in suppression.OPT_OUT_CODES and outcome.to:
        assert code is not None
        await book.run(book.ledger.add_optouts, [suppression.bare(outcome.to)], suppression.source_for(code))


async def fetch_one(ctx: Context, gateway: AsyncGateway, sid: str) -> MessageState | GatewayError | None:
    """One message's state: retried as sending retries; None when the run stopped first."""
    attempt = 0
    async with ctx.slots:
        while True:
            attempt += 1
            async with ctx.pacer.turn() as turn:
                await turn.ready()
            if ctx.stopping:
                return None
            try:
                return await gateway.fetch_message(sid)
            except GatewayError as fault:
                step = ctx.options.policy.after(fault, attempt, ctx.rng)
                nxt, delay = step.next, step.delay
                if nxt == Next.LOOK_UP:  # a GET creates nothing: try it again like any temporary fault
                    wait = ctx.options.policy.delay(attempt, None, ctx.rng) or 0.0
                    nxt, delay = (Next.RETRY, wait) if attempt <= ctx.options.retries else (Next.GIVE_UP, 0.0)
                if nxt == Next.HALT:
                    ctx.stop(halt_error(fault, gateway.credentials))
                if nxt != Next.RETRY:
                    return fault
                if isinstance(fault, TemporaryFault) and fault.status == 429 and fault.retry_after:
                    ctx.pacer.hold(fault.retry_after)
                if not await ctx.sleep(delay):
                    return None


# --- send --wait ------------------------------------------------------------------------------


@dataclass(slots=True)
class Waited:
    """Where the messages stood when ``send --wait`` stopped waiting."""

    states: dict[str, MessageState] = field(default_factory=dict)
    faults: dict[str, GatewayError] = field(default_factory=dict)


async def wait_for(
    ctx: Context,
    gateway: AsyncGateway,
    sids: list[str],
    seconds: float,
    on_line: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> Waited:
    """Poll *sids* until each is final or *seconds* have passed (backing off between rounds)."""
    deadline = clock() + seconds
    waited = Waited()
    pending = list(sids)
    pause = FIRST_POLL
    while pending and not ctx.stopping:
        fetched = await fetch_all(ctx, gateway, pending)
        waited.states.update(fetched.states)
        waited.faults.update(fetched.faults)
        pending = [
            sid
            for sid in pending
            if not lifecycle.is_final(_status(waited, sid)) and not _refused(fetched.faults.get(sid))
        ]
        left = deadline - clock()
        on_line(_waiting_line(waited, sids, pending, left))
        if not pending or left <= 0:
            break
        if not await ctx.sleep(min(pause, left)):
            break
        pause = min(pause * 2, LONGEST_POLL)
    return waited


def _status(waited: Waited, sid: str) -> str | None:
    state = waited.states.get(sid)
    return state.status if state is not None else None


def _refused(fault: GatewayError | None) -> bool:
    """A fault that asking again will not change (not found, another account)."""
    return fault is not None and not isinstance(fault, TemporaryFault)


def _waiting_line(waited: Waited, sids: list[str], pending: list[str], left: float) -> str:
    counts: dict[str, int] = {}
    for sid in sids:
        status = _status(waited, sid) or "unknown"
        counts[status] = counts.get(status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if not pending:
        return f"smspipe: every message is final: {parts}"
    return f"smspipe: waiting for {len(pending)} of {len(sids)} messages ({parts}; {max(left, 0):.0f} s left)"


# --- status --refresh ---------------------------------------------------------------------------


def refresh(
    settings: config.Settings,
    ledger: Ledger,
    sids: list[str],
    *,
    on_line: Callable[[str], None],
    http_log: Callable[[str], None] | None = None,
) -> Fetched:
    """Fetch *sids* and store their states in *ledger* (an event loop of its own)."""
    return asyncio.run(_refresh(settings, ledger, sids, on_line, http_log))


async def _refresh(
    settings: config.Settings,
    ledger: Ledger,
    sids: list[str],
    on_line: Callable[[str], None],
    http_log: Callable[[str], None] | None,
) -> Fetched:
    from smspipe.delivery.results import Totals
    from smspipe.delivery.run import options_from
    from smspipe.delivery.runtime import Gateways, LedgerThread

    resolved = settings.resolved
    api_url = resolved.api_url_for_sending()  # never credentials in clear to another machine
    credentials = config.resolve_credentials(settings)
    options = options_from(settings, handle_signals=False)

    def factory(each: config.Credentials) -> AsyncGateway:
        return AsyncGateway(
            each, api_url=api_url, timeout=resolved.timeout, http_log=http_log, pool_size=options.concurrency
        )

    gateways = Gateways(factory)
    book = LedgerThread(ledger)
    ctx = Context(
        options=options,
        gateways=gateways,
        ledger=book,
        totals=Totals(),
        run_id=ledger.run.run_id,
        log=on_line,
    )
    try:
        fetched = await fetch_all(ctx, gateways.get(credentials), sids)
    finally:
        await gateways.aclose()
        await asyncio.to_thread(book.close)
    if ctx.stop_reason is not None and ctx.stop_reason.fatal:
        raise AuthenticationError(ctx.stop_reason.message)
    return fetched
