"""Twilio's message statuses, in the one order smspipe keeps them.

A message moves forward only: ``scheduled`` / ``accepted`` -> ``queued`` ->
``sending`` -> ``sent`` -> a final status (``delivered``, ``undelivered``,
``failed``, ``canceled``), and from ``delivered`` to ``read`` (WhatsApp). An
answer that would move it back (a late fetch, a callback that arrives after
a newer one, ``sent`` after ``delivered``) is ignored; a final status is
never replaced by another final one. Every backend of the ledger stores the
rank beside the status and updates only to a higher rank, so this order is
kept in one place: here.
"""

from __future__ import annotations

#: the rank of each status: a status may replace only a lower one
RANKS: dict[str, int] = {
    "scheduled": 0,
    "accepted": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "read": 6,
}
#: the rank from which a status is final (Twilio changes it no more)
FINAL_RANK = 5
FINAL = frozenset(status for status, rank in RANKS.items() if rank >= FINAL_RANK)
#: final statuses that mean the message did not arrive
NOT_DELIVERED = frozenset({"undelivered", "failed"})
#: final statuses that mean it arrived
ARRIVED = frozenset({"delivered", "read"})
#: a status Twilio may add later, unknown here: stored only where nothing is known yet
UNKNOWN_RANK = -1


def rank(status: str | None) -> int | None:
    """The rank of *status* (None: no status known)."""
    if status is None:
        return None
    return RANKS.get(status, UNKNOWN_RANK)


def is_final(status: str | None) -> bool:
    return status in FINAL


def may_follow(current: str | None, new: str) -> bool:
    """May *new* replace *current*? Only a step forward."""
    before = rank(current)
    after = rank(new)
    assert after is not None
    return before is None or after > before
