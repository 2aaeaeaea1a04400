"""--rate R holds where it counts: the arrivals at the server, on a loaded machine
(issue 10, item 8). Two busy loops run beside each send, so the test sees the
machine a busy CI runner is; R + 1 arrivals in a second are allowed for jitter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

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
