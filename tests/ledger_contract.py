"""The ledger contract: what every backend must do, whatever stores it.

Not collected by itself: a test module imports these tests and provides the
fixtures ``make_ledger`` (a factory: each call opens the same store as another
run, with its own lease) and ``ledger_target`` (what ``open_ledger`` takes, for
other processes). ``tests/test_ledger.py`` runs them on SQLite and on
PostgreSQL (a real server: tests/postgres_server.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from smspipe.ledger import (
    Attempt,
    Delivery,
    FoundOutcome,
    KeyState,
    LeaseLost,
    Ledger,
    Message,
    RunInfo,
    SentQuery,
    Settings,
    StoredKey,
)

MakeLedger = Callable[..., Ledger]
A = "+14155550101"
B = "+14155550102"


def attempt(to: str = A, body: str = "Your order R1 shipped", match: str = "m1") -> Attempt:
    return Attempt(
        recipient=to,
        sender="+15017122661",
        messaging_service_sid=None,
        account_sid="AC" + "1" * 32,
        body=body,
        body_sha256="b-" + body,
        media_sha256="no-media",
        match_sha256=match,
    )


def message(sid: str, key: str, to: str = A) -> Message:
    return Message(sid=sid, key=key, recipient=to, body_sha256="b", media_sha256="no-media")


def test_a_claim_is_taken_once_and_held_by_its_run(make_ledger: MakeLedger) -> None:
    first, second = make_ledger(), make_ledger()
    row = first.claim("k", None, attempt())
    assert row is not None and row.state == KeyState.SENDING
    assert row.holder is not None and row.holder.this_run and row.holder.alive
    assert row.body == "Your order R1 shipped"  # kept while open: reconciliation needs it
    assert row.attempt_age is not None and row.attempt_age < 60
    assert second.claim("k", None, attempt()) is None  # already there
    seen = second.get("k")
    assert seen is not None and seen.holder is not None
    assert not seen.holder.this_run and seen.holder.alive
    assert f"pid {os.getpid()}" in seen.holder.description


def test_writes_are_compare_and_set_on_the_version_read(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    row = ledger.claim("k", None, attempt())
    assert row is not None
    ledger.record_failed("k", 21211, "invalid number")
    assert ledger.claim("k", row.version, attempt()) is None  # stale: the row changed
    current = ledger.get("k")
    assert current is not None and current.state == KeyState.FAILED
    assert ledger.claim("k", current.version, attempt(B)) is not None


def test_sent_keeps_the_message_and_forgets_the_text(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("k", None, attempt())
    ledger.record_sent("k", message("SM1", "k"))
    row = ledger.get("k")
    assert row is not None and row.state == KeyState.SENT and row.sid == "SM1"
    assert row.body is None and row.holder is None
    assert row.latest is not None and row.latest.sid == "SM1" and row.latest.run_id == ledger.run.run_id
    assert row.bound_to == A
    assert ledger.counts().messages == 1


def test_a_key_that_only_failed_binds_nothing_one_with_a_message_stays_bound(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("failed", None, attempt())
    ledger.record_failed("failed", 21211, "invalid")
    row = ledger.get("failed")
    assert row is not None and row.bound_to is None

    ledger.claim("sent", None, attempt())
    ledger.record_sent("sent", message("SM1", "sent"))
    sent = ledger.get("sent")
    assert sent is not None
    ledger.claim("sent", sent.version, attempt(B))  # --force to B, then refused
    ledger.record_failed("sent", 21610, "opted out")
    after = ledger.get("sent")
    assert after is not None and after.state == KeyState.FAILED and after.bound_to == A


def test_release_restores_what_the_key_was(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("new", None, attempt())
    ledger.release("new")
    assert ledger.get("new") is None  # never attempted, as far as anyone can tell

    ledger.claim("old", None, attempt())
    ledger.record_sent("old", message("SM1", "old"))
    row = ledger.get("old")
    assert row is not None
    ledger.claim("old", row.version, attempt(B, "another text"))
    ledger.release("old")
    restored = ledger.get("old")
    assert restored is not None and restored.state == KeyState.SENT
    assert restored.sid == "SM1" and restored.recipient == A and restored.body_sha256 == "b"


def test_a_version_never_comes_back(make_ledger: MakeLedger) -> None:
    """A key deleted and made again must not accept a compare-and-set from before."""
    ledger = make_ledger()
    first = ledger.claim("k", None, attempt())
    assert first is not None
    ledger.release("k")
    again = ledger.claim("k", None, attempt())
    assert again is not None and again.version != first.version
    assert ledger.adopt("k", first.version) is None


def test_an_unknown_key_is_held_while_its_run_lives_and_adopted_once_after(make_ledger: MakeLedger) -> None:
    owner, other, third = make_ledger(), make_ledger(), make_ledger()
    owner.claim("k", None, attempt())
    owner.record_unknown("k", "dropped", attempt_age=5.0)
    row = other.get("k")
    assert row is not None and row.state == KeyState.UNKNOWN and row.holder is not None
    assert row.holder.alive and row.error_message == "dropped"
    assert row.attempt_age is not None and row.attempt_age >= 5.0
    assert other.orphans() == []

    owner.end_run()  # its open keys are free for the next run to settle
    [orphan] = other.orphans()
    assert orphan.key == "k" and orphan.holder is not None and not orphan.holder.alive
    adopted = other.adopt("k", orphan.version)
    assert adopted is not None and adopted.holder is not None and adopted.holder.this_run
    assert third.adopt("k", orphan.version) is None  # once
    assert third.orphans() == []  # held by a live run again


def test_a_run_whose_lease_lapsed_is_dead_to_others_and_may_not_claim(make_ledger: MakeLedger) -> None:
    short = make_ledger(settings=Settings(lease=0.2))
    other = make_ledger()
    short.claim("k", None, attempt())
    assert short.heartbeat()
    time.sleep(0.5)
    row = other.get("k")
    assert row is not None and row.holder is not None and not row.holder.alive
    assert not short.heartbeat()  # lapsed: it may not renew it
    with pytest.raises(LeaseLost):
        short.claim("other", None, attempt())


def test_found_messages_are_recorded_under_one_key_only(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("a", None, attempt(match="same"))
    ledger.claim("b", None, attempt(match="same"))
    # Two open keys, same recipient, same text: a message in the log may be either's.
    assert ledger.record_found("a", message("SM1", "a"), "same") == FoundOutcome.AMBIGUOUS
    ledger.record_sent("b", message("SM2", "b"))
    assert ledger.record_found("a", message("SM2", "a"), "same") == FoundOutcome.TAKEN
    assert ledger.record_found("a", message("SM1", "a"), "same") == FoundOutcome.RECORDED
    ledger.claim("c", None, attempt(match="same"))
    ledger.claim("d", None, attempt(match="same"))
    # Past the grace period (no match given): the message serves whichever asks.
    assert ledger.record_found("c", message("SM3", "c"), None) == FoundOutcome.RECORDED
    row = ledger.get("a")
    assert row is not None and row.state == KeyState.SENT and row.sid == "SM1"
    assert row.latest is not None and row.latest.found_in_log
    assert ledger.known_sids(A) == frozenset({"SM1", "SM2", "SM3"})
    assert ledger.known_sids(B) == frozenset()
    assert ledger.counts().messages == 3


def test_twilios_answer_wins_over_a_log_finding(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("a", None, attempt(match="x"))
    ledger.claim("b", None, attempt(match="y"))
    assert ledger.record_found("a", message("SM1", "a"), "x") == FoundOutcome.RECORDED
    ledger.record_sent("b", message("SM1", "b"))  # the create's own answer named SM1
    a, b = ledger.get("a"), ledger.get("b")
    assert b is not None and b.state == KeyState.SENT and b.sid == "SM1"
    assert a is not None and a.state == KeyState.UNKNOWN  # looked up again by the next run
    assert ledger.counts().messages == 1


def test_an_outcome_arriving_after_the_key_was_released_is_kept(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("k", None, attempt())
    ledger.release("k")  # another run took it for absent
    ledger.record_sent("k", message("SM9", "k"))  # and then Twilio's answer came
    row = ledger.get("k")
    assert row is not None and row.state == KeyState.SENT and row.sid == "SM9"


def test_touch_restarts_the_attempts_clock(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("k", None, attempt())
    ledger.record_unknown("k", "x", attempt_age=100.0)
    before = ledger.get("k")
    assert before is not None and before.attempt_age is not None and before.attempt_age >= 100
    ledger.touch("k")
    after = ledger.get("k")
    assert after is not None and after.attempt_age is not None and after.attempt_age < 100
    assert after.attempts == before.attempts + 1


def test_many_keys_read_at_once_are_read_as_each_alone(make_ledger: MakeLedger) -> None:
    ledger, other = make_ledger(), make_ledger()
    ledger.claim("sent", None, attempt())
    ledger.record_sent("sent", message("SM1", "sent"))
    ledger.claim("open", None, attempt(B))
    keys = ["sent", "open", "none", "sent"]
    many = other.get_many(keys)
    assert set(many) == {"sent", "open"}
    for key, row in many.items():
        alone = other.get(key)
        assert alone is not None
        assert replace(row, attempt_age=None) == replace(alone, attempt_age=None)
    assert many["open"].holder is not None and many["open"].holder.alive and not many["open"].holder.this_run
    assert other.get_many([]) == {}


def test_a_batch_is_one_transaction_seen_by_others_only_when_it_ends(make_ledger: MakeLedger) -> None:
    """Group commit: what a batch does is invisible to other runs until it commits."""
    ledger, other = make_ledger(), make_ledger()
    ledger.claim("sent", None, attempt())
    with ledger.batch():
        claimed = ledger.claim("k", None, attempt())
        assert claimed is not None and claimed.holder is not None and claimed.holder.this_run
        ledger.record_sent("sent", message("SM1", "sent"))
        # Seen inside (the same run reads its own writes), not outside yet.
        inside = ledger.get("k")
        assert inside is not None and inside.state == KeyState.SENDING
        assert other.get("k") is None
        before = other.get("sent")
        assert before is not None and before.state == KeyState.SENDING
    after = other.get("k")
    assert after is not None and after.state == KeyState.SENDING
    sent = other.get("sent")
    assert sent is not None and sent.state == KeyState.SENT and sent.sid == "SM1"


def test_in_a_batch_a_lost_race_or_a_lapsed_lease_fails_alone(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    short = make_ledger(settings=Settings(lease=0.2))
    ledger.claim("taken", None, attempt())
    time.sleep(0.5)  # short's lease lapses
    with ledger.batch():
        assert ledger.claim("taken", None, attempt()) is None  # already there: decide again
        assert ledger.claim("mine", None, attempt()) is not None
    with short.batch():
        with pytest.raises(LeaseLost):
            short.claim("lapsed", None, attempt())
        short.record_sent("never-claimed", message("SM2", "never-claimed"))
    assert ledger.get("mine") is not None
    assert ledger.get("lapsed") is None
    recorded = ledger.get("never-claimed")
    assert recorded is not None and recorded.state == KeyState.SENT and recorded.sid == "SM2"


def test_a_batch_that_fails_takes_nothing_with_it(make_ledger: MakeLedger) -> None:
    ledger, other = make_ledger(), make_ledger()
    with pytest.raises(RuntimeError), ledger.batch():
        ledger.claim("k", None, attempt())
        ledger.claim("j", None, attempt())
        raise RuntimeError("the caller gave up")
    assert other.get("k") is None and other.get("j") is None
    assert ledger.claim("k", None, attempt()) is not None  # and the ledger goes on


def test_turns_are_spaced_for_every_run_of_the_ledger(make_ledger: MakeLedger) -> None:
    """A shared --rate: a start is taken only once the interval has passed since the last
    start any run recorded under that name."""
    first, second = make_ledger(), make_ledger()
    assert first.take_turn("AC1/+15017122661", 0.5) == 0.0
    wait = second.take_turn("AC1/+15017122661", 0.5)
    assert 0.0 < wait <= 0.5
    assert first.take_turn("AC1/+15017122661", 0.5) > 0.0
    assert second.take_turn("AC1/+15005550006", 0.5) == 0.0  # another sender, its own turns
    time.sleep(wait + 0.05)
    assert second.take_turn("AC1/+15017122661", 0.5) == 0.0


def _history_of(ledger: Ledger) -> dict[str, StoredKey]:
    return {stored.key: stored for stored in ledger.history()}


def test_history_holds_every_key_with_its_messages_in_key_order(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("b-sent", None, attempt())
    ledger.record_sent("b-sent", message("SM1", "b-sent"))
    ledger.claim("a-failed", None, attempt(B))
    ledger.record_failed("a-failed", 21211, "invalid")
    ledger.claim("c-open", None, attempt(body="still in flight"))
    history = list(ledger.history())
    assert [stored.key for stored in history] == ["a-failed", "b-sent", "c-open"]
    failed, sent, open_ = history
    assert failed.state == KeyState.FAILED and failed.error_code == 21211 and failed.messages == ()
    assert sent.state == KeyState.SENT and sent.sid == "SM1" and [m.sid for m in sent.messages] == ["SM1"]
    assert sent.messages[0].run_id == ledger.run.run_id
    assert open_.state == KeyState.SENDING and open_.body == "still in flight"
    assert open_.owner == ledger.run.run_id and open_.attempted_at is not None


def test_merge_adds_what_is_missing_and_never_overwrites(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.claim("k", None, attempt())
    ledger.record_sent("k", message("SM1", "k"))
    [stored] = list(ledger.history())

    again = ledger.merge([stored])
    assert (again.added, again.present, again.conflicts) == (0, 1, [])

    elsewhere = replace(stored, recipient=B, sid="SM2", messages=(replace(stored.messages[0], sid="SM2"),))
    new_key = replace(
        stored, key="new", sid="SM3", messages=(replace(stored.messages[0], sid="SM3", key="new"),)
    )
    stolen = replace(stored, key="thief", sid="SM1", messages=(replace(stored.messages[0], key="thief"),))
    merged = ledger.merge([elsewhere, new_key, stolen])
    assert merged.added == 1 and merged.present == 0
    assert dict(merged.conflicts).keys() == {"k", "thief"}
    assert B in dict(merged.conflicts)["k"] and "SM1" in dict(merged.conflicts)["thief"]
    history = _history_of(ledger)
    assert history["k"].recipient == A and history["k"].sid == "SM1"  # left as it was
    assert "thief" not in history
    added = ledger.get("new")
    assert added is not None and added.state == KeyState.SENT and added.sid == "SM3"
    assert added.latest is not None and added.latest.sid == "SM3"


def test_a_merged_open_key_is_an_orphan_to_settle(make_ledger: MakeLedger) -> None:
    """A key another ledger's run left open was held by a run this ledger never saw."""
    source = make_ledger()
    source.claim("open", None, attempt())
    [stored] = [s for s in source.history() if s.key == "open"]
    target = make_ledger()
    gone = replace(stored, key="copied", owner="a-run-of-another-ledger")
    assert target.merge([gone]).added == 1
    orphans = {row.key: row for row in target.orphans()}
    assert "copied" in orphans and orphans["copied"].holder is not None
    assert not orphans["copied"].holder.alive


