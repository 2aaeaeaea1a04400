"""The ledger: claims, states, dead runs, and claims racing across processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smspipe.delivery import EngineOptions, RateLimiter
from smspipe.ledger import ClaimResult, Entry, Ledger, State, read_only


def entry(key: str = "order:R1:complete", body: str = "Your order R1 shipped") -> Entry:
    return Entry(
        key=key,
        account_sid="AC" + "1" * 32,
        to="+14155552671",
        sender="+15017122661",
        messaging_service_sid=None,
        body=body,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


def test_claim_send_then_skip(path: Path) -> None:
    with Ledger(path) as ledger:
        assert ledger.claim(entry()).result == ClaimResult.CLAIMED
        row = ledger.get(entry().key)
        assert row is not None and row.state == State.PENDING and row.body == entry().body
        ledger.mark_sent(entry().key, "SM" + "a" * 32, 1)
        claim = ledger.claim(entry())
        assert claim.result == ClaimResult.ALREADY_SENT
        assert claim.row is not None and claim.row.sid == "SM" + "a" * 32
        sent = ledger.get(entry().key)
        assert sent is not None and sent.body is None  # the text is not kept once sent


def test_the_ledger_is_wal_and_private(path: Path) -> None:
    with Ledger(path):
        pass
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert path.parent.stat().st_mode & 0o077 == 0


def test_force_claims_a_sent_row_and_release_restores_it(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.claim(entry())
        ledger.mark_sent(entry().key, "SMold", 1)
        claim = ledger.claim(entry(), force=True)
        assert claim.result == ClaimResult.CLAIMED
        ledger.release(entry().key, claim.row)
        row = ledger.get(entry().key)
        assert row is not None and row.state == State.SENT and row.sid == "SMold"


def test_a_failed_row_is_tried_again(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.claim(entry())
        ledger.mark_failed(entry().key, 21211, "bad number")
        assert ledger.claim(entry()).result == ClaimResult.CLAIMED


def test_release_forgets_a_new_claim(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.claim(entry())
        ledger.release(entry().key)
        assert ledger.get(entry().key) is None


def test_a_live_run_holds_its_rows_and_a_dead_ones_are_stale(path: Path) -> None:
    first = Ledger(path, run_id="host:1:first")
    second = Ledger(path, run_id="host:2:second")
    try:
        assert first.claim(entry()).result == ClaimResult.CLAIMED
        busy = second.claim(entry())
        assert busy.result == ClaimResult.BUSY and busy.holder == "pid 1 on host"
        assert first.claim(entry()).holder == "this run"  # the same key twice in one run
        assert second.open_rows() == []
        first.close()  # the run ends without settling its row (as if killed)
        [stale_row] = second.open_rows()
        assert stale_row.key == entry().key
        stale = second.claim(entry())
        assert stale.result == ClaimResult.STALE
        assert stale.row is not None and stale.row.owner == "host:1:first"
        row = second.get(entry().key)
        assert row is not None and row.owner == "host:2:second"
    finally:
        second.close()


def test_a_run_killed_with_sigkill_leaves_a_stale_row(path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, sys, time
        from smspipe.ledger import Entry, Ledger
        ledger = Ledger({str(path)!r})
        ledger.claim(Entry("k", None, "+14155552671", None, None, "hello"))
        print("claimed", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "claimed"
    with Ledger(path) as ledger:
        assert ledger.claim(Entry("k", None, "+14155552671", None, None, "hello")).result == ClaimResult.BUSY
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with Ledger(path) as ledger:
        assert ledger.claim(Entry("k", None, "+14155552671", None, None, "hello")).result == ClaimResult.STALE


def test_adopt_takes_a_dead_runs_row_once(path: Path) -> None:
    dead = Ledger(path, run_id="host:9:dead")
    dead.claim(entry())
    dead.close()
    with Ledger(path) as one, Ledger(path) as two:
        [row] = one.open_rows()
        assert one.adopt(row)
        assert not two.adopt(row)  # now held by a live run


def test_claims_race_across_processes_and_each_key_is_claimed_once(path: Path) -> None:
    with Ledger(path):
        pass  # create it first, as a run would
    keys = 150
    script = textwrap.dedent(f"""
        import sys
        from smspipe.ledger import ClaimResult, Entry, Ledger
        won = 0
        with Ledger({str(path)!r}) as ledger:
            for i in range({keys}):
                claim = ledger.claim(Entry(f"k{{i}}", None, "+14155552671", None, None, "b"))
                if claim.result == ClaimResult.CLAIMED:
                    won += 1
                    ledger.mark_sent(f"k{{i}}", f"SM{{i}}")
        print(won)
    """)
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    won = [int(p.communicate(timeout=60)[0]) for p in processes]
    assert sum(won) == keys
    with Ledger(path) as ledger:
        assert ledger.counts() == {"sent": keys}


def test_read_only_view(path: Path) -> None:
    assert read_only(path) is None
    with Ledger(path) as ledger:
        ledger.claim(entry())
        ledger.mark_sent(entry().key, "SMx")
    view = read_only(path)
    assert view is not None
    row = view.get(entry().key)
    assert row is not None and row.sid == "SMx"
    assert view.get("other") is None
    view.close()


def test_known_sids_and_owner(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.claim(entry("a"))
        ledger.mark_sent("a", "SMa")
        assert ledger.known_sids(["SMa", "SMb"]) == {"SMa"}
        assert ledger.sid_owner("SMa") == "a" and ledger.sid_owner("SMb") is None


def test_an_unusable_ledger_is_a_config_error(tmp_path: Path) -> None:
    from smspipe.errors import ConfigError

    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError) as caught:
        Ledger(path)
    assert "--ledger" in str(caught.value)


# --- the rate limiter and the backoff --------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=200, deadline=None)
@given(
    rate=st.one_of(st.integers(1, 50).map(float), st.floats(0.2, 40)),
    gaps=st.lists(st.floats(0, 0.3), min_size=1, max_size=120),
)
def test_never_more_than_rate_starts_in_any_second(rate: float, gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock)
    starts = []
    for gap in gaps:
        clock.now += gap
        starts.append(clock.now + limiter.reserve())
    assert starts == sorted(starts)
    allowed = max(1, int(rate)) if rate >= 1 else 1
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s < start + 1.0]
        assert len(in_window) <= allowed
        if rate < 1 and i + 1 < len(starts):
            assert starts[i + 1] - start >= 1 / rate


def test_without_rate_nothing_waits_but_retry_after_holds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock)
    assert [limiter.reserve() for _ in range(100)] == [0.0] * 100
    limiter.hold(2.5)
    assert limiter.reserve() == 2.5


@given(
    attempt=st.integers(1, 30),
    max_wait=st.floats(0, 120),
    retry_after=st.one_of(st.none(), st.floats(0, 200)),
)
def test_backoff_is_full_jitter_bounded_by_max_wait_and_honours_retry_after(
    attempt: int, max_wait: float, retry_after: float | None
) -> None:
    from smspipe.delivery import Engine, Gateways

    options = EngineOptions(concurrency=1, max_wait=max_wait, backoff=0.5)
    engine = Engine(
        options,
        Gateways(lambda c: None),
        None,  # type: ignore[arg-type,return-value]
        on_result=lambda r: None,
    )
    try:
        delay = engine.backoff(attempt, retry_after)
    finally:
        engine.close()
    if retry_after is not None and retry_after > max_wait:
        assert delay is None
        return
    assert delay is not None
    assert 0 <= delay <= max(min(max_wait, 0.5 * 2 ** (attempt - 1)), retry_after or 0)
    if retry_after is not None:
        assert delay >= retry_after
