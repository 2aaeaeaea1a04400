"""A cron day (issue 14): send 50 (3 opted out, 5 in quiet hours), refresh, run again in the
morning, refresh: every message ends delivered, suppressed or undelivered with its reason,
and none was created twice. The loopback server's life cycle runs on a clock the test moves;
smspipe's clock is injected: nothing sleeps."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import smspipe
from conftest import sms_documents
from twilio_server import Lifecycle, ManualClock, TwilioServer

LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def day() -> list[dict[str, Any]]:
    """45 order updates (transactional) and 5 newsletters, to +1415… numbers (Los Angeles)."""
    documents = sms_documents(50, prefix="cron")
    for number, document in enumerate(documents):
        if number >= 45:
            document["sms"]["message"] = f"newsletter {number}: our winter sale starts"
        else:
            document["sms"]["category"] = "transactional"
    return documents


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "ledger.sqlite3")


def test_a_cron_day(send_env: dict[str, str], twilio_server: TwilioServer, ledger: str) -> None:
    server_clock = ManualClock()
    twilio_server.clock = server_clock
    unreachable = {"+14155550010", "+14155550011"}
    twilio_server.lifecycle = Lifecycle(
        step_seconds=60, outcomes={phone: ("undelivered", 30003) for phone in unreachable}
    )
    documents = day()
    opted_out = [documents[n]["sms"]["phone"] for n in (3, 20, 44)]
    assert smspipe.optout_add(opted_out, source="inbound", ledger=ledger) == 3

    def run(moment: datetime) -> tuple[list[smspipe.Result], smspipe.ExitCode]:
        results: list[smspipe.Result] = []
        totals = smspipe.send(
            documents,
            quiet_hours="21:00-08:00",
            clock=lambda: moment,
            on_result=results.append,
            ledger=ledger,
        )
        return results, smspipe.exit_code(totals)

    night = datetime(2026, 12, 1, 23, 0, tzinfo=LOS_ANGELES)
    first, code = run(night)
    statuses = [r.status.value for r in first]
    assert statuses.count("sent") == 42 and statuses.count("suppressed") == 3
    assert statuses.count("deferred") == 5
    deferred = [r for r in first if r.status.value == "deferred"]
    assert {r.key for r in deferred} == {f"cron-{n}" for n in range(45, 50)}
    assert all(r.not_before == datetime(2026, 12, 2, 8, 0, tzinfo=LOS_ANGELES) for r in deferred)
    assert code == smspipe.ExitCode.TEMPFAIL

    server_clock.advance(3600)
    refreshed = smspipe.status(refresh=True, ledger=ledger)
    assert refreshed.report.by_status == {"delivered": 40, "undelivered": 2}
    assert refreshed.exit_code == smspipe.ExitCode.INVALID

    morning = datetime(2026, 12, 2, 9, 0, tzinfo=LOS_ANGELES)
    second, code = run(morning)
    statuses = [r.status.value for r in second]
    assert statuses.count("skipped") == 42 and statuses.count("suppressed") == 3
    assert statuses.count("sent") == 5
    assert code == smspipe.ExitCode.OK

    server_clock.advance(3600)
    final = smspipe.status(refresh=True, ledger=ledger)
    lines = [line.as_dict() for line in final.lines]
    assert len(lines) == 47 and len(twilio_server.creates()) == 47
    assert twilio_server.duplicates() == {}
    created_to = {create.field("To") for create in twilio_server.creates()}
    assert created_to.isdisjoint(opted_out)
    for line in lines:
        if line["to"] in unreachable:
            assert line["status"] == "undelivered" and line["error_code"] == 30003 and line["meaning"]
        else:
            assert line["status"] == "delivered", line
    assert {o.phone for o in smspipe.optouts(ledger=ledger)} == set(opted_out)
