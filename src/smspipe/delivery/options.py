"""How a run sends: its options, and the live counters a progress display reads.

Plain data, imported by a dry run too (which loads nothing of asyncio or the gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smspipe.delivery.policy import RetryPolicy


@dataclass(frozen=True, slots=True)
class Options:
    concurrency: int = 4
    #: at most this many requests started in any one second (None: no limit)
    rate: float | None = None
    #: the rate holds for every run using the ledger together, per sender (else for this run)
    shared_rate: bool = False
    retries: int = 5
    #: the longest wait between two attempts, in seconds
    max_wait: float = 60.0
    #: send even what an earlier run sent
    force: bool = False
    #: first backoff step, in seconds (doubles each retry, full jitter)
    backoff: float = 0.5
    #: seconds after an ambiguous attempt before absence from Twilio's log means "not created"
    grace: float = 300.0
    #: a run's claims on the ledger stay valid this long without a heartbeat
    lease: float = 60.0
    #: how long, at the end of a run, to wait for keys another live run holds to settle
    hold_wait: float = 30.0
    #: documents admitted at once (default: 4 x concurrency): memory stays constant
    window: int | None = None
    #: SIGINT and SIGTERM stop the run gracefully (its own process; not in a caller's event loop)
    handle_signals: bool = True

    @property
    def policy(self) -> RetryPolicy:
        from smspipe.delivery.policy import RetryPolicy

        return RetryPolicy(retries=self.retries, max_wait=self.max_wait, backoff=self.backoff)

    @property
    def lookup_waits(self) -> tuple[float, ...]:
        return lookup_waits(self.grace)

    @property
    def admitted(self) -> int:
        return self.window or max(8, self.concurrency * 4)


@dataclass(slots=True)
class Progress:
    """Live counters for a progress display (read from another thread)."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    invalid: int = 0
    retrying: int = 0
    in_flight: int = 0
    started: float = 0.0


def lookup_waits(grace: float, *, tries: int = 3, first: float = 0.5) -> tuple[float, ...]:
    """Waits before each look into Twilio's log after an ambiguous attempt (doubling).

    Bounded: the log gets a few seconds here; a later run looks again once the
    grace period has passed.
    """
    waits = []
    wait = min(first, grace / 4) if grace > 0 else first
    for _ in range(tries):
        waits.append(wait)
        wait *= 2
    return tuple(waits)
