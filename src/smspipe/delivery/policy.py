"""The retry policy, pure: after a failed attempt, what next (retry when, look it up, give up).

What a fault means for delivery decides it, not how it happened:

- refused for good (a 4xx): the message fails, never retried;
- credentials refused, or ``api_url`` not leading to Twilio: the batch stops (exit 2);
- certainly not created (429, 503, a connection never opened): retried with
  exponential backoff and full jitter, at least ``Retry-After``; given up (exit
  75) after ``retries`` retries, or when Twilio asks to wait longer than
  ``max_wait``;
- possibly created (a timeout, a dropped connection, a 500/502/504): never
  sent again in this run; it is looked up in Twilio's log instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from smspipe.delivery.options import lookup_waits
from smspipe.gateway import (
    AmbiguousFault,
    AuthRefused,
    EndpointMisconfigured,
    GatewayError,
    Rejected,
    TemporaryFault,
)
from smspipe.spelling import setting

__all__ = ["Next", "RetryPolicy", "Step", "lookup_waits"]


class Next(StrEnum):
    #: try again after ``delay`` seconds
    RETRY = "retry"
    #: the message may exist: look it up in Twilio's log, never resend it in this run
    LOOK_UP = "look-up"
    #: certainly not created, and not worth waiting for in this run: a later run sends it
    GIVE_UP = "give-up"
    #: Twilio refused it for good
    FAIL = "fail"
    #: nothing sent with these credentials or to this endpoint will succeed: stop the batch
    HALT = "halt"


@dataclass(frozen=True, slots=True)
class Step:
    next: Next
    delay: float = 0.0
    #: why it was given up, for the result
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: retries of a temporary fault per message
    retries: int = 5
    #: the longest wait between two attempts, in seconds
    max_wait: float = 60.0
    #: first backoff step, in seconds (doubles each retry, full jitter)
    backoff: float = 0.5

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Full jitter: uniform(0, min(max_wait, backoff * 2**(attempt-1))), at least Retry-After.

        None when Retry-After is longer than max_wait: the message waits for the
        next run rather than for Twilio here.
        """
        ceiling = min(self.max_wait, self.backoff * 2 ** max(attempt - 1, 0))
        delay = rng.uniform(0, ceiling)
        if retry_after is not None:
            if retry_after > self.max_wait:
                return None
            delay = max(delay, retry_after)
        return delay

    def after(self, fault: GatewayError, attempt: int, rng: random.Random) -> Step:
        """What to do after attempt number *attempt* failed with *fault*."""
        if isinstance(fault, AuthRefused | EndpointMisconfigured):
            return Step(Next.HALT)
        if isinstance(fault, Rejected):
            return Step(Next.FAIL)
        if isinstance(fault, AmbiguousFault) or (
            isinstance(fault, TemporaryFault) and fault.may_have_created
        ):
            return Step(Next.LOOK_UP)
        retry_after = fault.retry_after if isinstance(fault, TemporaryFault) else None
        delay = self.delay(attempt, retry_after, rng)
        if delay is None:
            return Step(
                Next.GIVE_UP,
                note=f"not sent: Twilio asked to wait longer than {setting('max_wait')} ({fault.message}); "
                "run again later",
            )
        if attempt > self.retries:
            tries = "once" if attempt == 1 else f"{attempt} times"
            return Step(Next.GIVE_UP, note=f"not sent after trying {tries}: {fault.message}; run again later")
        return Step(Next.RETRY, delay=delay)
