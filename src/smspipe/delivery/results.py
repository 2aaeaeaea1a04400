"""What became of each document: its status and result record, the totals, and the exit code.

The exit code is a pure function of the totals (:func:`exit_code`): the most
serious outcome wins, 2 > 130/143 > 75 > 1 > 0.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from smspipe import lifecycle, sms
from smspipe.errors import ExitCode, redact
from smspipe.spelling import setting

if TYPE_CHECKING:
    from smspipe.delivery.planner import Job
    from smspipe.gateway import GatewayError

SUMMARY_BODY_CHARS = 80
NO_SENDER = "no sender"


def no_sender_hint() -> str:
    """Every way to give a sender, the caller's own first."""
    return (
        f'give {setting("from")} or {setting("messaging_service_sid")}, put "from" in the document, '
        "set SMSPIPE_FROM or SMSPIPE_MESSAGING_SERVICE_SID, or set `from` or "
        "`messaging_service_sid` in the config file"
    )


class Status(StrEnum):
    """The status of one document in ``send``'s output.

    Issue 14 adds ``suppressed``, ``deferred`` and ``scheduled``.
    """

    #: Twilio created the message in this run (``sid``)
    SENT = "sent"
    #: an earlier run (or document of this run) sent it to this recipient (``sid``)
    SKIPPED = "skipped"
    #: the key was sent, or possibly sent, to another recipient: not sent (exit 1)
    CONFLICT = "conflict"
    #: it may have been created and that cannot be settled yet: the next run settles it (exit 75)
    UNKNOWN = "unknown"
    #: not sent: Twilio refused it (exit 1), or a temporary fault outlasted the retries (exit 75)
    FAILED = "failed"
    #: the document is not a valid SMS: not sent (exit 1)
    INVALID = "invalid"
    #: a dry run would send it
    DRY_RUN = "dry-run"
    #: the recipient is on the suppression list (opted out): not sent, not a failure
    SUPPRESSED = "suppressed"
    #: held back (quiet hours, the per-recipient cap) until ``not_before``: the next run sends it (exit 75)
    DEFERRED = "deferred"
    #: Twilio holds it and sends it at ``send_at`` (quiet hours with a Messaging Service)
    SCHEDULED = "scheduled"


#: statuses that mean the document's message was created
DELIVERED = frozenset({Status.SENT, Status.SKIPPED, Status.SCHEDULED})
#: statuses that mean the document needs nothing more (not in a re-run's input)
SETTLED = DELIVERED | {Status.SUPPRESSED}


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The ``error`` of a result: Twilio's code, message and docs link."""

    message: str
    code: int | None = None
    more_info: str | None = None
    #: a temporary fault: a later run should deliver it (exit 75)
    temporary: bool = False
    #: a fault that stops the batch: refused credentials, a misconfigured endpoint, a
    #: ledger that cannot be used (exit 2)
    fatal: bool = False

    @classmethod
    def from_gateway(cls, exc: GatewayError, *, temporary: bool = False, fatal: bool = False) -> ErrorInfo:
        return cls(
            message=exc.message, code=exc.code, more_info=exc.more_info, temporary=temporary, fatal=fatal
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": redact(self.message),
            "more_info": self.more_info,
        }
        if self.temporary:
            out["temporary"] = True
        return out


@dataclass(frozen=True, slots=True)
class Earlier:
    """The message a key was bound to when another recipient came under it."""

    to: str
    sid: str | None


