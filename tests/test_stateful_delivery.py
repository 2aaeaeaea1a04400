"""Exactly once, under an adversary: a stateful property test (issue 10, Proof).

Hypothesis drives real ``smspipe send`` processes against the loopback Twilio
server, one ledger (an SQLite file, or a PostgreSQL database), a pool of
documents, and random faults: 429 with Retry-After, 5xx, a reset before the
create, a drop after it, a late create, a slow answer, a lagging log, a log
that rewrites bodies, a log that cannot be read, ``kill -9`` at random
moments, SIGTERM, overlapping runs. After every step:

- at most one message was created per document;
- everything reported ``sent`` or ``skipped`` names a SID the server holds,
  to that recipient, with that text;
- the ledger records at most one message per key.

When the faults stop, re-runs deliver every valid document exactly once.

Bounded for CI (profile ``ci``, ~2 minutes); ``SMSPIPE_STATEFUL=soak`` runs
the long profile (and bench/soak.py soaks at scale).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import check_send_record, ndjson
from smspipe.delivery.planner import content_key
from smspipe.sms import SMS
from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

GRACE = 6.0  # > late create + log lag + a loaded machine's stalls
LATE = 1.5
TIMEOUT = "1"
PROFILE = os.environ.get("SMSPIPE_STATEFUL", "ci")
settings.register_profile(
    "ci",
    max_examples=3,
    stateful_step_count=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "soak", max_examples=40, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
)


def pool() -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """The documents, and what each valid message key must deliver: (recipient, text)."""
    documents: list[dict[str, Any]] = []
    wanted: dict[str, tuple[str, str]] = {}
    for n in range(8):
        phone, text = f"+1415555{n:04d}", f"doc {n}: your order\u2019s on its way \u2014 thanks"
        documents.append({"request_id": f"doc-{n}", "sms": {"phone": phone, "message": text}})
        wanted[f"doc-{n}"] = (phone, text)
    for n in range(8, 10):  # keyed by their content
        phone, text = f"+1415555{n:04d}", f"plain {n}: shipped"
        documents.append({"sms": {"phone": phone, "message": text}})
        wanted[content_key(SMS(phone, text))] = (phone, text)
    items = [
        {"phone": "+14155550100", "message": "col 0: shipped"},
        {"phone": "+14155550101", "message": "col 1"},
    ]
    documents.append({"request_id": "col", "sms": items})
    for index, item in enumerate(items):
        wanted[f"col[{index}]"] = (item["phone"], item["message"])
    documents.append(documents[0])  # the same request twice in one input
    documents.append({"request_id": "bad", "sms": {"phone": "12", "message": "invalid"}})
    return documents, wanted


faults = st.fixed_dictionaries(
    {
        "429": st.sampled_from([0.0, 0.15]),
        "500": st.sampled_from([0.0, 0.1]),
        "503": st.sampled_from([0.0, 0.15]),
        "reset": st.sampled_from([0.0, 0.1]),
        "drop": st.sampled_from([0.0, 0.2]),
        "slow": st.sampled_from([0.0, 0.1]),
        "late": st.sampled_from([0.0, 0.15]),
    }
)
log_faults = st.tuples(
    st.sampled_from([0.0, 0.5]), st.sampled_from([None, "trial", "smart"]), st.sampled_from([0, 2, 1000])
)


class DeliveryMachine(RuleBasedStateMachine):
    #: the PostgreSQL server when the ledger is there (a database each example), else SQLite
    postgres: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.home = Path(tempfile.mkdtemp(prefix="smspipe-stateful-"))
        self.ledger_url = self.postgres.new_database() if self.postgres is not None else None
        self.server = TwilioServer(seed=random.randrange(1 << 30)).start()
        self.server.retry_after = "0.2"
        self.server.late_seconds = LATE
        self.server.slow_seconds = 2.0
        self.documents, self.wanted = pool()
        self.by_body = {text: key for key, (_, text) in self.wanted.items()}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMSPIPE_"))}
        env.update(
            SMSPIPE_HOME=str(self.home),
            SMSPIPE_API_URL=self.server.url,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            SMSPIPE_FROM="+15017122661",
            SMSPIPE_RECONCILE_GRACE=str(GRACE),
            SMSPIPE_RUN_LEASE="8",
        )
        if self.ledger_url is not None:
            env["SMSPIPE_LEDGER"] = self.ledger_url
        self.env = env
        self.records: list[dict[str, Any]] = []

    # --- faults and runs ---------------------------------------------------------------------

    def _faults(self, mix: dict[str, float], log: tuple[float, str | None, int]) -> None:
        self.server.fault_mix = {name: p for name, p in mix.items() if p}
        self.server.log_lag, self.server.log_body, self.server.fail_lookups = log

    def _start(self, order: list[int], concurrency: int) -> subprocess.Popen[str]:
        documents = [self.documents[i] for i in order]
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smspipe",
                "send",
                "--timeout",
                TIMEOUT,
                "--retries",
                "2",
                "--max-wait",
                "0.3",
                "--concurrency",
                str(concurrency),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        assert process.stdin is not None
        process.stdin.write(ndjson(documents))
        process.stdin.close()
        process.stdin = None
        return process

    def _collect(self, process: subprocess.Popen[str]) -> tuple[int, str]:
        stdout, stderr = process.communicate(timeout=120)
        assert "Traceback" not in stderr and "internal error" not in stderr, stderr
        for line in stdout.splitlines():
            if line.strip():
                self.records.append(json.loads(line))
                check_send_record(self.records[-1])
        return process.returncode, stderr

    @rule(
        mix=faults,
        log=log_faults,
        order=st.permutations(range(13)),
        concurrency=st.integers(1, 6),
    )
    def run(
        self, mix: dict[str, float], log: tuple[float, str | None, int], order: list[int], concurrency: int
    ) -> None:
        self._faults(mix, log)
        code, stderr = self._collect(self._start(order, concurrency))
        assert code in (0, 1, 75), stderr

    @rule(
        mix=faults,
        log=log_faults,
        order=st.permutations(range(13)),
        after=st.floats(0.0, 1.5),
        how=st.sampled_from([signal.SIGKILL, signal.SIGTERM]),
    )
    def run_and_kill(
        self,
        mix: dict[str, float],
        log: tuple[float, str | None, int],
        order: list[int],
        after: float,
        how: int,
    ) -> None:
        self._faults(mix, log)
        process = self._start(order, 4)
        time.sleep(after)
        process.send_signal(how)
        code, stderr = self._collect(process)
        if how == signal.SIGTERM:  # -15: before the interpreter ran any of smspipe
            assert code in (0, 1, 75, 143, -15), stderr

    @rule(mix=faults, orders=st.lists(st.permutations(range(13)), min_size=2, max_size=3))
    def overlapping_runs(self, mix: dict[str, float], orders: list[list[int]]) -> None:
        self._faults(mix, (0.0, None, 0))
        processes = [self._start(order, 3) for order in orders]
        for process in processes:
            code, stderr = self._collect(process)
            assert code in (0, 1, 75), stderr

    @precondition(lambda self: self.server.messages)
    @rule()
    def sweep_the_log(self) -> None:
        """Let late creates land and the log catch up (as time passes between cron runs)."""
        time.sleep(LATE)

    # --- what must hold after every step ---------------------------------------------------------

    @invariant()
    def at_most_one_message_per_document(self) -> None:
        counts: dict[str, int] = {}
        for message in self.server.messages:
            key = self.by_body.get(message["body"])
            assert key is not None, f"a message nobody asked for: {message['body']!r}"
            counts[key] = counts.get(key, 0) + 1
        assert {key: n for key, n in counts.items() if n > 1} == {}

    @invariant()
    def what_is_reported_delivered_is_held_by_the_server(self) -> None:
        held = {m["sid"]: m for m in self.server.messages}
        for record in self.records:
            if record["status"] not in ("sent", "skipped"):
                assert record["status"] in ("failed", "unknown", "invalid"), record
                continue
            message = held.get(record["sid"])
            assert message is not None, record
            to, text = self.wanted[record["request_id"]]
            assert (message["to"], message["body"]) == (to, text) == (record["to"], text)

    @invariant()
    def the_ledger_records_at_most_one_message_per_key(self) -> None:
        query = "SELECT key, count(*) FROM {table} GROUP BY key HAVING count(*) > 1"
        if self.ledger_url is not None:
            import psycopg

            with psycopg.connect(self.ledger_url) as db:
                made = db.execute("SELECT to_regclass('smspipe.messages')").fetchone()
                rows = (
                    db.execute(query.format(table="smspipe.messages")).fetchall() if made and made[0] else []
                )
            assert rows == []
            return
        path = self.home / "state" / "ledger.sqlite3"
        if not path.exists():
            return
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
            rows = db.execute(query.format(table="messages")).fetchall()
        assert rows == []

    # --- once the faults stop -----------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            self._faults({}, (0.0, None, 0))
            deadline = time.monotonic() + GRACE + 60
            while True:
                code, stderr = self._collect(self._start(list(range(13)), 4))
                if code == 1 or time.monotonic() > deadline:  # 1: the invalid document
                    break
                time.sleep(1.0)  # unknown keys wait for their grace period
            assert code == 1, stderr
            self.at_most_one_message_per_document()
            self.what_is_reported_delivered_is_held_by_the_server()
            created = sorted((m["to"], m["body"]) for m in self.server.messages)
            assert created == sorted(self.wanted.values())  # every valid document, exactly once
        finally:
            self.server.stop()
            shutil.rmtree(self.home, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_delivery_is_exactly_once_under_random_faults_kills_and_overlaps(
    request: pytest.FixtureRequest, backend: str
) -> None:
    machine: type[DeliveryMachine] = DeliveryMachine
    if backend == "postgresql":
        machine = type(
            "PostgresDeliveryMachine", (DeliveryMachine,), {"postgres": request.getfixturevalue("postgres")}
        )
    run_state_machine_as_test(machine, settings=settings.get_profile(PROFILE))
