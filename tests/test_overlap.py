"""Runs that overlap: one ledger by several names, keys held by a live run, a run
stopped past its lease (issue 10, items 4 and 6). Processes are real; what counts
is what the loopback server created."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import check_send_record, ndjson, run_process, sms_documents
from processes import Spawn
from twilio_server import TwilioServer, wait_until


def records_of(stdout: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for record in records:
        check_send_record(record)
    return records


def assert_each_created_once(server: TwilioServer, documents: list[dict[str, Any]]) -> None:
    bodies = sorted(m["body"] for m in server.messages)
    assert bodies == sorted(d["sms"]["message"] for d in documents)


# --- item 4: one ledger, several names ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["symlink", "relative", "hardlink"])
def test_runs_reaching_one_ledger_by_two_names_send_each_message_once(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path, alias: str
) -> None:
    ledger = tmp_path / "state" / "ledger.sqlite3"
    ledger.parent.mkdir()
    # The ledger must exist for a hard link to it; an empty run creates it.
    assert run_process("send", "--ledger", str(ledger), env=send_env, input="").exit_code == 0
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    cwd: Path | None = None
    if alias == "symlink":
        other = other_dir / "ledger.sqlite3"
        other.symlink_to(ledger)
        name = str(other)
    elif alias == "hardlink":
        other = other_dir / "ledger.sqlite3"
        os.link(ledger, other)
        name = str(other)
    else:
        cwd = tmp_path
        name = "state/ledger.sqlite3"
    documents = sms_documents(120)
    twilio_server.latency = 0.25
    twilio_server.log_lag = 1.0  # a message reaches the log a little after it is created
    processes = [
        spawn(send_env, documents, "--concurrency", "6", "--ledger", str(ledger)),
        spawn(send_env, documents, "--concurrency", "6", "--ledger", name, cwd=cwd),
        spawn(send_env, documents[::-1], "--concurrency", "6", "--ledger", name, cwd=cwd),
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert_each_created_once(twilio_server, documents)
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert {r["status"] for r in records_of(stdout)} <= {"sent", "skipped"}
    sent = [r["request_id"] for out, _ in outputs for r in records_of(out) if r["status"] == "sent"]
    assert sorted(sent) == sorted(d["request_id"] for d in documents)


# --- item 6: an unsettled message is unknown, never skipped ----------------------------------


def test_while_the_log_is_unreachable_a_rerun_reports_unknown_not_skipped(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    documents = sms_documents(3)
    twilio_server.inject("drop")
    twilio_server.fail_lookups = 10_000
    env = {**send_env, "SMSPIPE_RECONCILE_GRACE": "600"}
    first = run_process("send", "--concurrency", "1", env=env, input=ndjson(documents))
    assert first.exit_code == 75, first.stderr
    assert sorted(first.statuses()) == ["sent", "sent", "unknown"]

    failed = tmp_path / "failed.ndjson"
    second = run_process("send", "--failed", str(failed), env=env, input=ndjson(documents))
    assert second.exit_code == 75, second.stderr
    unknown = [r for r in second.records if r["status"] == "unknown"]
    assert [r["request_id"] for r in unknown] == [documents[0]["request_id"]]
    assert unknown[0]["sid"] is None
    assert unknown[0]["error"]["temporary"] is True
    assert "being sent" not in unknown[0]["summary"]
    assert [json.loads(x)["request_id"] for x in failed.read_text().splitlines()] == ["msg-0"]
    assert len(twilio_server.messages) == 3  # created once, never resent meanwhile

    twilio_server.fail_lookups = 0
    third = run_process("send", env=env, input=ndjson(documents))
    assert third.exit_code == 0, third.stderr
    assert third.statuses() == ["skipped"] * 3
    assert {r["sid"] for r in third.records} == {m["sid"] for m in twilio_server.messages}
    assert_each_created_once(twilio_server, documents)


@pytest.mark.slow
def test_a_key_held_by_a_live_run_is_unknown_with_the_holder_named_never_skipped(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(1)
    twilio_server.latency = 4.0
    holder = spawn(send_env, documents, "--timeout", "30")
    assert wait_until(lambda: len(twilio_server.creates()) == 1, timeout=30)
    os.kill(holder.pid, signal.SIGSTOP)  # it holds the key, and stays alive
    try:
        second = run_process("send", "--timeout", "1", env=send_env, input=ndjson(documents))
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    holder.communicate(timeout=60)
    assert second.exit_code == 75, second.stderr
    [record] = second.records
    assert record["status"] == "unknown"
    assert f"pid {holder.pid}" in record["summary"]
    assert holder.returncode == 0
    assert_each_created_once(twilio_server, documents)
    third = run_process("send", env=send_env, input=ndjson(documents))
    assert third.statuses() == ["skipped"]


@pytest.mark.slow
def test_a_key_another_run_settles_meanwhile_is_reported_as_that_run_left_it(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(1)
    twilio_server.latency = 1.5
    holder = spawn(send_env, documents)
    assert wait_until(lambda: len(twilio_server.creates()) == 1, timeout=30)
    second = run_process("send", env=send_env, input=ndjson(documents))
    holder.communicate(timeout=60)
    assert second.exit_code == 0, second.stderr
    [record] = second.records
    assert record["status"] == "skipped"
    assert record["sid"] == twilio_server.messages[0]["sid"]
    assert_each_created_once(twilio_server, documents)


@pytest.mark.slow
def test_a_run_stopped_past_its_lease_does_not_send_on(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(30)
    env = {**send_env, "SMSPIPE_RUN_LEASE": "2", "SMSPIPE_RECONCILE_GRACE": "3"}
    twilio_server.latency = 0.3
    stopped = spawn(env, documents, "--concurrency", "2")
    assert wait_until(lambda: len(twilio_server.creates()) >= 4, timeout=30)
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        time.sleep(2.5)  # past its lease
        twilio_server.latency = 0.0
        taker = run_process("send", "--concurrency", "4", env=env, input=ndjson(documents))
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    _, stderr = stopped.communicate(timeout=60)
    assert stopped.returncode == 75, stderr
    assert "lease" in stderr
    assert taker.exit_code in (0, 75), taker.stderr
    # Both runs together: nothing twice.
    assert len({m["body"] for m in twilio_server.messages}) == len(twilio_server.messages)

    deadline = time.monotonic() + 60
    calm = {**send_env, "SMSPIPE_RECONCILE_GRACE": "3"}  # the default lease: nothing stops these
    while True:
        rerun = run_process("send", env=calm, input=ndjson(documents))
        if rerun.exit_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert rerun.exit_code == 0, rerun.stderr
    assert_each_created_once(twilio_server, documents)