@dataclass(slots=True)
class Result:
    """What became of one document."""

    verdict: sms.Verdict
    status: Status
    key: str
    job: Job | None = None
    sid: str | None = None
    segments: int | None = None
    error: ErrorInfo | None = None
    #: why it was skipped or not sent, or where the sid came from
    note: str | None = None
    attempts: int = 0
    #: for a conflict: what the key was bound to
    earlier: Earlier | None = None
    #: deferred: the earliest moment it may be sent; scheduled: when Twilio sends it (UTC)
    not_before: datetime | None = None
    #: ``send --wait``: where the message stood when the wait ended
    delivery: DeliveryReport | None = None

    @property
    def to(self) -> str | None:
        return self.verdict.sms.to if self.verdict.sms else None

    @property
    def delivered(self) -> bool:
        return self.status in DELIVERED

    @property
    def needs_rerun(self) -> bool:
        """Not settled, and not a dry run's: its document belongs in a re-run (``failed_document``)."""
        return self.status not in SETTLED and self.status != Status.DRY_RUN

    @property
    def summary(self) -> str:
        """The hub's wording: ``SMS "Order R12345 was shipped!" sent to +14155552671``."""
        message = self.verdict.sms
        if message is None:
            first = self.error.message if self.error else "invalid document"
            return f"invalid: {first}"
        text = f"SMS {quote_body(message.body)}"
        status = self.status
        wording = _WORDING.get(status)
        if status == Status.CONFLICT and self.earlier is not None:
            wording = "{text} to {to} not sent: {note}"
        if wording is None:
            reason = self.note or (self.error.message if self.error else "not sent")
            return f"{text} to {message.to} failed: {reason}"
        note = self.note or _NO_NOTE.get(status, "")
        return wording.format(text=text, to=message.to, note=note, paren=f" ({note})" if note else "")

    def record(self) -> dict[str, Any]:
        """The NDJSON line ``send`` prints for this document.

        The same fields for every status (null where they do not apply), and a
        few more per status: ``smspipe schema result`` (schemas/result.json)."""
        job, verdict, status = self.job, self.verdict, self.status.value
        message = verdict.sms
        out: dict[str, Any] = {
            "request_id": self.key,
            "status": status,
            "summary": redact(self.summary),
            "sid": self.sid,
            "to": message.to if message else None,
            "from": job.sender.sender if job is not None else (message.sender if message else None),
            "messaging_service_sid": job.sender.messaging_service_sid if job is not None else None,
            "segments": self.segments if self.segments is not None else verdict.segments,
            "error": self.error.as_dict() if self.error else None,
            "note": redact(self.note) if self.note and status in _NOTED else None,
            "source": verdict.source,
            "line": verdict.line,
            "index": verdict.index,
        }
        # status values as strings: an enum member's lookup costs more than the record
        if status == "dry-run":
            out.update(self._dry_run_fields())
        elif status == "invalid":
            out["errors"] = [issue.as_dict() for issue in verdict.errors]
        elif status == "conflict":
            out["earlier"] = {"to": self.earlier.to, "sid": self.earlier.sid} if self.earlier else None
        elif status == "deferred":
            out["not_before"] = iso_utc(self.not_before) if self.not_before is not None else None
        elif status == "scheduled":
            out["send_at"] = iso_utc(self.not_before) if self.not_before is not None else None
        if self.delivery is not None:  # send --wait: where the message stood when the wait ended
            out["delivery"] = self.delivery.as_dict()
        return out

    def _dry_run_fields(self) -> dict[str, Any]:
        job = self.job
        if job is None:
            return {"body": None, "encoding": self.verdict.encoding, "media_url": [], "status_callback": None}
        return {
            "body": job.sms.body,
            "encoding": self.verdict.encoding,
            "media_url": list(job.sms.media_url or ()),
            "status_callback": job.status_callback,
        }

    def failed_document(self) -> dict[str, Any] | None:
        """The original document (or this item of a collection), for ``--failed``."""
        original = self.verdict.original
        if not isinstance(original, dict):
            return None
        path = self.verdict.path
        if not path.endswith("]"):
            return original
        key = path[: path.index("[")]
        index = int(path[path.index("[") + 1 : -1])
        items = original.get(key)
        if not isinstance(items, list) or index >= len(items):
            return original
        single = {k: v for k, v in original.items() if k != key}
        if self.verdict.request_id is not None:
            single["request_id"] = self.verdict.request_id
        single[key] = items[index]
        return single


#: how a result's summary reads, by status (failed and a conflict without its earlier message: failed)
_WORDING = {
    Status.SENT: "{text} sent to {to}{paren}",
    Status.SKIPPED: "{text} already sent to {to}{paren}",
    Status.DRY_RUN: "{text} would be sent to {to}",
    Status.UNKNOWN: "{text} to {to}: not known yet whether it was sent: {note}",
    Status.SUPPRESSED: "{text} to {to} not sent: {note}",
    Status.DEFERRED: "{text} to {to} deferred: {note}",
    Status.SCHEDULED: "{text} scheduled for {to}: {note}",
    Status.INVALID: "{text} to {to} not sent: {note}",
}
_NO_NOTE = {Status.SUPPRESSED: "opted out", Status.INVALID: "invalid"}

#: statuses whose record carries the note (why skipped or held, where the sid came from)
NOTED = frozenset(
    {Status.SKIPPED, Status.SENT, Status.UNKNOWN, Status.SUPPRESSED, Status.DEFERRED, Status.SCHEDULED}
)
_NOTED = frozenset(status.value for status in NOTED)


