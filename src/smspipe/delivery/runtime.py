"""What the messages of one run share: options, the ledger's thread, gateways, pacing, stop state.

The event loop never blocks: ledger calls go to one dedicated thread (one
connection; calls that queue up are committed together; a claim is durable
before its request leaves), the gateways are asyncio's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from smspipe import config
from smspipe.delivery.gates import Rules
from smspipe.delivery.options import Options, Progress
from smspipe.delivery.pacing import Pacer
from smspipe.delivery.results import ErrorInfo, Totals

if TYPE_CHECKING:
    from smspipe.gateway import AsyncGateway
    from smspipe.ledger import Ledger

T = TypeVar("T")


class LedgerThread:
    """The ledger's one thread: every call runs there, in order, off the event loop.

    The calls made in one turn of the event loop, and those made while the
    thread is busy, run together, in the order made, in one transaction
    (:meth:`smspipe.ledger.Ledger.batch`, a group commit): one sync to disk and
    one hand-over back to the loop for all of them. Each caller is answered only
    once its batch is committed, so a claim is still durable before its request
    leaves. An outcome (:meth:`later`) may wait a moment for company: recorded
    with the next claims, it costs no transaction of its own; once no claim is
    to come (:meth:`hurry`), it waits no more.
    """

    #: calls in one batch at most: a batch's transaction stays short for other runs
    MAX_BATCH = 128
    #: the longest an outcome waits for other calls to share its transaction (seconds)
    OUTCOME_DELAY = 0.05

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._handed: queue.SimpleQueue[list[_Call] | None] = queue.SimpleQueue()
        #: calls made in this turn of the loop, handed over at its end
        self._pending: list[_Call] = []
        #: how long an outcome may wait for company (seconds); 0 once no claim is to come
        self._outcome_delay = self.OUTCOME_DELAY
        #: a hand-over is due at the end of this turn of the loop
        self._handing_over = False
        #: the hand-over of outcomes that no other call came to take along
        self._outcomes_due: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(target=self._serve, name="smspipe-ledger", daemon=True)
        self._thread.start()

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run *function*(*args*) on the ledger's thread; awaitable (on the loop's thread)."""
        return self._call(function, args, None)

    def later(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """As :meth:`run`, for an outcome no request waits for: it may wait
        :attr:`OUTCOME_DELAY` to be committed with the calls that follow it."""
        delay = self._outcome_delay
        return self._call(function, args, time.monotonic() + delay if delay else None)

    def hurry(self) -> None:
        """No claim is to come (the last request of the run has started): an outcome
        would wait for company in vain, and the run's end with it."""
        self._outcome_delay = 0.0
        if self._pending:  # outcomes waiting for company: it is not coming
            for call in self._pending:
                call.due = None
            self._hand_over()

    def _call(
        self, function: Callable[..., T], args: tuple[Any, ...], due: float | None
    ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Call(loop, future, function, args, due))
        if due is None:
            if not self._handing_over:
                self._handing_over = True
                loop.call_soon(self._hand_over)
        elif self._outcomes_due is None and not self._handing_over:
            # An outcome wakes the ledger's thread only when due: until then, the next
            # call takes it along (one wake-up, one commit for both).
            self._outcomes_due = loop.call_later(self._outcome_delay, self._hand_over)
        return future

    def _hand_over(self) -> None:
        self._handing_over = False
        if self._outcomes_due is not None:
            self._outcomes_due.cancel()
            self._outcomes_due = None
        if self._pending:
            calls, self._pending = self._pending, []
            self._handed.put(calls)

    def close(self) -> None:
        """End the thread once every call made is answered (from any thread: the loop's timer
        is left alone, and finds nothing to hand over)."""
        calls, self._pending = self._pending, []
        if calls:
            self._handed.put(calls)
        self._handed.put(None)
        self._thread.join()

    def _serve(self) -> None:
        waiting: list[_Call] = []
        ended = False
        while not ended or waiting:
            if not ended:
                ended = self._collect(waiting, self._patience(waiting))
                if not ended and self._patience(waiting) != 0:
                    continue  # nothing due yet
            batch, waiting = waiting[: self.MAX_BATCH], waiting[self.MAX_BATCH :]
            if batch:
                self._run_batch(batch)

    def _patience(self, waiting: list[_Call]) -> float | None:
        """How long to wait for more calls: for ever (none), 0 (one that must run), or
        until the oldest outcome is due."""
        if not waiting:
            return None
        if any(call.due is None for call in waiting):
            return 0
        return max(0.0, min(call.due for call in waiting if call.due is not None) - time.monotonic())

    def _collect(self, waiting: list[_Call], timeout: float | None) -> bool:
        """Take what was handed over (waiting up to *timeout* for it); True once closed."""
        handed = self._handed
        try:
            calls = handed.get_nowait() if timeout == 0 else handed.get(timeout=timeout)
        except queue.Empty:
            return False
        while calls is not None:
            waiting.extend(calls)
            try:
                calls = handed.get_nowait()
            except queue.Empty:
                return False
        return True

    def _run_batch(self, batch: list[_Call]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        if len(batch) == 1:  # a transaction of its own, as durable as it needs
            outcomes.append(_outcome(batch[0]))
        else:
            durable = self.ledger.DURABLE_OPERATIONS
            try:
                with self.ledger.batch(durable=any(c.function.__name__ in durable for c in batch)):
                    outcomes.extend(_outcome(call) for call in batch)
            except Exception as exc:  # the batch failed: none of its answers stands
                outcomes = [(False, exc)] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Call, bool, Any]]] = {}
        for call, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(call.loop, []).append((call, ok, value))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_answer, answers)


