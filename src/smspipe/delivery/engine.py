"""The scheduler: admits documents, runs each message's walk, and only schedules.

- Documents are read and planned in a thread (stdin may be fed slowly) and
  handed over through a bounded queue (:class:`Feed`); at most ``window``
  documents are admitted at once, and a slot is freed only when the result has
  been written, so memory stays constant on any input and a slow reader of
  stdout slows the run rather than filling memory.
- Requests in flight are bounded by ``concurrency`` (:attr:`Context.slots`).
- Within one batch, a document whose key another document of the batch is
  being sent under waits for it, then is decided against what it left.
- Keys another live run holds are re-checked at the end of the run.
- SIGINT and SIGTERM stop the starting of anything new; what is in flight
  settles; a second signal abandons it (the next run reconciles).
- The lease is renewed by a heartbeat; a run whose lease lapsed stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from smspipe.delivery import reconcile, walk
from smspipe.delivery.results import ErrorInfo, Result, Status
from smspipe.errors import SmspipeError

if TYPE_CHECKING:
    from smspipe import config
    from smspipe.delivery.planner import Job
    from smspipe.delivery.results import Totals
    from smspipe.delivery.runtime import Context

#: keys held by other runs kept for the end-of-run re-check; beyond it they are unknown at once
MAX_WAITING = 10_000
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Feed:
    """Documents read and planned in a thread, handed to the event loop through a bounded buffer.

    The loop is woken only when it waits for the next document: what the thread
    reads meanwhile is taken in one go.
    """

    _END = object()

    def __init__(self, items: Iterator[Job | Result], capacity: int) -> None:
        self._items = items
        self._space = threading.Semaphore(capacity)
        self._release_every = max(1, capacity // 4)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._buffer: list[object] = []
        #: the loop waits for the next item: the thread wakes it
        self._waiting = False
        self._arrived = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, name="smspipe-read", daemon=True).start()

    def _read(self) -> None:
        try:
            for item in self._items:
                while not self._space.acquire(timeout=0.1):
                    if self._closed.is_set():
                        return
                if self._closed.is_set():
                    return
                self._put(item)
        except BaseException as exc:  # handed to the loop, raised there
            self._put(_Failure(exc))
        finally:
            self._put(self._END)

    def _put(self, item: object) -> None:
        assert self._loop is not None
        with self._lock:
            self._buffer.append(item)
            wake, self._waiting = self._waiting, False
        if not wake:
            return
        try:
            self._loop.call_soon_threadsafe(self._arrived.set)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            self._closed.set()

    def close(self) -> None:
        """Read nothing more (called on the loop's thread)."""
        self._closed.set()
        with self._lock:
            self._buffer.append(self._END)
        self._arrived.set()

    def __aiter__(self) -> AsyncIterator[Job | Result]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Job | Result]:
        taken = 0  # items taken whose space is not given back yet
        while True:
            with self._lock:
                items, self._buffer = self._buffer, []
                if not items:
                    self._waiting = True
                    self._arrived.clear()
            if not items:
                if taken:  # before waiting: the thread may be waiting for room
                    self._space.release(taken)
                    taken = 0
                await self._arrived.wait()
                continue
            for item in items:
                if item is self._END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                taken += 1
                if taken >= self._release_every:  # room given back in a few large steps
                    self._space.release(taken)
                    taken = 0
                yield item  # type: ignore[misc]


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Writer:
    """Results and log lines written by one thread, in order, so the loop never waits on stdout.

    What the loop hands over goes to the thread in groups: after :attr:`DELAY`,
    or at once when :attr:`batch` items wait (a quarter of the admitted
    documents: the others keep coming in meanwhile). A result counts in the
    totals when written; an admitted document's slot is freed then.
    """

    _END = object()
    #: the longest an item waits for company before it goes to the thread (seconds)
    DELAY = 0.1

    def __init__(
        self,
        totals: Totals,
        write_result: Callable[[Result], None],
        write_line: Callable[[str], None],
        freed: Callable[[int], None],
        broken: Callable[[], None],
    ) -> None:
        self._totals = totals
        self._write_result = write_result
        self._write_line = write_line
        self._freed = freed
        self._broken = broken
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending: list[object] = []
        self._timer: asyncio.TimerHandle | None = None
        #: items that go to the thread at once
        self.batch = 1
        self.error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="smspipe-write", daemon=True)
        self._thread.start()

    def result(self, result: Result, *, admitted: bool) -> None:
        self._hand_over((result, admitted))

    def line(self, text: str) -> None:
        self._hand_over(text)

    def _hand_over(self, item: object) -> None:
        self._pending.append(item)
        if len(self._pending) >= self.batch:
            self._flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(self.DELAY, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._pending = self._pending, []
        if items:
            self._queue.put(items)

    def _run(self) -> None:
        while (items := self._queue.get()) is not self._END:
            freed = 0
            for item in items:  # type: ignore[attr-defined]
                freed += self._write(item)
            if freed:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nothing waits for slots
                    self._loop.call_soon_threadsafe(self._freed, freed)

    def _write(self, item: object) -> int:
        """Write one item; 1 when it frees an admitted document's slot."""
        try:
            if isinstance(item, str):
                if self.error is None:
                    self._write_line(item)
                return 0
            result = item[0]  # type: ignore[index]
            self._totals.add(result)
            if self.error is None:
                self._write_result(result)
        except BaseException as exc:  # stdout closed (| head): raised when the run ends
            if self.error is None:
                self.error = exc
                with contextlib.suppress(RuntimeError):  # nobody reads: start nothing more
                    self._loop.call_soon_threadsafe(self._broken)
        return 1 if isinstance(item, tuple) and item[1] else 0

    async def close(self) -> None:
        self._flush()
        self._queue.put(self._END)
        await asyncio.to_thread(self._thread.join)


class Engine:
    """Sends one run's jobs: bounded, paced, interruptible."""

    def __init__(
        self, ctx: Context, writer_factory: Callable[[Callable[[int], None], Callable[[], None]], Writer]
    ) -> None:
        self.ctx = ctx
        self._window = asyncio.Semaphore(ctx.options.admitted)
        self.writer = writer_factory(self._free, self._output_closed)
        self.writer.batch = max(1, ctx.options.admitted // 4)
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_run: dict[str, asyncio.Event] = {}
        self._waiting: list[walk.Waiting] = []
        self._feed: Feed | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    # --- the run -----------------------------------------------------------------------

    async def run(self, feed: Feed, credentials: config.Credentials | None) -> None:
        """Reconcile what dead runs left, send every job, re-check held keys; then return."""
        loop = asyncio.get_running_loop()
        self._feed = feed
        handled = _handle_signals(loop, self._on_signal) if self.ctx.options.handle_signals else []
        heartbeat = loop.create_task(self._heartbeats()) if self.ctx.ledger is not None else None
        try:
            await self._reconcile(credentials)
            feed.start()
            self._pump_task = loop.create_task(self._pump(feed))
            await asyncio.gather(self._pump_task, return_exceptions=True)
            self._hurry_if_last()
            await self._drain()
            await self._recheck()
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            for signum in handled:
                loop.remove_signal_handler(signum)
        if self._failure is not None:
            raise self._failure

    async def _reconcile(self, credentials: config.Credentials | None) -> None:
        if self.ctx.ledger is None:
            return
        try:
            counts = await reconcile.reconcile_orphans(self.ctx, credentials)
        except SmspipeError as exc:
            self.ctx.stop(walk._fault_info(exc))
            self.ctx.log(f"smspipe: error: {exc}")
            return
        settled = counts["found"] + counts["absent"] + counts["unknown"]
        if settled:
            self.ctx.log(
                f"smspipe: reconciled {_plural(settled, 'message')} an interrupted run left "
                f"unfinished: {counts['found']} found in Twilio's message log, {counts['absent']} not "
                f"created (sent when their document comes), {counts['unknown']} still unknown"
            )
        if counts["elsewhere"]:
            self.ctx.log(
                f"smspipe: {_plural(counts['elsewhere'], 'message')} an interrupted run left "
                "unfinished will be checked when their documents come"
            )

    async def _pump(self, feed: Feed) -> None:
        try:
            async for item in feed:
                await self._window.acquire()
                if isinstance(item, Result):
                    self._emit(item)
                    continue
                if self.ctx.stopping:
                    self._emit(walk.not_sent(self.ctx, item))
                    break
                task = asyncio.create_task(self._one(item))
                self._tasks.add(task)
                task.add_done_callback(self._finished)
        except Exception as exc:  # reading failed: settle what is in flight, then raise it
            self._failure = exc
            self.ctx.stop()
        finally:
            feed.close()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._hurry_if_last()

    def _hurry_if_last(self) -> None:
        """Every document admitted, and no more of them than slots: each holds its slot or
        is past it, so no claim is to come that outcomes could share a commit with."""
        pumped = self._pump_task is not None and self._pump_task.done()
        if pumped and self.ctx.ledger is not None and len(self._tasks) <= self.ctx.options.concurrency:
            self.ctx.ledger.hurry()

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _one(self, job: Job) -> None:
        outcome = await self._walk(job)
        if isinstance(outcome, walk.Waiting):
            if len(self._waiting) < MAX_WAITING:
                self._waiting.append(outcome)
                self._window.release()
                return
            outcome = walk.unknown(job, outcome.note)
        self._emit(outcome)

    async def _walk(self, job: Job, *, fresh: bool = True) -> Result | walk.Waiting:
        """One job's walk, after any other document of this batch with its key.

        The one that came first goes first; this one is then decided against
        what that one left (skipped, conflict, unknown).
        """
        if self.ctx.ledger is None:
            return await self._deliver(job, fresh)
        while (busy := self._in_run.get(job.key)) is not None:
            await busy.wait()
        done = self._in_run[job.key] = asyncio.Event()
        try:
            return await self._deliver(job, fresh)
        finally:
            del self._in_run[job.key]
            done.set()

    async def _deliver(self, job: Job, fresh: bool) -> Result | walk.Waiting:
        try:
            return await walk.deliver(self.ctx, job, fresh=fresh)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: report it with the document, keep the batch going
            return Result(
                job.verdict,
                Status.FAILED,
                job.key,
                job=job,
                error=ErrorInfo(f"internal error: {type(exc).__name__}: {exc}", temporary=True),
            )

    async def _recheck(self) -> None:
        """Keys other live runs held: settled meanwhile, or unknown naming the holder."""
        deadline = time.monotonic() + self.ctx.options.hold_wait
        while self._waiting and not self.ctx.stopping:
            waiting, self._waiting = self._waiting, []
            # One read for them all: most were settled by their holders meanwhile.
            looked = await walk.recheck(self.ctx, waiting)
            again = [item.job for item, outcome in zip(waiting, looked, strict=True) if outcome is None]
            walked = await asyncio.gather(*(self._walk(job, fresh=False) for job in again))
            for outcome in [*(o for o in looked if o is not None), *walked]:
                if isinstance(outcome, walk.Waiting):
                    self._waiting.append(outcome)
                else:
                    self._emit(outcome, admitted=False)
            if not self._waiting or time.monotonic() >= deadline or not await self.ctx.sleep(0.25):
                break
        for still in self._waiting:
            note = f"{still.note}, still unsettled at the end of this run: the next run settles it"
            self._emit(walk.unknown(still.job, note), admitted=False)
        self._waiting = []

    def _emit(self, result: Result, *, admitted: bool = True) -> None:
        """Hand *result* to the writer (an admitted document's slot is freed once it is written)."""
        self._count(result)
        self.writer.result(result, admitted=admitted)

    def _count(self, result: Result) -> None:
        progress = self.ctx.progress
        status = result.status
        if status in (Status.SENT, Status.SCHEDULED):
            progress.sent += 1
        elif status in (Status.SKIPPED, Status.SUPPRESSED, Status.DEFERRED):
            progress.skipped += 1
        elif status == Status.UNKNOWN:
            progress.unknown += 1
        elif status == Status.INVALID:
            progress.invalid += 1
        else:
            progress.failed += 1

    # --- control ------------------------------------------------------------------------

    def _free(self, count: int) -> None:
        """*count* admitted documents' results were written: as many may come in."""
        for _ in range(count):
            self._window.release()

    def _output_closed(self) -> None:
        self.ctx.stop()
        if self._feed is not None:
            self._feed.close()

    def _on_signal(self, signum: int) -> None:
        name = SIGNAL_NAMES.get(signal.Signals(signum), str(signum))
        if self.ctx.signal is None:
            self.ctx.signal = signum
            self.ctx.totals.signal = signum
            self.ctx.stop()
            if self._feed is not None:
                self._feed.close()
            self.ctx.log(
                f"smspipe: interrupted ({name}): finishing the "
                f"{_plural(self.ctx.progress.in_flight, 'request')} in flight; send {name} again to "
                "abandon them (the next run reconciles them)"
            )
            return
        self.ctx.log("smspipe: interrupted again: abandoning what is in flight; the next run reconciles it")
        for task in [*self._tasks, self._pump_task]:
            if task is not None:
                task.cancel()

    async def _heartbeats(self) -> None:
        from smspipe.ledger.base import HEARTBEATS_PER_LEASE

        book = self.ctx.ledger
        assert book is not None
        every = self.ctx.options.lease / HEARTBEATS_PER_LEASE
        while True:
            await asyncio.sleep(every)
            began = time.monotonic()
            try:
                alive = await book.run(book.ledger.heartbeat)
            except SmspipeError:
                continue  # cannot write now: sends stop when the lease is in doubt
            if alive:
                self.ctx.lease_renewed(began)
                continue
            reason = ErrorInfo(
                f"this run's lease on the ledger lapsed (the process was stopped or stalled for "
                f"more than {self.ctx.options.lease:g} s): another run may hold its messages now, so "
                "it sends nothing more; run again",
                temporary=True,
            )
            self.ctx.stop(reason)
            self.ctx.log(f"smspipe: {reason.message}")
            return


def _handle_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]) -> list[int]:
    """SIGINT and SIGTERM through the loop (possible on the main thread only)."""
    handled: list[int] = []
    for signum in SIGNAL_NAMES:
        try:
            loop.add_signal_handler(signum, handler, signum)
        except (RuntimeError, ValueError, NotImplementedError):
            continue
        handled.append(signum)
    return handled


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
