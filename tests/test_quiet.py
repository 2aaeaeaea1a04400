"""Quiet hours in the recipient's time zone, --schedule, and the per-recipient cap (issue 14).

The rules are pure functions of a moment (smspipe.delivery.quiet, .gates): time zones and
DST transitions are tested by moving that moment, never by sleeping. The command line is
tested with a quiet window laid around the present moment in the recipient's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import smspipe
from conftest import invoke, ndjson, sms_documents
from smspipe.delivery.quiet import Cap, QuietHours, quiet_until, zones_for
from smspipe.errors import ConfigError
from twilio_server import TwilioServer

NEW_YORK = ZoneInfo("America/New_York")
NIGHT = QuietHours.parse("21:00-08:00")


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_quiet_period_is_read_in_24_hours_and_may_span_midnight() -> None:
    assert str(NIGHT) == "21:00-08:00"
    assert NIGHT.contains(datetime(2026, 1, 1, 23, 30).time())
    assert NIGHT.contains(datetime(2026, 1, 1, 7, 59).time())
    assert not NIGHT.contains(datetime(2026, 1, 1, 8, 0).time())
    lunch = QuietHours.parse("12:00-13:00")
    assert lunch.contains(datetime(2026, 1, 1, 12, 30).time()) and not lunch.contains(
        datetime(2026, 1, 1, 13).time()
    )
    for bad in ("21:00", "25:00-08:00", "08:00-08:00", "9pm-8am"):
        with pytest.raises(ConfigError, match="HH:MM-HH:MM"):
            QuietHours.parse(bad)
    assert Cap.parse("3/24h").seconds == 86400 and Cap.parse("1/30m").count == 1
    with pytest.raises(ConfigError, match="COUNT/PERIOD"):
        Cap.parse("three a day")


def test_the_earliest_allowed_moment_is_the_end_of_the_recipients_night() -> None:
    zones = zones_for("+12125550123", None)  # New York
    assert [z.key for z in zones] == ["America/New_York"]
    at_11pm = utc(2026, 12, 2, 4, 0)  # 23:00 EST
    assert quiet_until(at_11pm, zones, NIGHT) == utc(2026, 12, 2, 13, 0)  # 08:00 EST
    assert quiet_until(utc(2026, 12, 2, 17, 0), zones, NIGHT) is None  # noon: allowed
    la = zones_for("+14155552671", None)
    assert quiet_until(utc(2026, 12, 2, 4, 0), la, NIGHT) is None  # 20:00 PST: not yet
    assert quiet_until(utc(2026, 12, 2, 6, 0), la, NIGHT) == utc(2026, 12, 2, 16, 0)  # 22:00 PST: 08:00 PST


def test_a_night_across_the_spring_change_is_an_hour_shorter_and_a_missing_end_lands_after_the_gap() -> None:
    zones = (NEW_YORK,)
    # 2026-03-08 02:00 EST -> 03:00 EDT. 22:00 EST on the 7th is 03:00Z on the 8th.
    assert quiet_until(utc(2026, 3, 8, 3, 0), zones, NIGHT) == utc(2026, 3, 8, 12, 0)  # 08:00 EDT: 9 h
    gap = QuietHours.parse("23:00-02:30")  # 02:30 does not exist that night
    until = quiet_until(utc(2026, 3, 8, 6, 0), zones, gap)  # 01:00 EST
    assert until == utc(2026, 3, 8, 7, 30)  # 03:30 EDT, the first moment after the gap
    assert until is not None and not gap.contains(until.astimezone(NEW_YORK).time())


def test_a_night_across_the_autumn_change_is_an_hour_longer() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST. 22:00 EDT on the 31st is 02:00Z on the 1st.
    assert quiet_until(utc(2026, 11, 1, 2, 0), (NEW_YORK,), NIGHT) == utc(
        2026, 11, 1, 13, 0
    )  # 08:00 EST: 11 h


def test_a_number_in_several_zones_is_held_by_the_strictest() -> None:
    zones = zones_for("+61491570156", None)  # an Australian mobile: Lord Howe to Perth and Cocos
    assert {"Australia/Sydney", "Australia/Perth", "Indian/Cocos"} <= {z.key for z in zones}
    # 07:30 in Sydney is 04:00 on the Cocos Islands (+06:30), the westernmost: quiet there until 08:00.
    moment = datetime(2026, 7, 15, 7, 30, tzinfo=ZoneInfo("Australia/Sydney"))
    until = quiet_until(moment, zones, NIGHT)
    assert until == datetime(2026, 7, 15, 8, 0, tzinfo=ZoneInfo("Indian/Cocos")).astimezone(UTC)
    for zone in zones:
        assert not NIGHT.contains(until.astimezone(zone).time()), zone.key


def test_a_number_without_a_zone_takes_the_fallback_else_utc() -> None:
    assert [z.key for z in zones_for("+447700900123", "Europe/London")] == ["Europe/London"]
    assert [z.key for z in zones_for("+447700900123", None)] == ["UTC"]
    with pytest.raises(ConfigError, match="not a time zone"):
        zones_for("+447700900123", "Mars/Olympus")


# --- the command line -----------------------------------------------------------------------------


def window(zone: str, *, around_now: bool) -> str:
    """A quiet period in *zone* containing the present moment (or starting two hours from now)."""
    now = datetime.now(ZoneInfo(zone))
    start = now - timedelta(hours=2) if around_now else now + timedelta(hours=2)
    return f"{start:%H:%M}-{start + timedelta(hours=4):%H:%M}"


def documents() -> list[dict[str, Any]]:
    batch = sms_documents(3)  # +1415… : Los Angeles
    batch[2]["sms"]["category"] = "transactional"
    return batch


def test_quiet_hours_defer_what_is_not_transactional_without_claiming_it(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    run = invoke(
        "send", "--quiet-hours", window("America/Los_Angeles", around_now=True), input=ndjson(documents())
    )
    assert run.exit_code == 75, run.stderr
    lines = {r["request_id"]: r for r in run.records}
    assert [lines[k]["status"] for k in ("msg-0", "msg-1", "msg-2")] == ["deferred", "deferred", "sent"]
    assert lines["msg-0"]["not_before"].endswith("Z") and "America/Los_Angeles" in lines["msg-0"]["note"]
    assert [c.field("To") for c in twilio_server.creates()] == [lines["msg-2"]["to"]]
    assert "2 deferred by quiet hours" in run.stderr
    dry = invoke(
        "send",
        "--dry-run",
        "--quiet-hours",
        window("America/Los_Angeles", around_now=True),
        input=ndjson(documents()),
    )
    assert sorted(dry.statuses()) == ["deferred", "deferred", "skipped"]
    later = invoke(
        "send", "--quiet-hours", window("America/Los_Angeles", around_now=False), input=ndjson(documents())
    )
    assert later.exit_code == 0, later.stderr  # the next run sends them: nothing was claimed
    assert sorted(later.statuses()) == ["sent", "sent", "skipped"]
    assert len(twilio_server.creates()) == 3


def test_quiet_hours_come_from_the_config_too(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    results: list[smspipe.Result] = []
    totals = smspipe.send(
        documents(), quiet_hours=window("America/Los_Angeles", around_now=True), on_result=results.append
    )
    assert smspipe.exit_code(totals) == smspipe.ExitCode.TEMPFAIL
    assert sorted(r.status.value for r in results) == ["deferred", "deferred", "sent"]


def test_schedule_asks_twilio_to_send_at_the_end_of_quiet_hours(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    service = "MG" + "a" * 32
    quiet = window("America/Los_Angeles", around_now=True)
    args = ("send", "--quiet-hours", quiet, "--schedule", "--messaging-service-sid", service)
    run = invoke(*args, input=ndjson(sms_documents(1)))
    assert run.exit_code == 0, run.stderr
    [record] = run.records
    assert record["status"] == "scheduled" and record["sid"].startswith("SM")
    [create] = twilio_server.creates()
    assert create.field("ScheduleType") == "fixed" and create.field("MessagingServiceSid") == service
    send_at = datetime.fromisoformat(str(create.field("SendAt")).replace("Z", "+00:00"))
    assert record["send_at"] == send_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert send_at >= datetime.now(UTC) + timedelta(minutes=14)
    assert not QuietHours.parse(quiet).contains(send_at.astimezone(ZoneInfo("America/Los_Angeles")).time())
    assert invoke(*args, input=ndjson(sms_documents(1))).statuses() == ["skipped"]  # recorded as sent
    assert invoke("status").records[0]["status"] == "scheduled"
    no_service = invoke(
        "send", "--quiet-hours", quiet, "--schedule", input=ndjson(sms_documents(1, prefix="n"))
    )
    assert no_service.statuses() == ["deferred"] and "needs a Messaging Service" in no_service.stdout


def test_the_per_recipient_cap_defers_beyond_it(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    same = [
        {"request_id": f"r{n}", "sms": {"phone": "+14155552671", "message": f"update {n}"}} for n in range(4)
    ]
    totals = smspipe.send(same[:2], max_per_recipient="2/24h", concurrency=1)
    assert smspipe.exit_code(totals) == smspipe.ExitCode.OK
    results: list[smspipe.Result] = []
    totals = smspipe.send(same, max_per_recipient="2/24h", concurrency=1, on_result=results.append)
    assert [r.status.value for r in results] == ["skipped", "skipped", "deferred", "deferred"]
    assert "max_per_recipient 2/24h" in (results[2].note or "") and results[2].not_before is not None
    assert smspipe.exit_code(totals) == smspipe.ExitCode.TEMPFAIL
    assert len(twilio_server.creates()) == 2


def test_a_bad_quiet_period_or_zone_is_exit_2_before_anything_is_sent(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Any
) -> None:
    bad = invoke("send", "--quiet-hours", "9pm-8am", input=ndjson(sms_documents(1)))
    assert bad.exit_code == 2 and "--quiet-hours" in bad.stderr and "Traceback" not in bad.stderr
    config = tmp_path / "config.yaml"
    config.write_text('quiet_hours: "21:00-08:00"\nquiet_hours_timezone: "Mars/Olympus"\n')
    run = invoke("send", "--config", str(config), input=ndjson(sms_documents(1)))
    assert run.exit_code == 2 and "Mars/Olympus" in run.stderr and "America/New_York" in run.stderr
    assert twilio_server.creates() == []
