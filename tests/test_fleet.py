"""Three hosts, one PostgreSQL ledger, one host killed with SIGKILL mid-run and started again
(issue 15): every message is created exactly once at the server.

Each host is a process with a state directory of its own, given the whole export
(tests/fleet.py); wall time against the bound is bench/bench_fleet.py's (no
timing here).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fleet import documents, run_fleet
from twilio_server import TwilioServer

COUNT = 3000


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_three_hosts_on_one_ledger_create_every_message_once_with_one_killed_and_restarted(
    postgres_url: str, tmp_path: Path
) -> None:
    with TwilioServer(latency=0.2) as server:
        fleet = run_fleet(
            api_url=server.url,
            ledger_url=postgres_url,
            workdir=tmp_path,
            count=COUNT,
            concurrency=20,
            kill_when=lambda: len(server.messages) >= COUNT // 3,
        )
        created = Counter(message["body"] for message in server.messages)
        held = {message["sid"]: message for message in server.messages}

    assert fleet.exits["host1"][0] == -9  # killed mid-run, then started again
    for host in fleet.hosts:
        errors = host.errors()
        assert "Traceback" not in errors and "internal error" not in errors, errors
    assert all(code in (0, 75) for codes in fleet.exits.values() for code in codes[-1:])
    assert fleet.settling[-1:] in ([], [0])

    wanted = Counter(document["sms"]["message"] for document in documents(COUNT))
    assert {body: n for body, n in created.items() if n > 1} == {}  # never twice
    assert created == wanted  # every one, exactly once

    # Whoever reports a message sent created it, and only one host reports each so.
    sent: Counter[str] = Counter()
    for host in fleet.hosts:
        for record in host.records():
            if record["status"] == "sent":
                sent[record["request_id"]] += 1
                assert record["sid"] in held and held[record["sid"]]["to"] == record["to"]
    assert {key: n for key, n in sent.items() if n > 1} == {}
