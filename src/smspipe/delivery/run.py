"""The life cycle of ``send``: open the ledger, reconcile, submit, interrupt, close.

:func:`send` (and :func:`send_async`, inside a running event loop) is the one
core call behind ``smspipe send`` and :func:`smspipe.send`: it reads the
documents, decides and delivers every one, and hands each result to
*on_result* as it completes; the totals it returns decide the exit code
(:func:`smspipe.delivery.results.exit_code`). A dry run consults the ledger
read-only and applies the very decision function a real run applies.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from smspipe import config, documents, sms
from smspipe.delivery import gates, states, suppression
from smspipe.delivery.gates import Rules
from smspipe.delivery.options import Options, Progress
from smspipe.delivery.planner import Job, Planner
from smspipe.delivery.results import DeliveryReport, Earlier, ErrorInfo, Result, Status, Totals
from smspipe.errors import SmspipeError, Terminated, UsageError
from smspipe.ledger import KeyRow, KeyState, Ledger, Message, OptOut, SentQuery, open_ledger
from smspipe.ledger import Settings as LedgerSettings
from smspipe.spelling import setting

if TYPE_CHECKING:
    from smspipe.delivery.engine import Writer
    from smspipe.delivery.runtime import Context
    from smspipe.gateway import AsyncGateway, MessageState


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Everything one ``send`` needs, parsed."""

    settings: config.Settings
    policy: sms.Policy
    #: the documents, read once, lazily (smspipe.inputs, smspipe.documents)
    documents: Iterable[documents.Document | documents.Problem]
    options: Options
    dry_run: bool = False
    use_ledger: bool = True
    #: one line per HTTP request (``-v``)
    http_log: Callable[[str], None] | None = None
    #: quiet hours, the per-recipient cap, scheduling and the clock (smspipe.delivery.gates)
    rules: Rules = field(default_factory=Rules)
    #: ``send --wait``: seconds to wait for the final status of what this run created
    wait: float | None = None


def options_from(settings: config.Settings, *, force: bool = False, handle_signals: bool = True) -> Options:
    """How a run with these settings sends."""
    resolved = settings.resolved
    grace = resolved.reconcile_grace
    return Options(
        concurrency=resolved.concurrency,
        rate=resolved.rate,
        shared_rate=resolved.shared_rate,
        retries=resolved.retries,
        max_wait=resolved.max_wait,
        force=force,
        grace=grace,
        lease=resolved.run_lease,
        # Another run's request settles within its timeout, its lookups soon after.
        hold_wait=resolved.timeout + sum(Options(grace=grace).lookup_waits) + 1.0,
        handle_signals=handle_signals,
    )


def send(
    request: SendRequest,
    *,
    on_result: Callable[[Result], None],
    on_line: Callable[[str], None],
    progress: Progress | None = None,
) -> Totals:
    """Deliver (or, for a dry run, judge) every document of *request*. Runs its own event loop."""
    totals = Totals()
    with _terminated_before_the_loop():
        if request.dry_run:
            _judge_all(request, totals, on_result)
            return totals
        planner, ledger = _open_run(request)
        try:
            import asyncio

            asyncio.run(_deliver(request, ledger, planner, totals, on_result, on_line, progress))
        finally:
            _close_run(ledger)
    return totals


async def send_async(
    request: SendRequest,
    *,
    on_result: Callable[[Result], None],
    on_line: Callable[[str], None],
    progress: Progress | None = None,
) -> Totals:
    """:func:`send` in the running event loop: the ledger's and the reader's work in threads."""
    from asyncio import to_thread

    totals = Totals()
    if request.dry_run:
        await to_thread(_judge_all, request, totals, on_result)
        return totals
    planner, ledger = await to_thread(_open_run, request)
    try:
        await _deliver(request, ledger, planner, totals, on_result, on_line, progress)
    finally:
        await to_thread(_close_run, ledger)
    return totals


