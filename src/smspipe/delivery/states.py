"""The per-key state machine, and the pure functions that decide what to do with a key.

A key's row in the ledger is in one of these states (no row: never attempted,
or every attempt certainly failed before Twilio created anything):

============  ===============================================  =============================================
state         meaning                                          what a run does with a document of that key
============  ===============================================  =============================================
(no row)      nothing was created under the key                claims it and sends it
``sending``   claimed by a run that is sending it; the         another recipient: ``conflict``; holder alive
              request may be out (possibly sent)               (its lease holds): re-checks at the end of
                                                               the run, then ``unknown`` naming it; holder
                                                               dead: reconciles (below)
``sent``      Twilio created the message (``sid``)             same recipient: ``skipped`` (noting a changed
                                                               text); another: ``conflict``; ``--force``
                                                               sends again (not twice in one run)
``unknown``   an attempt may have created it and Twilio's      another recipient: ``conflict``; holder
              log has not shown it (possibly sent)             alive: as ``sending``; this run:
                                                               ``unknown``; else reconciles (below)
``failed``    Twilio refused the last attempt for good (4xx)   sends again: a key that only ever failed
                                                               binds nothing (one with an earlier message
                                                               is as ``sent``)
============  ===============================================  =============================================

Reconciling a key a dead run left open: look the message up in Twilio's log
(tolerating a trial prefix and smart encoding). Found: ``sent`` (the document
is ``skipped``). Not there, and the grace period since the attempt has passed
(the log has had time to catch up, a late create time to happen): nothing was
created, so it is claimed and sent. Otherwise it stays ``unknown`` (exit 75)
for a later run. An ambiguous attempt (a timeout, a dropped connection, a
500/502/504) is never sent again in the run that made it.

Transitions: (none) -> sending (claim); sending -> sent (201, or found in the
log) | failed (4xx) | unknown (ambiguous, not in the log yet) | (what it was)
(certainly not created: 429/503/refused connection after the retries, or
stopped before the request left); unknown -> sent (found) | sending (absent
after the grace period); sent -> sending (``--force``); failed -> sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from smspipe.delivery.results import Earlier
from smspipe.ledger.base import KeyRow, KeyState, Message
from smspipe.spelling import setting

TEXT_DIFFERED = "the earlier text differed"


class Action(StrEnum):
    """What a run does with a document, given its key's row."""

    #: claim the key and send
    SEND = "send"
    #: sent to this recipient already
    SKIP = "skip"
    #: bound to another recipient: not sent
    CONFLICT = "conflict"
    #: another live run holds it: re-check at the end of the run
    WAIT = "wait"
    #: this run left it unknown (an earlier document of the batch with this key)
    UNSETTLED = "unsettled"
    #: a run that is gone left it open: look it up in Twilio's log first
    RECONCILE = "reconcile"


@dataclass(frozen=True, slots=True)
class Facts:
    """What a decision needs to know about the document at hand."""

    recipient: str
    body_sha256: str
    media_sha256: str


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    row: KeyRow | None = None
    sid: str | None = None
    segments: int | None = None
    note: str | None = None
    earlier: Earlier | None = None


def decide(row: KeyRow | None, facts: Facts, *, force: bool, run_id: str) -> Decision:
    """What to do with a document whose key has *row* (the same for a dry run and a real run)."""
    if row is None:
        return Decision(Action.SEND)
    if row.open:
        return _open(row, facts)
    message = _bound_message(row)
    if message is None:  # only ever failed: binds nothing
        return Decision(Action.SEND, row)
    if force and message.run_id != run_id:
        return Decision(Action.SEND, row)
    if message.recipient != facts.recipient:
        return _conflict(row, message.recipient, message.sid)
    return Decision(
        Action.SKIP,
        row,
        sid=message.sid,
        segments=message.segments,
        note=TEXT_DIFFERED if _text_differs(message, facts) else None,
    )


def _open(row: KeyRow, facts: Facts) -> Decision:
    """A key possibly sent: held by a run (this one, or another alive), or left by one that is gone.

    Possibly sent binds the key to its recipient: another recipient is a
    conflict at once, unless the run that left it is gone (reconciling may show
    that nothing was created).
    """
    holder = row.holder
    mine = holder is not None and holder.this_run
    alive = holder is not None and holder.alive and not mine
    if (mine or alive) and row.recipient != facts.recipient:
        return _conflict(row, row.recipient, None)
    if mine:
        return Decision(Action.UNSETTLED, row, note=row.error_message)
    if alive:
        assert holder is not None
        return Decision(Action.WAIT, row, note=f"being sent by {holder.description}")
    return Decision(Action.RECONCILE, row)


def _conflict(row: KeyRow, recipient: str, sid: str | None) -> Decision:
    earlier = (
        f"was already used for {recipient} ({sid})" if sid else f"may already have been sent to {recipient}"
    )
    return Decision(
        Action.CONFLICT,
        row,
        note=f"its key {row.key} {earlier}; give this message another request_id, or pass "
        f"{setting('force')} to send it anyway",
        earlier=Earlier(recipient, sid),
    )


def _bound_message(row: KeyRow) -> Message | None:
    """The message the key is bound to: the one sent under it, if any."""
    if row.state == KeyState.SENT and row.sid is not None:
        latest = row.latest
        if latest is not None and latest.sid == row.sid:
            return latest
        return Message(
            row.sid,
            row.key,
            row.recipient,
            segments=row.segments,
            body_sha256=row.body_sha256,
            media_sha256=row.media_sha256,
        )
    return row.latest


def _text_differs(message: Message, facts: Facts) -> bool:
    if message.body_sha256 is not None and message.body_sha256 != facts.body_sha256:
        return True
    # Schema 1 rows did not record media: unknown is not "differed".
    return message.media_sha256 is not None and message.media_sha256 != facts.media_sha256


class Settlement(StrEnum):
    """What a look into Twilio's log settled about an open key."""

    #: the message is there: sent
    FOUND = "found"
    #: it is not there and the grace period has passed: nothing was created
    ABSENT = "absent"
    #: not settled: the log could not be read, or may not show it yet
    UNSETTLED = "unsettled"


def settle(*, found: bool, log_answered: bool, attempt_age: float | None, grace: float) -> Settlement:
    """After looking an open key's message up: found, certainly absent, or not settled yet."""
    if found:
        return Settlement.FOUND
    if log_answered and (attempt_age is None or attempt_age >= grace):
        return Settlement.ABSENT
    return Settlement.UNSETTLED
