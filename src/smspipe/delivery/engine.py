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
    """Documents read and planned in a thread, handed to the event loop through a bounded queue."""

    _END = object()

    def __init__(self, items: Iterator[Job | Result], capacity: int) -> None:
        self._items = items
        self._space = threading.Semaphore(capacity)
        self._closed = threading.Event()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
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
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            self._closed.set()

    def close(self) -> None:
        """Read nothing more (called on the loop's thread)."""
        self._closed.set()
        self._queue.put_nowait(self._END)

    def __aiter__(self) -> AsyncIterator[Job | Result]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Job | Result]:
        while True:
            item = await self._queue.get()
            if item is self._END:
                return
            if isinstance(item, _Failure):
                raise item.error
            self._space.release()
            yield item  # type: ignore[misc]


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Writer:
    """Results and log lines written by one thread, in order, so the loop never waits on stdout.

    A result counts in the totals when written; an admitted document's slot is
    freed then.
    """

    _END = object()

    def __init__(
        self,
        totals: Totals,
        write_result: Callable[[Result], None],
        write_line: Callable[[str], None],
        freed: Callable[[], None],
        broken: Callable[[], None],
    ) -> None:
        self._totals = totals
        self._write_result = write_result
        self._write_line = write_line
        self._freed = freed
        self._broken = broken
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="smspipe-write", daemon=True)
        self._thread.start()

    def result(self, result: Result, *, admitted: bool) -> None:
        self._queue.put((result, admitted))

    def line(self, text: str) -> None:
        self._queue.put(text)

    def _run(self) -> None:
        while (item := self._queue.get()) is not self._END:
            try:
                if isinstance(item, str):
                    if self.error is None:
                        self._write_line(item)
                    continue
                result = item[0]  # type: ignore[index]
                self._totals.add(result)
                if self.error is None:
                    self._write_result(result)
            except BaseException as exc:  # stdout closed (| head): raised when the run ends
                if self.error is None:
                    self.error = exc
                    with contextlib.suppress(RuntimeError):  # nobody reads: start nothing more
                        self._loop.call_soon_threadsafe(self._broken)
            finally:
                if isinstance(item, tuple) and item[1]:
                    self._free()

    def _free(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nothing waits for the slot
            self._loop.call_soon_threadsafe(self._freed)

    async def close(self) -> None:
        self._queue.put(self._END)
        await asyncio.to_thread(self._thread.join)


class Engine:
    """Sends one run's jobs: bounded, paced, interruptible."""

    def __init__(
        self, ctx: Context, writer_factory: Callable[[Callable[[], None], Callable[[], None]], Writer]
    ) -> None:
        self.ctx = ctx
        self._window = asyncio.Semaphore(ctx.options.admitted)
        self.writer = writer_factory(self._window.release, self._output_closed)
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
                task.add_done_callback(self._tasks.discard)
        except Exception as exc:  # reading failed: settle what is in flight, then raise it
            self._failure = exc
            self.ctx.stop()
        finally:
            feed.close()

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

    async def _walk(self, job: Job) -> Result | walk.Waiting:
        """One job's walk, after any other document of this batch with its key.

        The one that came first goes first; this one is then decided against
        what that one left (skipped, conflict, unknown).
        """
        if self.ctx.ledger is None:
            return await self._deliver(job)
        while (busy := self._in_run.get(job.key)) is not None:
            await busy.wait()
        done = self._in_run[job.key] = asyncio.Event()
        try:
            return await self._deliver(job)
        finally:
            del self._in_run[job.key]
            done.set()

    async def _deliver(self, job: Job) -> Result | walk.Waiting:
        try:
            return await walk.deliver(self.ctx, job)
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
            outcomes = await asyncio.gather(*(self._walk(w.job) for w in waiting))
            for outcome in outcomes:
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
