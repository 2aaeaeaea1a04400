"""What the messages of one run share: options, the ledger's thread, gateways, pacing, stop state.

The event loop never blocks: ledger calls go to one dedicated thread (one
SQLite connection; a claim is durable before its request leaves), the
gateways are asyncio's own.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    """The ledger's one thread: every call runs there, in order, off the event loop."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smspipe-ledger")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


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
        self.pacer = Pacer(self.options.rate, sleep=self.sleep)
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