def _judge_all(request: SendRequest, totals: Totals, on_result: Callable[[Result], None]) -> None:
    for result in dry_run(request):
        totals.add(result)
        on_result(result)


@contextlib.contextmanager
def _terminated_before_the_loop() -> Iterator[None]:
    """SIGTERM before (or after) the event loop handles it: an error, exit 143, not a silent death.

    Nothing is claimed outside the loop, so there is nothing to settle.
    """

    def terminated(signum: int, frame: object) -> None:
        raise Terminated("terminated (SIGTERM) before anything was sent")

    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not the main thread: the caller's signals are the caller's
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _open_run(request: SendRequest) -> tuple[Planner, Ledger | None]:
    """The planner and the ledger of a real run, its run registered; refused before anything starts."""
    # Credentials never cross the network in clear: refused (exit 2) before anything starts.
    request.settings.resolved.api_url_for_sending()
    planner = Planner(request.settings, request.policy, need_credentials=True)
    if not request.use_ledger:
        if request.options.shared_rate and request.options.rate:
            raise UsageError(
                "a shared rate is kept in the ledger",
                hint=f"drop {setting('no_ledger')}, or {setting('shared_rate')}",
            )
        return planner, None
    settings = LedgerSettings(lease=request.options.lease)
    ledger = open_ledger(request.settings.resolved.ledger, settings=settings)
    assert ledger is not None  # None only when opened read-only
    try:
        ledger.start_run()
        planner.legacy_accounts = ledger.legacy_accounts()
    except BaseException:
        ledger.close()
        raise
    return planner, ledger


def _close_run(ledger: Ledger | None) -> None:
    if ledger is None:
        return
    try:
        with contextlib.suppress(SmspipeError):
            ledger.end_run()
    finally:
        ledger.close()


def _planned(
    planner: Planner, items: Iterable[documents.Document | documents.Problem]
) -> Iterator[Job | Result]:
    for item in items:
        yield from planner.plan(item)


async def _deliver(
    request: SendRequest,
    ledger: Ledger | None,
    planner: Planner,
    totals: Totals,
    on_result: Callable[[Result], None],
    on_line: Callable[[str], None],
    progress: Progress | None,
) -> None:
    # asyncio, aiohttp and twilio: loaded only when something is sent
    from asyncio import to_thread

    from smspipe.delivery.engine import Engine, Feed, Writer
    from smspipe.delivery.runtime import Context, Gateways, LedgerThread

    started = time.monotonic()
    items = _planned(planner, request.documents)
    options = request.options
    book = LedgerThread(ledger) if ledger is not None else None
    gateways = Gateways(_gateway_factory(request))
    writers: list[Writer] = []
    # send --wait: the results of messages this run created wait for their final status
    held: list[Result] = []
    write = _holding(on_result, held) if request.wait is not None else on_result

    def writer(freed: Callable[[int], None], broken: Callable[[], None]) -> Writer:
        writers.append(Writer(totals, write, on_line, freed, broken))
        return writers[0]

    ctx = Context(
        options=options,
        gateways=gateways,
        ledger=book,
        totals=totals,
        run_id=ledger.run.run_id if ledger is not None else uuid.uuid4().hex,
        log=lambda line: writers[0].line(line),  # noqa: PLW0108 - the writer is made below
        progress=progress or Progress(),
        rules=request.rules,
        optouts=_optouts_snapshot(request) if ledger is None else frozenset(),
    )
    if ledger is not None:  # without a ledger there is no lease to lose
        ctx.lease_renewed(started)
    engine = Engine(ctx, writer)
    try:
        await engine.run(Feed(items, options.admitted), planner.default_credentials)
        await engine.writer.close()  # every result written: the held ones are all there
        if held and request.wait is not None and not ctx.stopping:
            await _wait_for_final(ctx, held, request.wait, on_line, totals)
    finally:
        try:
            await gateways.aclose()
        finally:
            await engine.writer.close()
            for result in held:  # in their order, each with its final status when it has one
                on_result(result)
            if book is not None:
                await to_thread(book.close)
    totals.signal = ctx.signal
    if engine.writer.error is not None:
        raise engine.writer.error


