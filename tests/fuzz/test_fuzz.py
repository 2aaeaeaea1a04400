"""Fuzzing the reader, the validator and the translator (issue 11, Proof).

- Every input in tests/fuzz/corpus (each crasher found, with why) is replayed.
- Hypothesis drives the reader over arbitrary bytes, the validator over
  arbitrary JSON values and the translator over arbitrary objects and hostile
  templates: nothing raises but a usage error, nothing comes out that cannot
  be encoded.
- Mutated inputs (tests/fuzz/hostile.py) run through validate, translate and
  send --dry-run for SMSPIPE_FUZZ_SECONDS seconds (CI sets it; the suite runs
  a few hundred): exit 0, 1 or 2, no traceback, no hang, no good document
  lost. A failing input is written to tests/fuzz/corpus/new/ to be checked in.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import hostile
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smspipe import sms
from smspipe.documents import Document, Problem, read_values
from smspipe.errors import UsageError
from smspipe.translate import Options, Translator

pytestmark = pytest.mark.usefixtures("bare_env")

CORPUS = Path(__file__).resolve().parent / "corpus"
# Read at import: the bare_env fixture takes SMSPIPE_* out of the environment.
FUZZ_SECONDS = float(os.environ.get("SMSPIPE_FUZZ_SECONDS", "0") or 0)
FUZZ_SEED = os.environ.get("SMSPIPE_FUZZ_SEED", "smspipe")
ENTRIES = sorted(path.stem for path in CORPUS.glob("*.json"))


def encodable(value: Any) -> bool:
    json.dumps(value, ensure_ascii=False).encode("utf-8")
    return True


@pytest.mark.parametrize("name", ENTRIES)
def test_corpus_replays_cleanly(name: str) -> None:
    entry = json.loads((CORPUS / f"{name}.json").read_text())
    case = hostile.Case(
        hostile.kind_of(entry["args"]), (CORPUS / f"{name}.bin").read_bytes(), entry["good"], "corpus"
    )
    result = hostile.run(case, args=entry["args"])
    assert result.ok, (entry["why"], result)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600) | st.lists(st.sampled_from(hostile.TOKENS), max_size=40).map(b"".join))
def test_the_reader_never_raises_and_lets_nothing_unencodable_through(data: bytes) -> None:
    last_line = 0
    for item in read_values(["-"], stdin=io.BytesIO(data)):
        assert isinstance(item, Document | Problem)
        assert item.line >= 1
        last_line = max(last_line, item.line)
        if isinstance(item, Document):
            assert isinstance(item.value, dict)
            assert encodable(item.value)
        else:
            assert item.message.encode("utf-8")
    assert last_line <= data.count(b"\n") + 1


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "sms",
                    "phone",
                    "message",
                    "from",
                    "media_url",
                    "status_callback",
                    "request_id",
                    "parameters",
                    "id",
                    "x",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    value=st.dictionaries(st.text(max_size=8), JSON, max_size=6) | JSON.filter(lambda v: isinstance(v, dict))
)
def test_the_validator_never_raises_and_reports_what_can_be_written(value: dict[str, Any]) -> None:
    for verdict in sms.check(Document("-", 1, None, value), sms.Policy()):
        assert encodable(verdict.report())
        if verdict.valid:
            assert encodable(verdict.normalised())


TEMPLATE_PIECES = st.sampled_from(hostile.TEMPLATE_PIECES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(TEMPLATE_PIECES, min_size=1, max_size=4), order=JSON)
def test_the_translator_never_raises_but_a_usage_error(pieces: list[str], order: Any) -> None:
    template = "".join(pieces)
    try:
        translator = Translator(Options(kind="order", template=(template, "-t")))
        outcomes = list(translator.run([Document("-", 1, None, {"order": {**hostile.ORDER, "x": order}})]))
    except UsageError:
        return  # the template refused (syntax, sandbox, over budget without data): exit 2
    [outcome] = outcomes
    assert encodable(outcome.request) and outcome.error_line().encode("utf-8")


def test_mutated_inputs_for_a_while() -> None:
    rng = random.Random(FUZZ_SEED)
    deadline = time.monotonic() + FUZZ_SECONDS
    ran = 0
    while ran < 300 or time.monotonic() < deadline:
        command = ("validate", "translate", "send")[ran % 3]
        case = hostile.make_case(rng, command)
        result = hostile.run(case)
        if not result.ok:
            saved = hostile.save(case, CORPUS / "new", result)
            pytest.fail(f"{command} {case.layout} {case.mutations}: {result} (input saved to {saved})")
        ran += 1


# Objects as pairs (a key may come twice), written with any whitespace JSON
# allows and strings holding what the key count looks for.
SPACE = st.sampled_from(["", "", " ", "\t", "\n", "\r\n", "  "])
STRINGS = st.sampled_from(['"a"', '"x\\":"', '"\\" :"', '"\\"\\t:"', '":"', '"b\\\\"', '"\\u0022:"', '" :)"'])


def _written(pairs: Any) -> Any:
    if isinstance(pairs, list):
        return st.builds(
            lambda spaces, values: (
                "{"
                + ",".join(
                    f'{s1}"{k}"{s2}:{s3}{v}'
                    for (k, _), (s1, s2, s3), v in zip(pairs, spaces, values, strict=True)
                )
                + "}"
            ),
            st.lists(st.tuples(SPACE, SPACE, SPACE), min_size=len(pairs), max_size=len(pairs)),
            st.tuples(*(_written(v) for _, v in pairs)) if pairs else st.just(()),
        )
    return STRINGS if pairs == "s" else st.just(str(pairs))


PAIRS = st.recursive(
    st.sampled_from(["s", 1, "null"]),
    lambda inner: st.lists(st.tuples(st.sampled_from(["a", "b", "c", 'a\\"', "\\u0061"]), inner), max_size=4),
    max_leaves=8,
).filter(lambda p: isinstance(p, list))


@settings(max_examples=500, deadline=None)
@given(data=st.data(), pairs=PAIRS)
def test_the_key_count_finds_every_duplicate_the_pairs_do(data: Any, pairs: Any) -> None:
    """may_repeat_a_key (a count) never misses a key given twice, however written."""
    from smspipe.documents import _first_duplicate, _pairs_decoder, parse_json

    text = data.draw(_written(pairs))
    duplicated = _first_duplicate(_pairs_decoder.decode(text)) is not None
    try:
        parse_json(text)
    except ValueError as exc:
        assert duplicated and "duplicate key" in str(exc)
    else:
        assert not duplicated
