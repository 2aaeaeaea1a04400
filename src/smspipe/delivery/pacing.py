"""--rate: starts paced evenly, each interval measured from the previous actual start.

A start is the moment a request goes out. Waiting for a slot reserved in
advance lets a run that fell behind (a loaded machine) catch up in a burst;
measuring each interval from the previous start as it actually happened
cannot: what arrives at Twilio stays within the rate, however late a start
was. The interval has a small margin for the network's jitter.

Without a rate nothing waits, except for a 429's Retry-After, which holds
every start until it has passed. A sleep that answers False (the batch
stopped) ends the wait at once, without a start.

A shared rate (``shared_rate``) is kept in the ledger instead
(:meth:`smspipe.ledger.Ledger.take_turn`, on the ledger's clock): a start is
recorded there only once the interval has passed since the last start any run
recorded for that sender, so hosts sharing one ledger share one rate per
sender, as Twilio enforces it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

#: the interval is this much longer than 1 / rate: jitter cannot crowd rate + 1 starts into a second
MARGIN = 0.03


class Pacer:
    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        shared: Callable[[str, float], Awaitable[float]] | None = None,
    ) -> None:
        self.rate = rate
        self.interval = (1.0 + MARGIN) / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        #: the ledger's turns (Ledger.take_turn): the rate then holds for every run of the
        #: ledger together, per name (sender); else for this run alone
        self._shared = shared if self.interval else None
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: float | None = None
        self._hold_until = 0.0

    def hold(self, seconds: float) -> None:
        """No start before *seconds* from now (a 429's Retry-After)."""
        self._hold_until = max(self._hold_until, self._clock() + seconds)

    @asynccontextmanager
    async def turn(self, name: str = "") -> AsyncIterator[Turn]:
        """A turn to start one request: what is done inside it (the claim) precedes the start.

        With a rate, turns are taken one at a time (per *name*, the sender, when the
        rate is shared); :meth:`Turn.ready` waits for the start's moment and marks it.
        """
        if not self.interval:
            yield Turn(self, name)
            return
        key = name if self._shared is not None else ""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield Turn(self, name)

    def _due(self) -> float:
        due = self._hold_until
        if self.interval and self._last is not None and self._shared is None:
            due = max(due, self._last + self.interval)
        return due

    async def _ready(self, name: str) -> float:
        began = self._clock()
        while (wait := self._due() - self._clock()) > 0:
            if await self._sleep(wait) is False:  # the batch stopped: no start
                return self._clock() - began
        if self._shared is not None:
            # The ledger records the start (0) once the interval has passed since any run's last.
            while (wait := await self._shared(name, self.interval)) > 0:
                if await self._sleep(wait) is False:
                    return self._clock() - began
        self._last = self._clock()
        return self._last - began


class Turn:
    def __init__(self, pacer: Pacer, name: str) -> None:
        self._pacer = pacer
        self._name = name

    async def ready(self) -> float:
        """Wait until this start is due, then mark it as the previous start; the seconds waited."""
        return await self._pacer._ready(self._name)
