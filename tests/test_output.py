"""Writing: NDJSON through CPython's C encoder gives the public encoder's bytes, and no
writer crashes on a string that cannot be encoded (a lone surrogate)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smspipe.cli import _json_fast, output

SURROGATES = st.sampled_from(["\ud800", "\udfff", "\udc80", "\ud83d", "a\ud800b"])
STRINGS = st.one_of(st.text(max_size=20), SURROGATES, st.sampled_from(["\u2028", "\x85", "é", "😀", '"\\']))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**80),
    st.floats(),  # NaN and the infinities too: the reference writes them, so must we
    STRINGS,
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(STRINGS, children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.differential
@pytest.mark.skipif(_json_fast.c_encode is None, reason="no C encoder on this Python")
@given(value=st.dictionaries(STRINGS, VALUES, max_size=6))
def test_the_c_encoder_built_once_writes_the_public_encoders_bytes(value: dict[str, Any]) -> None:
    assert _json_fast.encode_dict(value) == _json_fast.ENCODER.encode(value)


@pytest.mark.differential
@pytest.mark.skipif(_json_fast.c_encode is None, reason="no C encoder on this Python")
def test_the_c_encoder_fails_as_the_public_one_and_recovers() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    for bad, error in (({"x": object()}, TypeError), (circular, ValueError)):
        with pytest.raises(error):
            _json_fast.ENCODER.encode(bad)
        with pytest.raises(error):
            _json_fast.encode_dict(bad)
        assert _json_fast.encode_dict({"after": [1]}) == '{"after":[1]}'  # its markers were emptied
        with pytest.raises(error):
            output.dumps(bad)
        assert output.dumps({"after": [2]}) == '{"after":[2]}'


@given(value=VALUES)
def test_every_line_is_utf8_json_that_reads_back_as_it_was(value: Any) -> None:
    line = output.dumps(value)
    line.encode("utf-8")  # never raises: lone surrogates are escaped
    assert "\n" not in line and "\u2028" not in line and "\x85" not in line
    assert _same(json.loads(line), value)


def _same(one: Any, two: Any) -> bool:
    if isinstance(one, float) and isinstance(two, float) and math.isnan(one):
        return math.isnan(two)
    if isinstance(one, list):
        return isinstance(two, list) and len(one) == len(two) and all(map(_same, one, two))
    if isinstance(one, dict):
        return isinstance(two, dict) and one.keys() == two.keys() and all(_same(one[k], two[k]) for k in one)
    return bool(one == two)


def test_a_lone_surrogate_is_escaped_as_json_writes_it() -> None:
    assert output.dumps({"message": "a\ud800b"}) == '{"message":"a\\ud800b"}'
    assert output.dumps(["\udfff"]) == '["\\udfff"]'
    assert output.printable("x \ud800 y") == "x \\ud800 y"


WRITERS = """
import sys
from smspipe.cli import output
from smspipe.cli.app import guarded

with guarded():
    output.write_json_line({"message": "hi \\ud800"})
    output.write_json_pretty({"message": "\\udc80"})
    output.err("smspipe: warning: \\ud800 in a message")
    with output.ErrLines() as lines:
        lines.add("\\udfff batched")
    sys.stdout.flush()
    output.console().print("a table cell \\ud800")
    sys.stdout.write("a plain write \\ud800\\n")
"""


def test_no_writer_crashes_on_a_lone_surrogate_in_a_real_pipe() -> None:
    """stdout of a pipe is strict UTF-8: before, the first such string ended the command (exit 70)."""
    proc = subprocess.run(
        [sys.executable, "-c", WRITERS], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert json.loads(first) == {"message": "hi \ud800"}
    assert "\\udc80" in "\n".join(rest) and "a table cell \\ud800" in proc.stdout
    assert "a plain write \\ud800" in proc.stdout
    assert "\\ud800 in a message" in proc.stderr and "\\udfff batched" in proc.stderr