class _Call:
    __slots__ = ("args", "due", "function", "future", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        function: Callable[..., Any],
        args: tuple[Any, ...],
        due: float | None,
    ) -> None:
        self.loop = loop
        self.future = future
        self.function = function
        self.args = args
        #: an outcome's latest moment to run (monotonic); None: at once
        self.due = due


def _outcome(call: _Call) -> tuple[bool, Any]:
    try:
        return True, call.function(*call.args)
    except Exception as exc:
        return False, exc


def _answer(answers: list[tuple[_Call, bool, Any]]) -> None:
    for call, ok, value in answers:
        future = call.future
        if future.done():  # cancelled: its caller was abandoned
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


GatewayFactory = Callable[[config.Credentials], "AsyncGateway"]


class Gateways:
    """One AsyncGateway per distinct credentials, made on first use (inside the loop)."""

    def __init__(self, factory: GatewayFactory) -> None:
        self._factory = factory
        self._gateways: dict[tuple[str, str, str], AsyncGateway] = {}

    def get(self, credentials: config.Credentials) -> AsyncGateway:
        key = (credentials.account_sid, credentials.username, credentials.password)
        gateway = self._gateways.get(key)
        if gateway is None:
            gateway = self._gateways[key] = self._factory(credentials)
        return gateway

    async def aclose(self) -> None:
        gateways, self._gateways = list(self._gateways.values()), {}
        for gateway in gateways:
            await gateway.aclose()


class NewKeys:
    """Whether the next document's key is likely new (no row yet), from the last few.

    A run that sends meets new keys; a re-run of an export meets keys that exist.
    Claiming a key as new first saves a read when it is; when it is not, the
    claim finds the row taken and the walk reads it (one call more): so the walk
    claims first only while that has paid off lately.
    """

    __slots__ = ("_score",)

    #: how far the evidence for either side may build up
    LIMIT = 8

    def __init__(self) -> None:
        self._score = 1

    def likely(self) -> bool:
        return self._score > 0

    def seen(self, new: bool) -> None:
        self._score = min(self.LIMIT, self._score + 1) if new else max(-self.LIMIT, self._score - 2)


@dataclass(eq=False)
class Context:
    """The state one run's messages share. Lives on the event loop's thread."""

    options: Options
    gateways: Gateways
    ledger: LedgerThread | None
    totals: Totals
    run_id: str
    log: Callable[[str], None]
    progress: Progress = field(default_factory=Progress)
    #: quiet hours, the cap, scheduling, the clock (smspipe.delivery.gates)
    rules: Rules = field(default_factory=Rules)
    #: the suppression list as the run started, for a run without a ledger to ask
    optouts: frozenset[str] = frozenset()
    pacer: Pacer = field(init=False)
    slots: asyncio.Semaphore = field(init=False)
    rng: random.Random = field(default_factory=random.Random)
    new_keys: NewKeys = field(default_factory=NewKeys)
    #: no new request starts (a signal, a halt); what is in flight settles
    stopping: bool = False
    #: why the batch stopped, for the documents it did not send
    stop_reason: ErrorInfo | None = None
    #: the signal that stopped the batch
    signal: int | None = None
    #: requests may start until then (monotonic): half the lease past the last heartbeat
    sends_allowed_until: float = float("inf")
    _stopped: asyncio.Event = field(init=False)

    def __post_init__(self) -> None:
        shared = None
        if self.options.shared_rate and self.ledger is not None:
            book = self.ledger

            async def shared(name: str, interval: float) -> float:
                return await book.run(book.ledger.take_turn, name, interval)

        self.pacer = Pacer(self.options.rate, sleep=self.sleep, shared=shared)
        self.slots = asyncio.Semaphore(self.options.concurrency)
        self._stopped = asyncio.Event()

    def stop(self, reason: ErrorInfo | None = None) -> None:
        """Start nothing more; waits end at once. The first reason given is kept."""
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason
            if reason.fatal:
                self.totals.fatal(reason.message)
            elif reason.temporary:
                self.totals.fault(reason.message)
        self.stopping = True
        self._stopped.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep; False (at once) if the batch stops meanwhile."""
        if self.stopping:
            return False
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    def lease_renewed(self, at: float) -> None:
        """A heartbeat that started at *at* (monotonic) renewed the lease."""
        self.sends_allowed_until = at + self.options.lease / 2

    @property
    def may_send(self) -> bool:
        """False once this run cannot be sure its lease holds (it may have been stopped)."""
        return time.monotonic() < self.sends_allowed_until
