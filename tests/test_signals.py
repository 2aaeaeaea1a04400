"""SIGTERM and SIGINT: stop starting, settle what is in flight, print the summary
(issue 10, item 7). Real processes, real signals."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest

from conftest import check_send_record, ndjson, run_process, sms_documents
from processes import Spawn
from twilio_server import TwilioServer, wait_until


def open_rows(env: dict[str, str]) -> list[str]:
    path = Path(env["SMSPIPE_HOME"]) / "state" / "ledger.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT state FROM deliveries WHERE state != 'sent'")]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_settles_the_requests_in_flight_and_prints_the_summary(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer, signum: int, code: int
) -> None:
    documents = sms_documents(40)
    twilio_server.latency = 0.3
    process = spawn(send_env, documents, "--concurrency", "4")
    assert wait_until(lambda: len(twilio_server.creates()) >= 6, timeout=30)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == code, stderr
    assert "interrupted" in stderr
    assert "40 documents" not in stderr  # the batch stopped
    summary = [line for line in stderr.splitlines() if " documents: " in line]
    assert summary, stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    for record in records:
        check_send_record(record)
    created = {m["sid"] for m in twilio_server.messages}
    assert {r["sid"] for r in records if r["status"] == "sent"} == created
    assert 0 < len(created) < 40
    assert open_rows(send_env) == []  # no claim left pending

    twilio_server.latency = 0.0
    rerun = run_process("send", env=send_env, input=ndjson(documents))
    assert rerun.exit_code == 0, rerun.stderr
    assert sorted(m["body"] for m in twilio_server.messages) == sorted(d["sms"]["message"] for d in documents)


@pytest.mark.slow
def test_a_second_signal_abandons_what_is_in_flight_and_the_next_run_reconciles(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(8)
    twilio_server.latency = 5.0
    process = spawn(send_env, documents, "--concurrency", "4", "--timeout", "30")
    assert wait_until(lambda: len(twilio_server.creates()) >= 4, timeout=30)
    process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    # Two signals sent at once arrive as one: the second goes once the first is handled.
    assert "interrupted" in process.stderr.readline()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert "abandon" in stderr
    assert wait_until(lambda: len(twilio_server.messages) == 4, timeout=30)

    twilio_server.latency = 0.0
    rerun = run_process("send", env=send_env, input=ndjson(documents))
    assert rerun.exit_code == 0, rerun.stderr
    assert "found in Twilio's message log" in rerun.stderr
    assert sorted(m["body"] for m in twilio_server.messages) == sorted(d["sms"]["message"] for d in documents)


@pytest.mark.slow
def test_a_signal_ends_a_wait_for_the_next_start_at_once(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    """With --rate 0.01 the second start is 100 s away: SIGTERM does not wait for it."""
    process = spawn(send_env, sms_documents(3), "--rate", "0.01")
    assert wait_until(lambda: len(twilio_server.messages) == 1, timeout=30)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert len(twilio_server.creates()) == 1
    assert sorted(json.loads(line)["status"] for line in stdout.splitlines()) == ["failed", "failed", "sent"]
    assert open_rows(send_env) == []
