"""--rate R holds where it counts: the arrivals at the server, on a loaded machine
(issue 10, item 8). Two busy loops run beside each send, so the test sees the
machine a busy CI runner is; R + 1 arrivals in a second are allowed for jitter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from conftest import ndjson, run_process, sms_documents
from twilio_server import TwilioServer


@contextmanager
def busy_loops(count: int = 2) -> Iterator[None]:
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


@pytest.mark.slow
@pytest.mark.parametrize(("rate", "concurrency", "count"), [(20, 10, 70), (5, 4, 18)])
def test_arrivals_at_the_server_stay_within_the_rate_on_a_loaded_machine(
    send_env: dict[str, str], twilio_server: TwilioServer, rate: int, concurrency: int, count: int
) -> None:
    documents = sms_documents(count)
    with busy_loops():
        run = run_process(
            "send",
            "--rate",
            str(rate),
            "--concurrency",
            str(concurrency),
            env=send_env,
            input=ndjson(documents),
            timeout=120,
        )
    assert run.exit_code == 0, run.stderr
    assert len(twilio_server.create_starts()) == count
    assert twilio_server.max_starts_in_window(1.0) <= rate + 1


def test_a_rate_below_one_spaces_the_starts(send_env: dict[str, str], twilio_server: TwilioServer) -> None:
    run = run_process("send", "--rate", "0.5", env=send_env, input=ndjson(sms_documents(3)))
    assert run.exit_code == 0, run.stderr
    assert twilio_server.max_starts_in_window(1.5) == 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_shared_rate_holds_for_every_run_of_the_ledger_together(
    request: pytest.FixtureRequest,
    spawn: Any,
    send_env: dict[str, str],
    twilio_server: TwilioServer,
    backend: str,
) -> None:
    """Two runs on one ledger with --rate 5 --shared-rate: 5 a second between them, not 5 each."""
    env = dict(send_env)
    if backend == "postgresql":
        env["SMSPIPE_LEDGER"] = request.getfixturevalue("postgres_url")
    runs = [
        spawn(env, sms_documents(12, prefix=f"run{n}"), "--rate", "5", "--shared-rate", "--concurrency", "4")
        for n in range(2)
    ]
    for process in runs:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    assert len(twilio_server.create_starts()) == 24
    assert twilio_server.max_starts_in_window(1.0) <= 5 + 1


def test_a_shared_rate_needs_the_ledger_that_keeps_it(
    send_env: dict[str, str], twilio_server: TwilioServer
) -> None:
    run = run_process(
        "send", "--rate", "5", "--shared-rate", "--no-ledger", env=send_env, input=ndjson(sms_documents(1))
    )
    assert run.exit_code == 2
    [line] = run.stderr.splitlines()
    assert "shared rate" in line and "--no-ledger" in line
    assert twilio_server.creates() == []
