"""The pure parts of delivery: the decision per key, settling after a lookup, the retry
policy, the pacing of starts. No server, no ledger file: the functions themselves."""

from __future__ import annotations

import asyncio
import itertools
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from smspipe.delivery.pacing import Pacer
from smspipe.delivery.policy import Next, RetryPolicy, lookup_waits
from smspipe.delivery.states import TEXT_DIFFERED, Action, Facts, Settlement, decide, settle
from smspipe.gateway import AmbiguousFault, AuthRefused, EndpointMisconfigured, Rejected, TemporaryFault
from smspipe.ledger import Holder, KeyRow, KeyState, Message

A, B = "+14155550101", "+14155550102"
THIS, OTHER = "this-run", "other-run"
FACTS = Facts(A, "body", "media")


def row(
    state: KeyState,
    *,
    to: str = A,
    holder: Holder | None = None,
    latest: Message | None = None,
    sid: str | None = None,
    body: str = "body",
) -> KeyRow:
    return KeyRow(
        key="k",
        state=state,
        recipient=to,
        sender=None,
        messaging_service_sid=None,
        account_sid=None,
        body=None,
        body_sha256=body,
        media_sha256="media",
        sid=sid,
        segments=1,
        error_code=None,
        error_message="why",
        holder=holder,
        attempts=1,
        attempt_age=1.0,
        version=7,
        latest=latest,
    )


def sent(to: str = A, *, run: str = OTHER, body: str = "body") -> KeyRow:
    message = Message("SM1", "k", to, segments=1, body_sha256=body, media_sha256="media", run_id=run)
    return row(KeyState.SENT, to=to, latest=message, sid="SM1", body=body)


def test_a_new_key_is_sent() -> None:
    assert decide(None, FACTS, force=False, run_id=THIS).action == Action.SEND


def test_sent_to_the_same_recipient_is_skipped_with_its_sid() -> None:
    decision = decide(sent(), FACTS, force=False, run_id=THIS)
    assert decision.action == Action.SKIP and decision.sid == "SM1" and decision.note is None


def test_another_text_is_skipped_with_a_note() -> None:
    decision = decide(sent(body="old"), FACTS, force=False, run_id=THIS)
    assert decision.action == Action.SKIP and decision.note == TEXT_DIFFERED


def test_another_recipient_is_a_conflict_naming_both_and_the_earlier_sid() -> None:
    decision = decide(sent(B), FACTS, force=False, run_id=THIS)
    assert decision.action == Action.CONFLICT
    assert decision.earlier is not None and decision.earlier.to == B and decision.earlier.sid == "SM1"


def test_force_sends_what_an_earlier_run_sent_but_never_twice_in_one_run() -> None:
    assert decide(sent(B), FACTS, force=True, run_id=THIS).action == Action.SEND
    assert decide(sent(), FACTS, force=True, run_id=THIS).action == Action.SEND
    assert decide(sent(run=THIS), FACTS, force=True, run_id=THIS).action == Action.SKIP


def test_a_key_that_only_failed_binds_nothing() -> None:
    assert decide(row(KeyState.FAILED, to=B), FACTS, force=False, run_id=THIS).action == Action.SEND


def test_a_failed_key_with_an_earlier_message_stays_bound() -> None:
    earlier = Message("SM1", "k", B, run_id=OTHER)
    assert decide(row(KeyState.FAILED, latest=earlier), FACTS, force=False, run_id=THIS).action == (
        Action.CONFLICT
    )


def test_open_keys_wait_for_a_live_holder_are_unsettled_for_this_run_and_reconciled_when_dead() -> None:
    live = Holder(OTHER, this_run=False, alive=True, description="pid 7 on cron")
    mine = Holder(THIS, this_run=True, alive=True, description="this run")
    dead = Holder(OTHER, this_run=False, alive=False, description="pid 7 on cron")
    for state in (KeyState.SENDING, KeyState.UNKNOWN):
        waiting = decide(row(state, holder=live), FACTS, force=True, run_id=THIS)
        assert waiting.action == Action.WAIT and "pid 7 on cron" in (waiting.note or "")
        assert decide(row(state, holder=mine), FACTS, force=True, run_id=THIS).action == Action.UNSETTLED
        assert decide(row(state, holder=dead), FACTS, force=False, run_id=THIS).action == Action.RECONCILE
        assert decide(row(state), FACTS, force=False, run_id=THIS).action == Action.RECONCILE