def _holding(on_result: Callable[[Result], None], held: list[Result]) -> Callable[[Result], None]:
    """*on_result*, but a message this run created is kept back (``send --wait``)."""

    def write(result: Result) -> None:
        if result.status == Status.SENT and result.sid and result.job is not None:
            held.append(result)
        else:
            on_result(result)

    return write


async def _wait_for_final(
    ctx: Context, held: list[Result], seconds: float, on_line: Callable[[str], None], totals: Totals
) -> None:
    """Poll the held messages until final or *seconds* pass; each result gets its delivery."""
    from smspipe.delivery import follow

    by_credentials: dict[config.Credentials, list[str]] = {}
    for result in held:
        assert result.job is not None and result.job.credentials is not None and result.sid is not None
        by_credentials.setdefault(result.job.credentials, []).append(result.sid)
    states: dict[str, MessageState] = {}
    for credentials, sids in by_credentials.items():
        waited = await follow.wait_for(ctx, ctx.gateways.get(credentials), sids, seconds, on_line)
        states.update(waited.states)
    for result in held:
        assert result.sid is not None
        result.delivery = _report(states.get(result.sid))
        totals.followed(result.delivery)


def _report(state: MessageState | None) -> DeliveryReport:
    from smspipe import twilio_errors

    if state is None:
        return DeliveryReport(None)
    explained = twilio_errors.explain(state.error_code)
    return DeliveryReport(
        state.status,
        state.error_code,
        state.error_message,
        explained.meaning if explained else None,
        explained.action if explained else None,
        state.price,
        state.price_unit,
    )


def _optouts_snapshot(request: SendRequest) -> frozenset[str]:
    """A run without a ledger still never texts a number on the configured ledger's list."""
    ledger = open_ledger(request.settings.resolved.ledger, read_only=True)
    if ledger is None:
        return frozenset()
    with ledger:
        return frozenset(entry.phone for entry in ledger.optouts())


def _gateway_factory(request: SendRequest) -> Callable[[config.Credentials], AsyncGateway]:
    from smspipe.gateway import AsyncGateway

    api_url = request.settings.resolved.api_url
    timeout = request.settings.resolved.timeout

    def factory(credentials: config.Credentials) -> AsyncGateway:
        return AsyncGateway(
            credentials,
            api_url=api_url,
            timeout=timeout,
            http_log=request.http_log,
            pool_size=request.options.concurrency,
        )

    return factory


# --- dry run ----------------------------------------------------------------------------


def dry_run(request: SendRequest) -> Iterator[Result]:
    """Everything but the HTTP call: each document judged as a real run would judge it."""
    ledger = None
    if request.use_ledger:
        ledger = open_ledger(request.settings.resolved.ledger, read_only=True)
    planner = Planner(request.settings, request.policy, need_credentials=False)
    if ledger is not None:
        planner.legacy_accounts = ledger.legacy_accounts()
    run_id = uuid.uuid4().hex
    memory = _Seen() if request.use_ledger else None
    optouts = frozenset() if request.use_ledger else _optouts_snapshot(request)
    try:
        for item in _planned(planner, request.documents):
            if isinstance(item, Result):
                yield item
            else:
                judged = _judge(item, ledger, memory, run_id, request.options.force)
                held = None
                if judged.status == Status.DRY_RUN:
                    held = _held(item, ledger, optouts, request.rules)
                yield held or judged
    finally:
        if memory is not None:
            memory.close()
        if ledger is not None:
            ledger.close()


