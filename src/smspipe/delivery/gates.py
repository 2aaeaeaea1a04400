"""What may hold a message back before any request: the suppression list, quiet hours, the cap.

:func:`hold` is pure: given a job, the run's :class:`Rules`, what the ledger
knows (the recipient's opt-out, its recent messages) and the moment, it says
whether the message is ``suppressed``, ``deferred`` (with the earliest moment
it may go) or to be scheduled with Twilio, or None: send it. A real run and a
dry run ask it the same question. Nothing held is claimed in the ledger: the
next run decides afresh.

Order: an opt-out first (never texted, whatever the hour), then quiet hours
(a ``transactional`` document is exempt), then the per-recipient cap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from smspipe.delivery import quiet
from smspipe.delivery.results import Status

if TYPE_CHECKING:
    from smspipe.config import Resolved
    from smspipe.delivery.planner import Job
    from smspipe.ledger import OptOut, SentRecord

#: Twilio schedules a message at least this far ahead (its docs say 5 minutes now, 15 before:
#: the stricter holds for every account) and at most 35 days ahead
SCHEDULE_MIN_LEAD = timedelta(minutes=15)
SCHEDULE_MAX_LEAD = timedelta(days=35)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Rules:
    """A run's quiet hours, cap and scheduling, and its clock."""

    hours: quiet.QuietHours | None = None
    #: the zone for numbers whose own is unknown (quiet_hours_timezone)
    fallback_zone: str | None = None
    cap: quiet.Cap | None = None
    #: schedule quiet-hours messages with Twilio (a Messaging Service) instead of deferring them
    schedule: bool = False
    clock: Callable[[], datetime] = field(default=utc_now)

    @classmethod
    def from_settings(
        cls, resolved: Resolved, *, schedule: bool = False, clock: Callable[[], datetime] | None = None
    ) -> Rules:
        """The rules *resolved* configures (a bad value: ConfigError, exit 2, before anything is sent)."""
        hours = quiet.QuietHours.parse(resolved.quiet_hours) if resolved.quiet_hours else None
        if resolved.quiet_hours_timezone:
            quiet.zone(resolved.quiet_hours_timezone)
        cap = quiet.Cap.parse(resolved.max_per_recipient) if resolved.max_per_recipient else None
        return cls(hours, resolved.quiet_hours_timezone, cap, schedule, clock or utc_now)

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a message does not go now."""

    status: Status
    note: str
    #: deferred: the earliest moment it may go; scheduled: when Twilio sends it
    not_before: datetime | None = None


def hold(
    job: Job,
    rules: Rules,
    *,
    opted_out: OptOut | None,
    recent: list[SentRecord] | None,
    now: datetime,
) -> Hold | None:
    """Suppressed, deferred, scheduled, or None (send it now)."""
    if opted_out is not None:
        since = datetime.fromtimestamp(opted_out.added_at, UTC).strftime("%Y-%m-%d")
        return Hold(Status.SUPPRESSED, f"opted out ({opted_out.source}, since {since})")
    if rules.hours is not None and not job.sms.transactional:
        held = _quiet(job, rules, rules.hours, now)
        if held is not None:
            return held
    if rules.cap is not None and recent is not None and len(recent) >= rules.cap.count:
        oldest = min(record.created_at for record in recent)
        until = datetime.fromtimestamp(oldest + rules.cap.seconds, UTC)
        return Hold(
            Status.DEFERRED,
            f"{len(recent)} messages to {job.sms.to} within max_per_recipient {rules.cap.text}; "
            f"not before {until:%Y-%m-%d %H:%M} UTC",
            until,
        )
    return None


def _quiet(job: Job, rules: Rules, hours: quiet.QuietHours, now: datetime) -> Hold | None:
    zones = quiet.zones_for(job.sms.to, rules.fallback_zone)
    until = quiet.quiet_until(now, zones, hours)
    if until is None:
        return None
    where = quiet.local_text(until, zones[0])
    if rules.schedule and job.sender.messaging_service_sid:
        send_at = max(until, now + SCHEDULE_MIN_LEAD).replace(microsecond=0) + timedelta(seconds=1)
        if send_at - now <= SCHEDULE_MAX_LEAD:
            return Hold(
                Status.SCHEDULED,
                f"quiet hours {hours} in the recipient's time: Twilio sends it at "
                f"{quiet.local_text(send_at, zones[0])}",
                send_at,
            )
    note = f"quiet hours {hours} in the recipient's time, until {where}"
    if rules.schedule and not job.sender.messaging_service_sid:
        note += " (scheduling needs a Messaging Service: set messaging_service_sid)"
    return Hold(Status.DEFERRED, note, until)


def cap_window(rules: Rules, now: datetime) -> float | None:
    """The start (Unix seconds) of the window the cap counts messages in, or None without a cap."""
    if rules.cap is None:
        return None
    return float(now.timestamp() - rules.cap.seconds)
