"""Quiet hours in the recipient's time zone, and the per-recipient cap: when a message may go.

The recipient's zones come from the number (phonenumbers' time-zone data).
A number that maps to several zones (a whole country, a non-geographic
range) is held by the strictest: a moment is quiet if it is quiet in any of
them, and the earliest allowed moment is the first one allowed in all of
them. A number with no known zone takes ``quiet_hours_timezone`` (default
UTC). Every zone is a :mod:`zoneinfo` zone: daylight saving time is the
zone's own (a quiet period across the spring change is an hour shorter in
UTC, and a local end time that does not exist that night ends it at the first
moment after the gap).

Everything here is pure: the moment "now" is an argument (the clock is the
caller's, injectable: tests never sleep to reach a quiet hour).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from smspipe.errors import ConfigError

#: how many times a moment is moved to the end of one zone's quiet period before
#: the zones are taken to have no allowed moment in common
MAX_STEPS = 16
UNKNOWN_ZONE = "Etc/Unknown"
_SPAN = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
_CAP = re.compile(r"([1-9]\d*)/([1-9]\d*)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily quiet period in local time: ``21:00-08:00`` spans midnight, ``13:00-14:00`` does not."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str, where: str = "quiet_hours") -> QuietHours:
        found = _SPAN.fullmatch(text.strip())
        if found is None or found.group(1, 2) == found.group(3, 4):
            raise ConfigError(
                f"{where}: {text!r} is not a quiet period",
                hint='give it as HH:MM-HH:MM in 24 hours, start and end different ("21:00-08:00")',
            )
        hour, minute, end_hour, end_minute = (int(part) for part in found.groups())
        return cls(time(hour, minute), time(end_hour, end_minute))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def end_after(self, local: datetime) -> datetime:
        """The end (UTC) of the quiet period *local* (aware, in its zone) is in."""
        day = local.date()
        if not (self.start < self.end) and local.time() >= self.start:
            day += timedelta(days=1)
        zone = local.tzinfo
        end = datetime.combine(day, self.end, tzinfo=zone)
        # A local time skipped by a DST change (02:30 on the spring night) does not
        # exist: fold=0 reads it with the offset before the change, which lands after the gap.
        return end.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``count`` messages to one recipient per ``seconds``."""

    count: int
    seconds: float
    text: str

    @classmethod
    def parse(cls, text: str, where: str = "max_per_recipient") -> Cap:
        found = _CAP.fullmatch(text.strip())
        if found is None:
            raise ConfigError(
                f"{where}: {text!r} is not a cap", hint="give it as COUNT/PERIOD: 3/24h, 1/30m, 10/7d"
            )
        count, amount, unit = found.groups()
        return cls(int(count), int(amount) * _UNIT_SECONDS[unit], text.strip())


def zone(name: str, where: str = "quiet_hours_timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}: {name!r} is not a time zone",
            hint="give an IANA name: America/New_York, Europe/Paris, UTC",
        ) from None


@lru_cache(maxsize=4096)
def zones_for(number: str, fallback: str | None) -> tuple[ZoneInfo, ...]:
    """The zones of *number* (E.164, or a whatsapp: address), or the fallback's (default UTC)."""
    import phonenumbers
    from phonenumbers import timezone as number_zones

    digits = number.split(":", 1)[-1]
    names: tuple[str, ...] = ()
    with contextlib.suppress(phonenumbers.NumberParseException):
        names = tuple(number_zones.time_zones_for_number(phonenumbers.parse(digits, None)))
    found = []
    for name in names:
        if name == UNKNOWN_ZONE:
            continue
        try:
            found.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):  # a zone this system's tz database lacks
            continue
    return tuple(found) or (zone(fallback or "UTC"),)


def quiet_until(now: datetime, zones: tuple[ZoneInfo, ...], quiet: QuietHours) -> datetime | None:
    """None when *now* is allowed in every zone; else the earliest allowed moment (UTC).

    Zones with no allowed moment in common (quiet hours longer than their
    offsets allow): the first zone alone decides.
    """
    moment = now.astimezone(UTC)
    for _ in range(MAX_STEPS):
        moved = False
        for each in zones:
            local = moment.astimezone(each)
            if quiet.contains(local.time()):
                moment = max(moment, quiet.end_after(local))
                moved = True
        if not moved:
            return None if moment == now.astimezone(UTC) else moment
    if len(zones) > 1:
        return quiet_until(now, zones[:1], quiet)
    return moment


def local_text(moment: datetime, where: ZoneInfo) -> str:
    """``2026-12-02 08:00 America/New_York``."""
    return f"{moment.astimezone(where):%Y-%m-%d %H:%M} {where.key}"