def _held(job: Job, ledger: Ledger | None, optouts: frozenset[str], rules: Rules) -> Result | None:
    """What a real run would hold back (suppressed, deferred, scheduled), judged the same way."""
    now = rules.now()
    phone = suppression.bare(job.sms.to)
    opted_out = ledger.opted_out(phone) if ledger is not None else None
    if opted_out is None and phone in optouts:
        opted_out = OptOut(phone, "suppression list", now.timestamp())
    since = gates.cap_window(rules, now)
    recent = None
    if ledger is not None and since is not None and rules.cap is not None:
        recent = ledger.sent(SentQuery(since=since, to=job.sms.to, limit=rules.cap.count))
    decision = gates.hold(job, rules, opted_out=opted_out, recent=recent, now=now)
    if decision is None:
        return None
    return Result(
        job.verdict, decision.status, job.key, job=job, note=decision.note, not_before=decision.not_before
    )


def _judge(job: Job, ledger: Ledger | None, memory: _Seen | None, run_id: str, force: bool) -> Result:
    if memory is None:  # no ledger: every document is sent
        return Result(job.verdict, Status.DRY_RUN, job.key, job=job)
    row = memory.get(job.key, run_id)
    if row is None and ledger is not None:
        row = ledger.get(job.key, job.legacy_keys)
    facts = states.Facts(job.sms.to, job.body_sha256, job.media_sha256)
    decision = states.decide(row, facts, force=force, run_id=run_id)
    action = decision.action
    if action == states.Action.SEND:
        memory.add(job)
        return Result(job.verdict, Status.DRY_RUN, job.key, job=job)
    if action == states.Action.SKIP:
        return Result(
            job.verdict,
            Status.SKIPPED,
            job.key,
            job=job,
            sid=decision.sid or None,
            segments=decision.segments,
            note=decision.note,
        )
    if action == states.Action.CONFLICT:
        earlier = decision.earlier
        if earlier is not None and not earlier.sid:
            earlier = Earlier(earlier.to, None)
        return Result(
            job.verdict,
            Status.CONFLICT,
            job.key,
            job=job,
            note=decision.note,
            earlier=earlier,
            error=ErrorInfo(decision.note or "conflict"),
        )
    if action == states.Action.RECONCILE:
        note = "an earlier run was interrupted while sending it: a real run looks it up in Twilio's log first"
    else:
        note = decision.note or "its fate is not settled yet"
    return Result(
        job.verdict, Status.UNKNOWN, job.key, job=job, note=note, error=ErrorInfo(note, temporary=True)
    )


class _Seen:
    """Keys a dry run would have sent, as a real run's ledger would hold them.

    In a temporary file, so memory stays flat on any input length.
    """

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="smspipe-dry-run-")
        path = Path(self._directory.name) / "seen.sqlite3"
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE seen (key TEXT PRIMARY KEY, recipient TEXT, body_sha256 TEXT, media_sha256 TEXT)"
        )

    def add(self, job: Job) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?)",
            (job.key, job.sms.to, job.body_sha256, job.media_sha256),
        )

    def get(self, key: str, run_id: str) -> KeyRow | None:
        found = self._db.execute("SELECT * FROM seen WHERE key = ?", (key,)).fetchone()
        if found is None:
            return None
        _, recipient, body_sha256, media_sha256 = found
        # sid "": the message this dry run would have sent (shown as no sid)
        message = Message(
            "", key, recipient, body_sha256=body_sha256, media_sha256=media_sha256, run_id=run_id
        )
        return KeyRow(
            key=key,
            state=KeyState.SENT,
            recipient=recipient,
            sender=None,
            messaging_service_sid=None,
            account_sid=None,
            body=None,
            body_sha256=body_sha256,
            media_sha256=media_sha256,
            sid=None,
            segments=None,
            error_code=None,
            error_message=None,
            holder=None,
            attempts=0,
            attempt_age=None,
            version=0,
            latest=message,
        )

    def close(self) -> None:
        self._db.close()
        self._directory.cleanup()
