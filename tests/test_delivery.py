"""The delivery engine over real HTTP: the ledger, retries, ambiguous failures,
crashes, overlapping runs, concurrency and rate. Every claim about delivery is
checked against what the loopback server recorded, not against smspipe's output."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Run, invoke, ndjson, run_process, sms_documents
from processes import Spawn
from twilio_server import OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN, TwilioServer, wait_until

FAST = ("--max-wait", "0.1")  # keep backoff short in tests


def bodies(documents: list[dict[str, Any]]) -> set[str]:
    return {d["sms"]["message"] for d in documents}


def assert_each_created_once(server: TwilioServer, documents: list[dict[str, Any]]) -> None:
    created = server.created_bodies()
    assert server.duplicates() == {}
    assert set(created) == bodies(documents)
    assert len(created) == len(documents)


def ledger_states(home: Path) -> dict[str, int]:
    path = home / "state" / "ledger.sqlite3"
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as view:
        rows = view.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
    return {row[0]: row[1] for row in rows}


def home_of(env: dict[str, str]) -> Path:
    return Path(env["SMSPIPE_HOME"])


# --- the ledger ------------------------------------------------------------------------


def test_a_rerun_sends_nothing_and_reports_skipped_with_the_earlier_sid(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(6)
    first = invoke("send", input=ndjson(documents))
    assert first.exit_code == 0, first.stderr
    sids = {r["request_id"]: r["sid"] for r in first.records}

    second = invoke("send", input=ndjson(documents))
    assert second.exit_code == 0
    assert second.statuses() == ["skipped"] * 6
    assert {r["request_id"]: r["sid"] for r in second.records} == sids
    assert "already sent" in second.records[0]["summary"]
    assert "6 documents: 6 skipped" in second.stderr
    assert len(twilio_server.creates()) == 6  # nothing new reached the server


def test_without_request_id_the_content_hash_is_the_key(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(3, request_ids=False)
    invoke("send", input=ndjson(documents))
    again = invoke("send", input=ndjson(documents))
    assert again.statuses() == ["skipped"] * 3
    assert all(r["request_id"].startswith("sha256:") for r in again.records)
    changed = [{"sms": {**documents[0]["sms"], "message": "a different text"}}]
    assert invoke("send", input=ndjson(changed)).statuses() == ["sent"]
    assert len(twilio_server.messages) == 4


def test_force_sends_again_and_no_ledger_neither_skips_nor_records(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(2)
    invoke("send", input=ndjson(documents))
    forced = invoke("send", "--force", input=ndjson(documents))
    assert forced.statuses() == ["sent", "sent"]
    assert len(twilio_server.messages) == 4
    invoke("send", "--no-ledger", input=ndjson(sms_documents(2, prefix="x")))
    invoke("send", "--no-ledger", input=ndjson(sms_documents(2, prefix="x")))
    assert len(twilio_server.messages) == 8


def test_the_same_request_twice_in_one_input_is_sent_once(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    [document] = sms_documents(1)
    run = invoke("send", input=ndjson([document] * 3))
    assert sorted(run.statuses()) == ["sent", "skipped", "skipped"]
    assert len(twilio_server.messages) == 1


def test_a_rejected_document_is_tried_again_on_the_next_run(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(2)
    twilio_server.reject(documents[0]["sms"]["phone"], 21612, "not reachable from this sender")
    assert invoke("send", input=ndjson(documents)).exit_code == 1
    twilio_server.rejections.clear()  # the carrier routes it again
    run = invoke("send", input=ndjson(documents))
    assert run.exit_code == 0
    assert sorted(run.statuses()) == ["sent", "skipped"]
    assert_each_created_once(twilio_server, documents)


def test_ledger_location_flag_and_smspipe_home(
    send_env: dict[str, str], tmp_path: Path, twilio_server: TwilioServer
) -> None:
    invoke("send", input=ndjson(sms_documents(1)))
    assert (home_of(send_env) / "state" / "ledger.sqlite3").is_file()
    custom = tmp_path / "elsewhere" / "sent.db"
    invoke("send", "--ledger", str(custom), input=ndjson(sms_documents(1, prefix="y")))
    assert custom.is_file()
    assert invoke("send", "--ledger", str(custom), input=ndjson(sms_documents(1, prefix="y"))).statuses() == [
        "skipped"
    ]


def test_dry_run_shows_what_the_ledger_would_skip(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(2)
    invoke("send", input=ndjson(documents[:1]))
    run = invoke("send", "--dry-run", input=ndjson(documents))
    assert sorted(run.statuses()) == ["dry-run", "skipped"]
    assert len(twilio_server.creates()) == 1


# --- retries -----------------------------------------------------------------------------


def test_429_is_retried_after_retry_after(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    twilio_server.retry_after = "1"
    twilio_server.inject("429")
    run = invoke("send", "--concurrency", "1", input=ndjson(sms_documents(1)))
    assert run.exit_code == 0, run.stderr
    first, second = twilio_server.create_starts()
    assert second - first >= 0.95
    assert len(twilio_server.messages) == 1


def test_faults_that_created_nothing_are_retried_until_sent_once(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.inject("503", "429", "503")
    twilio_server.retry_after = "0"
    run = invoke("send", "--concurrency", "1", *FAST, input=ndjson(sms_documents(1)))
    assert run.exit_code == 0, run.stderr
    assert len(twilio_server.creates()) == 4
    assert len(twilio_server.messages) == 1
    assert not twilio_server.lookups()  # nothing could have been created: no need to look


@pytest.mark.parametrize("fault", ["500", "reset"])
def test_a_fault_that_may_have_created_it_is_never_resent_in_the_same_run(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    monkeypatch.setenv("SMSPIPE_RECONCILE_GRACE", "0")
    documents = sms_documents(1)
    twilio_server.inject(fault)
    first = invoke("send", "--concurrency", "1", *FAST, input=ndjson(documents))
    assert first.exit_code == 75, first.stderr
    assert first.statuses() == ["unknown"]
    assert len(twilio_server.creates()) == 1  # looked up, never resent
    assert twilio_server.lookups()
    assert twilio_server.messages == []

    # The next run finds it absent from the log past the grace period: sent, once.
    second = invoke("send", input=ndjson(documents))
    assert second.exit_code == 0, second.stderr
    assert second.statuses() == ["sent"]
    assert len(twilio_server.messages) == 1


@pytest.mark.parametrize("fault", ["drop", "slow"])
def test_a_message_created_but_unanswered_is_found_not_resent(
    send_env: dict[str, str], twilio_server: TwilioServer, fault: str
) -> None:
    twilio_server.slow_seconds = 0.6
    twilio_server.inject(fault)
    run = invoke("send", "--concurrency", "1", "--timeout", "0.3", *FAST, input=ndjson(sms_documents(1)))
    assert run.exit_code == 0, run.stderr
    [message] = twilio_server.messages
    [record] = run.records
    assert record["status"] == "sent" and record["sid"] == message["sid"]
    assert len(twilio_server.creates()) == 1  # never resent
    lookup = twilio_server.lookups()[0]
    assert lookup.query["To"] == [message["to"]]


def test_4xx_is_never_retried(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    [document] = sms_documents(1)
    twilio_server.reject(document["sms"]["phone"], 21211)
    run = invoke("send", input=ndjson([document]))
    assert run.exit_code == 1
    assert len(twilio_server.creates()) == 1 and not twilio_server.lookups()


def test_undelivered_after_retries_is_75_and_the_next_run_sends_it(
    send_env: dict[str, str], twilio_server: TwilioServer, tmp_path: Path
) -> None:
    documents = sms_documents(2)
    twilio_server.inject("503", "503")
    failed = tmp_path / "failed.ndjson"
    run = invoke(
        "send",
        "--concurrency",
        "1",
        "--retries",
        "1",
        *FAST,
        "--failed",
        str(failed),
        input=ndjson(documents),
    )
    assert run.exit_code == 75
    records = sorted(run.records, key=lambda r: r["line"])
    assert [r["status"] for r in records] == ["failed", "sent"]
    assert records[0]["error"]["temporary"] is True
    assert "run again later" in run.stderr
    assert [json.loads(x) for x in failed.read_text().splitlines()] == [documents[0]]

    again = invoke("send", input=failed.read_text())
    assert again.exit_code == 0
    assert_each_created_once(twilio_server, documents)


def test_retry_after_longer_than_max_wait_leaves_it_for_the_next_run(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.retry_after = "30"
    twilio_server.inject("429")
    started = time.monotonic()
    run = invoke("send", "--max-wait", "1", input=ndjson(sms_documents(1)))
    assert time.monotonic() - started < 10
    assert run.exit_code == 75
    assert "--max-wait" in run.records[0]["summary"]


def test_when_the_log_cannot_be_checked_the_next_run_reconciles_first(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(3)
    twilio_server.inject("drop")
    twilio_server.fail_lookups = 1000
    run = invoke("send", "--concurrency", "1", *FAST, input=ndjson(documents))
    assert run.exit_code == 75
    unknown = next(r for r in run.records if r["status"] == "unknown")
    assert "may have created it" in unknown["error"]["message"]
    assert "could not be checked" in unknown["error"]["message"]
    assert ledger_states(home_of(send_env)) == {"unknown": 1, "sent": 2}

    twilio_server.fail_lookups = 0
    again = invoke("send", input=ndjson(documents))
    assert again.exit_code == 0, again.stderr
    assert "1 found in Twilio's message log" in again.stderr
    assert again.statuses() == ["skipped"] * 3
    assert_each_created_once(twilio_server, documents)


def test_a_row_of_another_account_is_reconciled_with_its_documents_credentials(
    bare_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_API_URL", twilio_server.url)
    documents = [
        {
            "request_id": f"hub-{i}",
            "parameters": {"twilio_account_sid": OTHER_ACCOUNT_SID, "twilio_auth_token": OTHER_AUTH_TOKEN},
            "sms": {"from": "+15017122661", "phone": f"+1415555000{i}", "message": f"hub message {i}"},
        }
        for i in range(2)
    ]
    twilio_server.inject("drop")
    twilio_server.fail_lookups = 1000
    assert invoke("send", "--concurrency", "1", *FAST, input=ndjson(documents)).exit_code == 75
    twilio_server.fail_lookups = 0
    again = invoke("send", input=ndjson(documents))
    assert again.exit_code == 0, again.stderr
    assert "checked when their documents come" in again.stderr
    assert sorted(again.statuses()) == ["skipped", "skipped"]
    assert_each_created_once(twilio_server, documents)


@pytest.mark.slow
def test_under_a_mix_of_every_fault_each_message_is_created_once(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loopback server's log shows a message as soon as it is created: no grace is needed.
    monkeypatch.setenv("SMSPIPE_RECONCILE_GRACE", "0")
    documents = sms_documents(40)
    twilio_server.fault_mix = {"429": 0.1, "500": 0.1, "503": 0.1, "reset": 0.1, "drop": 0.1, "slow": 0.05}
    twilio_server.retry_after = "0"
    twilio_server.slow_seconds = 0.5
    runs: list[Run] = []
    for _ in range(5):
        run = invoke(
            "send",
            "--concurrency",
            "6",
            "--timeout",
            "0.25",
            "--retries",
            "1",
            *FAST,
            input=ndjson(documents),
        )
        runs.append(run)
        if run.exit_code == 0:
            break
        assert run.exit_code == 75, run.stderr
    assert runs[-1].exit_code == 0
    assert len(runs) <= 4
    assert_each_created_once(twilio_server, documents)
    faults = {r.fault for r in twilio_server.creates()}
    assert {"429", "500", "503", "reset", "drop"} <= faults
    assert ledger_states(home_of(send_env)) == {"sent": 40}


# --- processes: kill -9, overlap, Ctrl-C ----------------------------------------------------


@pytest.mark.slow
def test_kill_9_in_the_middle_then_a_rerun_sends_each_message_once(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(40)
    twilio_server.latency = 0.15
    send_env = {**send_env, "SMSPIPE_RECONCILE_GRACE": "0"}
    process = spawn(send_env, documents, "--concurrency", "4")
    assert wait_until(lambda: len(twilio_server.creates()) >= 10, timeout=30)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    time.sleep(0.4)  # the server finishes what was in flight (and creates those messages)
    assert ledger_states(home_of(send_env)).get("sending", 0) >= 1
    created_before = len(twilio_server.messages)
    assert 0 < created_before < 40

    twilio_server.latency = 0.0
    rerun = run_process("send", "--concurrency", "4", env=send_env, input=ndjson(documents))
    assert rerun.exit_code == 0, rerun.stderr
    assert "found in Twilio's message log" in rerun.stderr
    assert_each_created_once(twilio_server, documents)
    assert ledger_states(home_of(send_env)) == {"sent": 40}


@pytest.mark.slow
def test_two_processes_over_one_input_send_each_message_once(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(40)
    twilio_server.latency = 0.03
    processes = [spawn(send_env, documents, "--concurrency", "4") for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert_each_created_once(twilio_server, documents)
    sent = [
        json.loads(line)["request_id"]
        for out, _ in outputs
        for line in out.splitlines()
        if json.loads(line)["status"] == "sent"
    ]
    assert sorted(sent) == sorted(d["request_id"] for d in documents)


@pytest.mark.slow
def test_ctrl_c_finishes_the_requests_in_flight_and_leaves_the_ledger_consistent(
    spawn: Spawn, send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    documents = sms_documents(40)
    twilio_server.latency = 0.3
    process = spawn(send_env, documents, "--concurrency", "4")
    assert wait_until(lambda: len(twilio_server.creates()) >= 6, timeout=30)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    created = {m["sid"] for m in twilio_server.messages}
    sent = {json.loads(x)["sid"] for x in stdout.splitlines() if json.loads(x)["status"] == "sent"}
    assert sent == created  # every request that went out was answered and recorded
    assert ledger_states(home_of(send_env)) == {"sent": len(created)}

    twilio_server.latency = 0.0
    rerun = run_process("send", env=send_env, input=ndjson(documents))
    assert rerun.exit_code == 0
    assert_each_created_once(twilio_server, documents)


# --- concurrency, rate, streaming ---------------------------------------------------------


def test_concurrency_10_puts_10_requests_in_flight(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    twilio_server.latency = 0.2
    run = invoke("send", "--concurrency", "10", input=ndjson(sms_documents(30)))
    assert run.exit_code == 0, run.stderr
    assert twilio_server.max_in_flight == 10


def test_default_concurrency_is_4(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    twilio_server.latency = 0.1
    invoke("send", input=ndjson(sms_documents(12)))
    assert twilio_server.max_in_flight == 4


def test_concurrency_is_between_1_and_100(send_env: dict[str, str]) -> None:
    for value in ("0", "101"):
        run = invoke("send", "--concurrency", value, input=ndjson(sms_documents(1)))
        assert run.exit_code == 2
        assert "--concurrency" in run.stderr


def test_results_are_written_as_they_complete(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "smspipe", "send"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=send_env,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    documents = sms_documents(2)
    process.stdin.write(ndjson(documents[:1]))
    process.stdin.flush()
    ready, _, _ = select.select([process.stdout], [], [], 20)
    assert ready, "no result before the input ended"
    first = json.loads(process.stdout.readline())
    assert first["status"] == "sent"
    process.stdin.write(ndjson(documents[1:]))
    process.stdin.close()
    rest = process.stdout.read()
    assert process.wait(timeout=20) == 0
    assert json.loads(rest)["status"] == "sent"


def test_progress_goes_to_a_terminal_stderr_and_stdout_stays_ndjson(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    import pty

    twilio_server.latency = 0.05
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "smspipe", "send"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
        env={**send_env, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(terminal)
    stdout, _ = process.communicate(ndjson(sms_documents(8)), timeout=60)
    screen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert process.returncode == 0
    assert [json.loads(line)["status"] for line in stdout.splitlines()] == ["sent"] * 8
    text = screen.decode(errors="replace")
    assert "8 documents: 8 sent" in text
    assert "sending" in text  # the progress bar was drawn on the terminal


def test_no_progress_bar_when_stderr_is_not_a_terminal(send_env: dict[str, str]) -> None:
    run = invoke("send", input=ndjson(sms_documents(2)))
    assert run.stderr.strip().splitlines() == ["2 documents: 2 sent"]


def test_without_a_ledger_a_long_run_has_no_lease_to_lose(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_RUN_LEASE", "0.4")
    twilio_server.latency = 0.1
    run = invoke("send", "--no-ledger", "--concurrency", "1", input=ndjson(sms_documents(6)))
    assert run.exit_code == 0, run.stderr
    assert run.statuses() == ["sent"] * 6


def test_a_short_lease_is_renewed_while_the_run_lasts(
    send_env: dict[str, str], twilio_server: TwilioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPIPE_RUN_LEASE", "3")
    twilio_server.latency = 0.1
    run = invoke("send", "--concurrency", "1", input=ndjson(sms_documents(40)))
    assert run.exit_code == 0, run.stderr  # the run outlived its lease
    assert run.statuses() == ["sent"] * 40
