"""Delivery tracking behind ``smspipe status``: what the ledger knows of the messages Twilio created.

:func:`parse_since` reads ``--since`` (``24h``, ``30m``, ``7d``, ``2026-12-01``,
an ISO 8601 moment); :class:`Line` is one message as ``status --json`` prints
it; :class:`Report` the counts a terminal shows under the table; :func:`refresh`
fetches every message that is not final (smspipe.delivery.follow) and stores
what Twilio says.

Exit code (:meth:`Report.exit_code`): 75 when some message is still pending,
else 1 when some failed or was undelivered, else 0 (all delivered, or ``sent``
where the carrier gives no receipt).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from smspipe import lifecycle, twilio_errors
from smspipe.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from smspipe.ledger import SentRecord

_AGO = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: statuses that count as "still pending" for the exit code: not final, and not a sent
#: message whose carrier may never send a receipt
PENDING = frozenset({"scheduled", "accepted", "queued", "sending"})


def parse_since(text: str, now: datetime) -> float:
    """``24h`` (ago), ``2026-12-01`` (local midnight) or an ISO 8601 moment, as Unix seconds."""
    value = text.strip()
    found = _AGO.fullmatch(value)
    if found is not None:
        return now.timestamp() - float(found.group(1)) * _UNIT[found.group(2)]
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day).astimezone().timestamp()
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"since: {text!r} is neither a duration nor a date",
            hint="give 24h, 30m, 7d, a date (2026-12-01) or an ISO 8601 moment (2026-12-01T08:00:00Z)",
        ) from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def statuses_filter(names: list[str] | None) -> frozenset[str] | None:
    """``--status`` values (comma-separated too): Twilio's statuses, or ``pending``."""
    if not names:
        return None
    wanted = frozenset(part.strip() for name in names for part in name.split(",") if part.strip())
    unknown = sorted(wanted - set(lifecycle.RANKS) - {"pending"})
    if unknown:
        raise UsageError(
            f"status: {', '.join(unknown)} is not a message status",
            hint="give one of " + ", ".join([*lifecycle.RANKS, "pending"]),
        )
    return wanted


def _iso(seconds: float | None, *, local: bool = False) -> str | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    if local:
        return moment.astimezone().isoformat(timespec="seconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def country_of(number: str) -> str | None:
    """The region of *number* (US, GB…), from phonenumbers' metadata."""
    import phonenumbers

    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number.split(":", 1)[-1], None))
    except phonenumbers.NumberParseException:
        return None


@dataclass(frozen=True, slots=True)
class Line:
    """One message as ``smspipe status`` shows it."""

    record: SentRecord

    @property
    def status(self) -> str | None:
        return self.record.status

    def as_dict(self) -> dict[str, Any]:
        """The NDJSON ``status --json`` prints (times ISO 8601, local and UTC)."""
        record = self.record
        explained = twilio_errors.explain(record.error_code)
        return {
            "time": _iso(record.created_at, local=True),
            "time_utc": _iso(record.created_at),
            "request_id": record.key,
            "to": record.recipient,
            "from": record.sender,
            "messaging_service_sid": record.messaging_service_sid,
            "status": record.status,
            "final": lifecycle.is_final(record.status),
            "sid": record.sid,
            "segments": record.segments,
            "error_code": record.error_code,
            "error_message": record.error_message,
            "meaning": explained.meaning if explained else None,
            "action": explained.action if explained else None,
            "price": record.price,
            "price_unit": record.price_unit,
            "date_sent": _iso(record.date_sent),
            "date_updated": _iso(record.date_updated),
            "checked_at": _iso(record.checked_at),
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """Failed and undelivered messages sharing one error code."""

    code: int | None
    count: int
    meaning: str | None
    action: str | None


@dataclass(slots=True)
class Report:
    """What a set of messages amounts to."""

    by_status: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    failures_by_country: Counter[str] = field(default_factory=Counter)
    #: currency -> total billed (positive)
    price: dict[str, Decimal] = field(default_factory=dict)
    #: median seconds from creation to delivered (None: none delivered with a date)
    median_to_delivered: float | None = None
    total: int = 0

    @classmethod
    def of(cls, records: list[SentRecord]) -> Report:
        report = cls(total=len(records))
        codes: Counter[int | None] = Counter()
        delays: list[float] = []
        for record in records:
            status = record.status or "unknown"
            report.by_status[status] += 1
            if status in lifecycle.NOT_DELIVERED:
                codes[record.error_code] += 1
                report.failures_by_country[country_of(record.recipient) or "unknown"] += 1
            if status in lifecycle.ARRIVED and record.date_updated is not None:
                delays.append(max(0.0, record.date_updated - record.created_at))
            report._add_price(record)
        report.failures = [_failure(code, count) for code, count in codes.most_common()]
        report.median_to_delivered = statistics.median(delays) if delays else None
        return report

    def _add_price(self, record: SentRecord) -> None:
        if record.price is None:
            return
        try:
            amount = abs(Decimal(record.price))
        except InvalidOperation:
            return
        unit = record.price_unit or "?"
        self.price[unit] = self.price.get(unit, Decimal(0)) + amount

    @property
    def delivered(self) -> int:
        return sum(self.by_status[status] for status in lifecycle.ARRIVED)

    @property
    def not_delivered(self) -> int:
        return sum(self.by_status[status] for status in lifecycle.NOT_DELIVERED)

    @property
    def pending(self) -> int:
        return sum(self.by_status[status] for status in (*PENDING, "unknown"))

    @property
    def delivery_rate(self) -> float | None:
        """Delivered among those with a final status (None: none final yet)."""
        final = self.delivered + self.not_delivered
        return self.delivered / final if final else None

    def exit_code(self) -> ExitCode:
        if self.pending:
            return ExitCode.TEMPFAIL
        if self.not_delivered:
            return ExitCode.INVALID
        return ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_status": dict(sorted(self.by_status.items())),
            "delivery_rate": self.delivery_rate,
            "median_seconds_to_delivered": self.median_to_delivered,
            "failures": [
                {"error_code": f.code, "count": f.count, "meaning": f.meaning, "action": f.action}
                for f in self.failures
            ],
            "failures_by_country": dict(self.failures_by_country.most_common()),
            "price": {unit: str(amount) for unit, amount in sorted(self.price.items())},
        }

    def lines(self) -> list[str]:
        """The report as a terminal shows it."""
        out = [f"{self.total} messages: " + ", ".join(f"{n} {s}" for s, n in sorted(self.by_status.items()))]
        rate = self.delivery_rate
        if rate is not None:
            out.append(f"delivery rate: {rate:.1%} of {self.delivered + self.not_delivered} final")
        if self.median_to_delivered is not None:
            out.append(f"median time to delivered: {_duration(self.median_to_delivered)}")
        for failure in self.failures:
            code = failure.code if failure.code is not None else "no code"
            text = f"  {failure.count} x {code}: {failure.meaning or 'see Twilio error docs'}"
            out.append(text + (f" -> {failure.action}" if failure.action else ""))
        if self.failures_by_country:
            countries = ", ".join(f"{c} {n}" for c, n in self.failures_by_country.most_common())
            out.append(f"not delivered by country: {countries}")
        for unit, amount in sorted(self.price.items()):
            out.append(f"price: {amount} {unit}")
        return out


def _failure(code: int | None, count: int) -> Failure:
    explained = twilio_errors.explain(code)
    return Failure(
        code, count, explained.meaning if explained else None, explained.action if explained else None
    )


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