def iso_utc(moment: datetime) -> str:
    """``2026-12-02T08:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """Where a message stood after ``send --wait``: Twilio's status, and why it did not arrive."""

    status: str | None
    error_code: int | None = None
    error_message: str | None = None
    #: what the error code means and what to do (smspipe.twilio_errors), when known
    meaning: str | None = None
    action: str | None = None
    price: str | None = None
    price_unit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "final": lifecycle.is_final(self.status)}
        if self.error_code is not None or self.error_message is not None:
            out["error_code"] = self.error_code
            out["error_message"] = self.error_message
            out["meaning"] = self.meaning
            out["action"] = self.action
        if self.price is not None:
            out["price"] = self.price
            out["price_unit"] = self.price_unit
        return out


def quote_body(body: str) -> str:
    flat = " ".join(body.split())
    if len(flat) > SUMMARY_BODY_CHARS:
        flat = flat[: SUMMARY_BODY_CHARS - 1] + "…"
    return f'"{flat}"'


# --- totals and the exit code ---------------------------------------------------------


@dataclass(slots=True)
class Totals:
    """Counts by status, and what decides the exit code. Changed under one lock."""

    counts: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    #: undelivered because of a temporary fault, or of unknown fate (exit 75)
    temporary: int = 0
    #: rejected for good: a failed that is not temporary (exit 1)
    rejected: int = 0
    #: the first fault that stopped the batch (exit 2)
    fatal_message: str | None = None
    #: the signal that stopped the batch (SIGINT, SIGTERM), if any
    signal: int | None = None
    #: some document had no sender (the hint is printed once, at the end)
    no_sender: bool = False
    #: a fault of the run itself (a full ledger, a lost lease): exit 75 even if every
    #: document was delivered
    run_fault: str | None = None
    #: send --wait: messages that failed or were undelivered (exit 1), still pending at the deadline (75)
    undelivered: int = 0
    still_pending: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, result: Result) -> None:
        with self._lock:
            self.counts[result.status] += 1
            if result.note == NO_SENDER:
                self.no_sender = True
            error = result.error
            if result.status in (Status.UNKNOWN, Status.DEFERRED):
                self.temporary += 1
            elif result.status == Status.FAILED and error is not None:
                if error.fatal:
                    if self.fatal_message is None:
                        self.fatal_message = error.message
                elif error.temporary:
                    self.temporary += 1
                else:
                    self.rejected += 1
            elif result.status == Status.FAILED:
                self.rejected += 1

    def followed(self, report: DeliveryReport) -> None:
        """``send --wait`` found a message in this state when the wait ended."""
        with self._lock:
            if report.status in lifecycle.NOT_DELIVERED:
                self.undelivered += 1
            elif not lifecycle.is_final(report.status):
                self.still_pending += 1

    def fault(self, message: str) -> None:
        """The run itself met a temporary fault (exit 75)."""
        with self._lock:
            if self.run_fault is None:
                self.run_fault = message

    def fatal(self, message: str) -> None:
        with self._lock:
            if self.fatal_message is None:
                self.fatal_message = message

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        parts = [f"{self.counts[s]} {s.value}" for s in Status if self.counts[s]]
        noun = "document" if self.total == 1 else "documents"
        text = f"{self.total} {noun}" + (": " + ", ".join(parts) if parts else "")
        deferred = self.counts[Status.DEFERRED]
        faults = self.temporary - deferred
        if faults:
            text += f" ({faults} not delivered yet because of temporary faults: run again later)"
        if deferred:
            text += f" ({deferred} deferred by quiet hours or the per-recipient cap: run again later)"
        if self.undelivered:
            text += f" ({self.undelivered} failed or undelivered after sending)"
        if self.still_pending:
            text += f" ({self.still_pending} not final when the wait ended)"
        return text


def exit_code(totals: Totals) -> ExitCode:
    """The process's exit code: the most serious outcome wins (2 > 130/143 > 75 > 1 > 0)."""
    import signal

    if totals.fatal_message is not None:
        return ExitCode.USAGE
    if totals.signal == signal.SIGTERM:
        return ExitCode.TERMINATED
    if totals.signal is not None:
        return ExitCode.INTERRUPTED
    if totals.temporary or totals.run_fault is not None or totals.still_pending:
        return ExitCode.TEMPFAIL
    if (
        totals.rejected
        or totals.counts[Status.INVALID]
        or totals.counts[Status.CONFLICT]
        or totals.undelivered
    ):
        return ExitCode.INVALID
    return ExitCode.OK