def test_a_key_possibly_sent_to_another_recipient_is_a_conflict_unless_its_run_is_gone() -> None:
    live = Holder(OTHER, this_run=False, alive=True, description="pid 7 on cron")
    mine = Holder(THIS, this_run=True, alive=True, description="this run")
    dead = Holder(OTHER, this_run=False, alive=False, description="pid 7 on cron")
    for holder in (live, mine):
        decision = decide(row(KeyState.UNKNOWN, to=B, holder=holder), FACTS, force=False, run_id=THIS)
        assert decision.action == Action.CONFLICT
        assert decision.earlier is not None and decision.earlier.to == B and decision.earlier.sid is None
        assert "may already have been sent" in (decision.note or "")
    gone = decide(row(KeyState.SENDING, to=B, holder=dead), FACTS, force=False, run_id=THIS)
    assert gone.action == Action.RECONCILE  # it may turn out that nothing was created


@given(
    found=st.booleans(),
    answered=st.booleans(),
    age=st.one_of(st.none(), st.floats(0, 1000)),
    grace=st.floats(0, 1000),
)
def test_absence_is_concluded_only_from_an_answer_past_the_grace_period(
    found: bool, answered: bool, age: float | None, grace: float
) -> None:
    outcome = settle(found=found, log_answered=answered, attempt_age=age, grace=grace)
    if found:
        assert outcome == Settlement.FOUND
    elif outcome == Settlement.ABSENT:
        assert answered and (age is None or age >= grace)
    else:
        assert not answered or (age is not None and age < grace)


# --- the retry policy ------------------------------------------------------------------------


@given(
    attempt=st.integers(1, 30),
    max_wait=st.floats(0, 120),
    retry_after=st.one_of(st.none(), st.floats(0, 200)),
)
def test_backoff_is_full_jitter_bounded_by_max_wait_and_honours_retry_after(
    attempt: int, max_wait: float, retry_after: float | None
) -> None:
    policy = RetryPolicy(retries=5, max_wait=max_wait, backoff=0.5)
    delay = policy.delay(attempt, retry_after, random.Random(attempt))
    if retry_after is not None and retry_after > max_wait:
        assert delay is None
        return
    assert delay is not None
    assert 0 <= delay <= max(min(max_wait, 0.5 * 2 ** (attempt - 1)), retry_after or 0)
    if retry_after is not None:
        assert delay >= retry_after


def test_what_a_fault_means_decides_what_comes_next() -> None:
    policy = RetryPolicy(retries=2, max_wait=10)
    rng = random.Random(0)
    assert policy.after(Rejected("bad number", status=400), 1, rng).next == Next.FAIL
    assert policy.after(AuthRefused("no", status=401), 1, rng).next == Next.HALT
    assert policy.after(EndpointMisconfigured("301"), 1, rng).next == Next.HALT
    assert policy.after(AmbiguousFault("dropped"), 1, rng).next == Next.LOOK_UP
    assert policy.after(TemporaryFault("500", status=500, may_have_created=True), 1, rng).next == Next.LOOK_UP
    assert policy.after(TemporaryFault("503", status=503), 1, rng).next == Next.RETRY
    assert policy.after(TemporaryFault("503", status=503), 3, rng).next == Next.GIVE_UP
    assert policy.after(TemporaryFault("429", status=429, retry_after=60), 1, rng).next == Next.GIVE_UP


def test_lookups_are_few_and_bounded() -> None:
    waits = lookup_waits(300)
    assert len(waits) == 3 and sum(waits) < 10
    assert lookup_waits(0.4)[0] <= 0.1


# --- pacing -----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@settings(max_examples=200, deadline=None)
@given(
    rate=st.one_of(st.integers(1, 50).map(float), st.floats(0.2, 40)),
    lateness=st.lists(st.floats(0, 0.5), min_size=1, max_size=80),
)
def test_starts_are_paced_from_the_previous_actual_start(rate: float, lateness: list[float]) -> None:
    """However late a start comes (a loaded machine), the next one waits a full interval."""
    clock = Clock()
    pacer = Pacer(rate, clock=clock, sleep=clock.sleep)
    starts: list[float] = []

    async def run() -> None:
        for late in lateness:
            async with pacer.turn() as turn:
                clock.now += late  # the claim, a busy machine
                await turn.ready()
                starts.append(clock.now)

    asyncio.run(run())
    for earlier, later in itertools.pairwise(starts):
        assert later - earlier >= 1 / rate
    for i, start in enumerate(starts):
        assert len([s for s in starts[i:] if s < start + 1.0]) <= math.ceil(rate)


def test_retry_after_holds_every_start_even_without_a_rate() -> None:
    clock = Clock()
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    pacer.hold(2.5)

    async def start() -> float:
        async with pacer.turn() as turn:
            await turn.ready()
        return clock.now

    assert asyncio.run(start()) == 1002.5