def test_a_run_killed_with_sigkill_leaves_keys_that_are_orphans_at_once(
    make_ledger: MakeLedger, ledger_target: str
) -> None:
    script = textwrap.dedent(f"""
        import time
        from smspipe.ledger import Attempt, open_ledger
        ledger = open_ledger({ledger_target!r})
        ledger.start_run()
        ledger.claim("k", None, Attempt("+14155552671", None, None, None, "hi", "b", "m", "x"))
        print("claimed", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "claimed"
    observer = make_ledger()
    row = observer.get("k")
    assert row is not None and row.holder is not None and row.holder.alive
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # Its lease has not lapsed, but its process is gone: dead at once.
    [orphan] = observer.orphans()
    assert orphan.key == "k"


def test_claims_race_across_processes_and_each_key_is_claimed_once(
    make_ledger: MakeLedger, ledger_target: str
) -> None:
    make_ledger()  # created first, as a run would
    keys = 120
    script = textwrap.dedent(f"""
        from smspipe.ledger import Attempt, Message, open_ledger
        won = 0
        ledger = open_ledger({ledger_target!r})
        ledger.start_run()
        for i in range({keys}):
            key = f"k{{i}}"
            row = ledger.get(key)
            claim = Attempt("+1415555", None, None, None, "b", "b", "m", "x")
            if row is None and ledger.claim(key, None, claim):
                won += 1
                ledger.record_sent(key, Message(f"SM{{i}}", key, "+1415555"))
        ledger.end_run()
        print(won)
    """)
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    won = [int(p.communicate(timeout=120)[0]) for p in processes]
    assert sum(won) == keys
    counts = make_ledger().counts()
    assert counts.by_state == {"sent": keys} and counts.messages == keys


def test_run_info_names_this_process() -> None:
    run = RunInfo.this_process()
    assert run.pid == os.getpid() and run.run_id


# --- after the 201: delivery status, the suppression list (issue 14) -------------------------


def sent_message(ledger: Ledger, key: str, sid: str, to: str = A, status: str | None = "queued") -> None:
    row = ledger.claim(key, None, attempt(to, body=f"text of {key}"))
    assert row is not None
    ledger.record_sent(key, Message(sid=sid, key=key, recipient=to, segments=1, status=status))


def test_a_created_message_starts_with_twilios_status_and_is_pending(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    sent_message(ledger, "k1", "SM1", status="accepted")
    [record] = ledger.sent(SentQuery())
    assert (record.sid, record.key, record.recipient, record.status) == ("SM1", "k1", A, "accepted")
    assert record.price is None and record.error_code is None
    assert [r.sid for r in ledger.sent(SentQuery(statuses=frozenset({"pending"})))] == ["SM1"]


def test_a_delivery_status_moves_forward_only(make_ledger: MakeLedger) -> None:
    ledger, other = make_ledger(), make_ledger()
    sent_message(ledger, "k1", "SM1")
    assert ledger.update_delivery("SM1", Delivery("sent", date_sent=1_700_000_000.0))
    assert not other.update_delivery("SM1", Delivery("queued"))  # a late answer
    assert other.update_delivery("SM1", Delivery("delivered", price="-0.0079", price_unit="USD"))
    assert not ledger.update_delivery("SM1", Delivery("sent"))  # sent after delivered
    assert not ledger.update_delivery("SM1", Delivery("undelivered", error_code=30003))  # final stays
    [record] = other.sent(SentQuery())
    assert (record.status, record.error_code, record.price, record.price_unit) == (
        "delivered",
        None,
        "-0.0079",
        "USD",
    )
    assert record.date_sent == 1_700_000_000.0 and record.checked_at is not None
    assert ledger.update_delivery("SM1", Delivery("read"))  # WhatsApp: read follows delivered
    assert not ledger.update_delivery("SM-none", Delivery("delivered"))  # no such message


def test_the_same_final_status_again_brings_the_price_it_lacked(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    sent_message(ledger, "k1", "SM1")
    assert ledger.update_delivery(
        "SM1", Delivery("undelivered", error_code=30003, error_message="Unreachable")
    )
    assert not ledger.update_delivery("SM1", Delivery("undelivered", price="-0.0079", price_unit="USD"))
    [record] = ledger.sent(SentQuery())
    assert (record.status, record.error_code, record.error_message) == ("undelivered", 30003, "Unreachable")
    assert record.price == "-0.0079"


def test_sent_filters_by_status_recipient_key_time_and_count(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    sent_message(ledger, "k1", "SM1", to=A)
    sent_message(ledger, "k2", "SM2", to=B)
    sent_message(ledger, "k3", "SM3", to=B)
    ledger.update_delivery("SM1", Delivery("delivered"))
    ledger.update_delivery("SM2", Delivery("failed", error_code=30006))

    def sids(**filters: object) -> list[str]:
        return [r.sid for r in ledger.sent(SentQuery(**filters))]  # type: ignore[arg-type]

    assert sids() == ["SM1", "SM2", "SM3"]
    assert sids(statuses=frozenset({"failed", "pending"})) == ["SM2", "SM3"]
    assert sids(statuses=frozenset({"delivered"})) == ["SM1"]
    assert sids(to=B) == ["SM2", "SM3"]
    assert sids(key="k2") == ["SM2"]
    assert sids(sid="SM3") == ["SM3"]
    assert sids(limit=2) == ["SM2", "SM3"]  # the newest, in order
    assert sids(since=time.time() + 3600) == []
    assert ledger.sent_since(B, time.time() - 3600) == 2
    assert ledger.sent_since(B, time.time() + 3600) == 0


def test_the_suppression_list_adds_each_number_once_and_removes_it(make_ledger: MakeLedger) -> None:
    ledger, other = make_ledger(), make_ledger()
    assert ledger.add_optouts([A, B, A], "twilio:21610") == 2
    assert other.add_optouts([A], "manual") == 0  # already there: its first source stays
    entry = other.opted_out(A)
    assert entry is not None and entry.source == "twilio:21610" and entry.added_at > 0
    assert [o.phone for o in other.optouts()] == sorted([A, B])
    assert ledger.remove_optouts([A, "+14155550199"]) == 1
    assert other.opted_out(A) is None
    assert [o.phone for o in other.optouts()] == [B]


def test_the_same_status_again_brings_the_error_code_it_lacked(make_ledger: MakeLedger) -> None:
    """A status known first without its code (Twilio's answer, a callback without
    ErrorCode, a copied ledger), then with it: the code is kept, the first one never
    replaced."""
    ledger = make_ledger()
    sent_message(ledger, "k1", "SM1")
    assert ledger.update_delivery("SM1", Delivery("undelivered"))
    assert not ledger.update_delivery(
        "SM1", Delivery("undelivered", error_code=30003, error_message="Unreachable")
    )
    assert not ledger.update_delivery(
        "SM1", Delivery("undelivered", error_code=30005, error_message="Unknown")
    )
    [record] = ledger.sent(SentQuery())
    assert (record.status, record.error_code, record.error_message) == ("undelivered", 30003, "Unreachable")
