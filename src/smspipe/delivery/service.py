"""A long-lived run: one ledger run, one pool of gateways, documents handed in one request at a time.

``send`` is a batch: it opens the ledger, registers a run, reconciles what
dead runs left, sends, and closes. A server would pay all of that on every
request (threads, a ledger connection, a new connection to Twilio). An
:class:`Outbox` does it once: opened when the server starts (reconciling
orphans then), it delivers the documents of each :meth:`Outbox.send` through
the same walk a batch uses (:func:`smspipe.delivery.walk.deliver`), under one
run id, one heartbeat and one bound on requests in flight, and is closed when
the server stops (its run ended, the ledger closed).

What one request meets stays with that request: refused credentials (the
hub's per-request ``parameters``) fail its documents, not the server.
Documents of concurrent requests with one key go one after the other, the
later decided against what the earlier left (``skipped``), as in a batch. A
key another live run holds is looked at again until ``hold_wait`` has passed,
then answered ``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from smspipe import documents
from smspipe.delivery import reconcile, walk
from smspipe.delivery.options import Progress
from smspipe.delivery.pacing import Pacer
from smspipe.delivery.planner import Job, Planner
from smspipe.delivery.results import ErrorInfo, Result, Status, Totals
from smspipe.delivery.run import SendRequest, _gateway_factory
from smspipe.delivery.runtime import Context, Gateways, LedgerThread
from smspipe.delivery.states import Settlement
from smspipe.errors import SmspipeError
from smspipe.ledger import KeyState, Ledger, open_ledger
from smspipe.ledger import Settings as LedgerSettings

#: states of a key possibly sent, not known to be
OPEN = frozenset({KeyState.SENDING, KeyState.UNKNOWN})
#: seconds between two looks at a key another live run holds
RECHECK_EVERY = 0.25


@dataclass(eq=False)
class RequestContext(Context):
    """One request's context: its own stop state (a fatal fault stops that request only); the
    outbox's gateways, ledger thread, bound and pacing; the lease the outbox's heartbeat keeps."""

    lease_holds: Callable[[], bool] = field(default=lambda: True)

    @property
    def may_send(self) -> bool:
        return self.lease_holds()


class Outbox:
    """Deliver documents as they come, exactly once, in the running event loop."""

    def __init__(self, request: SendRequest, on_line: Callable[[str], None]) -> None:
        self._request = request
        self._options = request.options
        self._log = on_line
        self._planner = Planner(request.settings, request.policy, need_credentials=True)
        self._gateways = Gateways(_gateway_factory(request))
        self._slots = asyncio.Semaphore(self._options.concurrency)
        self._pacer: Pacer | None = None
        self._ledger: Ledger | None = None
        self._book: LedgerThread | None = None
        self._run_id = ""
        self._in_run: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Future[Result]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self.sends_allowed_until = float("inf")
        self.progress = Progress()

    # --- life cycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the ledger, register the run, reconcile what dead runs left (raises SmspipeError)."""
        self._request.settings.resolved.api_url_for_sending()  # never credentials over plain HTTP
        settings = LedgerSettings(lease=self._options.lease)
        path = self._request.settings.resolved.ledger
        ledger = await asyncio.to_thread(open_ledger, path, settings=settings)
        assert ledger is not None
        self._ledger = ledger
        book = self._book = LedgerThread(ledger)
        await book.run(ledger.start_run)
        self._planner.legacy_accounts = await book.run(ledger.legacy_accounts)
        self._run_id = ledger.run.run_id
        self.sends_allowed_until = time.monotonic() + self._options.lease / 2
        self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeats())
        counts = await reconcile.reconcile_orphans(self._context(), self._planner.default_credentials)
        settled = counts["found"] + counts["absent"] + counts["unknown"]
        if settled:
            self._log(
                f"smspipe: reconciled {settled} message(s) an interrupted run left unfinished: "
                f"{counts['found']} found in Twilio's message log, {counts['absent']} not created, "
                f"{counts['unknown']} still unknown"
            )

    async def close(self) -> None:
        """Let the sends in flight settle, end the run, close the ledger."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        try:
            await self._gateways.aclose()
        finally:
            ledger, book = self._ledger, self._book
            self._ledger = self._book = None
            if ledger is not None and book is not None:
                try:
                    with contextlib.suppress(SmspipeError):
                        await book.run(ledger.end_run)
                    await asyncio.to_thread(book.close)
                finally:
                    await asyncio.to_thread(ledger.close)

    # --- one request ------------------------------------------------------------------------

    async def send(self, items: Iterable[documents.Document | documents.Problem]) -> list[Result]:
        """Every SMS of *items* delivered (or why not), in order."""
        if self._book is None:
            raise RuntimeError("the outbox is not open")
        planned = await asyncio.to_thread(lambda: [p for item in items for p in self._planner.plan(item)])
        ctx = self._context()
        tasks = [asyncio.ensure_future(self._result(ctx, p)) for p in planned]
        self._tasks.update(tasks)
        for task in tasks:
            task.add_done_callback(self._tasks.discard)
        # A caller that gives up (a request time-out) leaves the sends to settle and be recorded:
        # its retry then finds them sent, rather than possibly sent by this very run.
        return list(await asyncio.shield(asyncio.gather(*tasks)))

    async def _result(self, ctx: RequestContext, planned: Job | Result) -> Result:
        return planned if isinstance(planned, Result) else await self._walk(ctx, planned)

    async def _walk(self, ctx: RequestContext, job: Job) -> Result:
        deadline = time.monotonic() + self._options.hold_wait
        while True:
            while (busy := self._in_run.get(job.key)) is not None:
                await busy.wait()
            done = self._in_run[job.key] = asyncio.Event()
            try:
                await self._settle_own(ctx, job)
                outcome = await self._deliver(ctx, job)
            finally:
                del self._in_run[job.key]
                done.set()
            if not isinstance(outcome, walk.Waiting):
                return outcome
            if time.monotonic() >= deadline:
                return walk.unknown(job, f"{outcome.note}, still unsettled: try again later")
            await asyncio.sleep(RECHECK_EVERY)

    async def _settle_own(self, ctx: RequestContext, job: Job) -> None:
        """A key an earlier request left possibly sent (a dropped connection), looked up in
        Twilio's log now, as a new run would reconcile a dead run's key: a batch leaves that
        to its next run, but this run lasts as long as the server."""
        book = self._book
        assert book is not None
        row = await book.run(book.ledger.get, job.key, job.legacy_keys)
        if row is None or row.state not in OPEN or row.holder is None or not row.holder.this_run:
            return
        adopted = await book.run(book.ledger.adopt, row.key, row.version)
        if adopted is None:
            return
        outcome = await reconcile.reconcile(ctx, adopted, job.credentials)
        if outcome.settlement == Settlement.ABSENT:
            await book.run(book.ledger.release, row.key)

    async def _deliver(self, ctx: RequestContext, job: Job) -> Result | walk.Waiting:
        try:
            return await walk.deliver(ctx, job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: report it with the document, keep serving
            error = ErrorInfo(f"internal error: {type(exc).__name__}: {exc}", temporary=True)
            return Result(job.verdict, Status.FAILED, job.key, job=job, error=error)

    # --- Twilio's callbacks -----------------------------------------------------------------

    def signed_by_twilio(
        self, url: str, form: Mapping[str, list[str]], signature: str, settings_header: str | None
    ) -> bool | None:
        """Whether Twilio signed this callback with the account's auth token; None when there
        is no auth token to check it with (API key credentials only)."""
        from smspipe.gateway import signature_valid

        credentials = self._planner.default_credentials
        if credentials is None or credentials.method != "auth token":
            return None
        return signature_valid(credentials.password, url, form, signature, settings_header)

    # --- shared state -----------------------------------------------------------------------

    def _context(self) -> RequestContext:
        ctx = RequestContext(
            options=self._options,
            gateways=self._gateways,
            ledger=self._book,
            totals=Totals(),
            run_id=self._run_id,
            log=self._log,
            progress=self.progress,
            rules=self._request.rules,
            lease_holds=lambda: time.monotonic() < self.sends_allowed_until,
        )
        ctx.slots = self._slots
        if self._pacer is None:
            # the outbox's own, not the first request's: a request that stops must not stop the pacing
            self._pacer = Pacer(self._options.rate, shared=self._shared_turns())
        ctx.pacer = self._pacer
        return ctx

    def _shared_turns(self) -> Callable[[str, float], Awaitable[float]] | None:
        """The ledger's turns, when the rate is shared with every run of the ledger."""
        book = self._book
        if not self._options.shared_rate or book is None:
            return None

        async def shared(name: str, interval: float) -> float:
            return await book.run(book.ledger.take_turn, name, interval)

        return shared

    async def _heartbeats(self) -> None:
        from smspipe.ledger.base import HEARTBEATS_PER_LEASE

        ledger, book = self._ledger, self._book
        assert ledger is not None and book is not None
        every = self._options.lease / HEARTBEATS_PER_LEASE
        while True:
            await asyncio.sleep(every)
            began = time.monotonic()
            try:
                alive = await book.run(ledger.heartbeat)
            except SmspipeError:
                continue  # cannot write now: sends stop when the lease is in doubt
            if alive:
                self.sends_allowed_until = began + self._options.lease / 2
            else:
                self._log("smspipe: the lease on the ledger lapsed: nothing more is sent; restart the server")
                return
