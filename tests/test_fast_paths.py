"""Shortcuts taken for speed give exactly what the straightforward code gave.

The small ones are compared here with the code as first written; the four fast
paths with a switch back (smspipe._fastpaths) are compared end to end: every
command's output with SMSPIPE_REFERENCE=all is the output without it.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from types import MappingProxyType
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import StrictUndefined, tests

from conftest import ROOT, run_process
from smspipe import _fastpaths, encoding
from smspipe.cli import output
from smspipe.encoding import GSM7, GSM7_ALL, GSM7_EXTENSION, UCS2, Encoding
from smspipe.translate import _CLEAN, _is_mapping, _is_number, clean_text

# Text made of the characters that matter: GSM-7 basic and extension, Latin-1
# and other BMP letters, emoji (surrogate pairs), controls and line separators.
pytestmark = pytest.mark.differential

CHARS = st.one_of(
    st.sampled_from(sorted(GSM7_ALL)),
    st.sampled_from(sorted(GSM7_EXTENSION)),
    st.sampled_from(
        [
            "é",
            "ë",
            "Ł",
            "’",
            "中",
            "😀",
            "🇺",
            "\u200b",
            "\u2028",
            "\u2029",
            "\x85",
            "\x07",
            "\x00",
            "\x7f",
            "\r",
            "\t",
            "\x1b",
            " ",
            "\u00a0",
        ]
    ),
    st.characters(),
)
TEXTS = st.one_of(
    st.lists(CHARS, max_size=200).map("".join),
    # long GSM-7 and UCS-2 texts around the segment boundaries
    st.builds(
        lambda n, c, tail: "a" * n + c + tail,
        st.integers(60, 460),
        st.sampled_from(["", "€", "é", "😀", "{"]),
        st.lists(CHARS, max_size=5).map("".join),
    ),
)


def reference_analyse(body: str) -> Encoding:
    """encoding.analyse as first written: a Python step per character."""
    if GSM7_ALL.issuperset(body):
        extension = sum(body.count(c) for c in GSM7_EXTENSION)
        septets = len(body) + extension
        if septets <= encoding.GSM7_SINGLE:
            return Encoding(GSM7, septets, 1 if septets else 0)
        sizes = [2 if c in GSM7_EXTENSION else 1 for c in body]
        return Encoding(GSM7, septets, encoding._pack(sizes, encoding.GSM7_PART))
    non_gsm = tuple(dict.fromkeys(c for c in body if c not in GSM7_ALL))
    sizes = [2 if ord(c) > 0xFFFF else 1 for c in body]
    units = sum(sizes)
    if units <= encoding.UCS2_SINGLE:
        return Encoding(UCS2, units, 1, non_gsm)
    return Encoding(UCS2, units, encoding._pack(sizes, encoding.UCS2_PART), non_gsm)


@settings(max_examples=1000)
@given(body=TEXTS)
def test_analyse_agrees_with_the_character_by_character_count(body: str) -> None:
    assert encoding.analyse(body) == reference_analyse(body)


def reference_clean(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_CLEAN).strip()


@settings(max_examples=1000)
@given(text=TEXTS)
def test_clean_text_agrees_with_translate_always(text: str) -> None:
    assert clean_text(text) == reference_clean(text)


JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXTS
    ),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(TEXTS, children, max_size=3)),
    max_leaves=10,
)


@given(value=JSON)
def test_ndjson_line_is_what_json_dumps_wrote(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}.items():
        text = text.replace(char, escaped)
    # A lone surrogate cannot be written to a UTF-8 stream: escaped as ensure_ascii would.
    text = "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)
    assert output.dumps(value) == text


def test_every_built_in_text_compiles() -> None:
    """They are compiled when first used, not up front: make sure each one would be."""
    from smspipe.translate import BUILTIN, Options, Translator

    for kind, texts in BUILTIN.items():
        translator = Translator(Options(kind=kind))
        for name in texts:
            assert translator._built_in(name).origin == f"built-in {kind}.{name}"


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.fractions(),
    st.complex_numbers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3).map(MappingProxyType),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3).map(OrderedDict),
)


@given(value=VALUES)
def test_template_tests_mapping_and_number_answer_as_jinja2s(value: Any) -> None:
    """The translator's own `is mapping` and `is number`, quicker for JSON values."""
    assert _is_mapping(value) == tests.test_mapping(value)
    assert _is_number(value) == tests.test_number(value)


def test_template_tests_of_a_missing_field_answer_as_jinja2s() -> None:
    missing = StrictUndefined(name="x")  # unhashable, so not drawn by hypothesis
    assert _is_mapping(missing) is tests.test_mapping(missing) is False
    assert _is_number(missing) is tests.test_number(missing) is False


# --- the switch back to the reference implementations -------------------------------------


def test_the_switch_names_each_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_fastpaths.SWITCH, raising=False)
    assert not any(_fastpaths.use_reference(name) for name in _fastpaths.FAST_PATHS)
    monkeypatch.setenv(_fastpaths.SWITCH, "all")
    assert all(_fastpaths.use_reference(name) for name in _fastpaths.FAST_PATHS)
    monkeypatch.setenv(_fastpaths.SWITCH, " Phone, json")
    assert [n for n in _fastpaths.FAST_PATHS if _fastpaths.use_reference(n)] == ["phone", "json"]


def corpus(path: Path) -> Path:
    """SMS documents whose numbers are phonenumbers' examples of every type in every
    region (valid, premium, invalid), national and E.164, and texts of every kind."""
    lines: list[dict[str, Any]] = []
    texts = ["Order shipped", "Zoë’s order 😀", "a\u2028b", "x" * 200, "€" * 80, ""]
    for index, region in enumerate(sorted(phonenumbers.SUPPORTED_REGIONS)):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.PREMIUM_RATE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for form in (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.NATIONAL):
                phone = phonenumbers.format_number(number, form)
                lines.append({"id": f"{region}-{len(lines)}", "phone": phone, "message": texts[index % 6]})
        invalid = phonenumbers.invalid_example_number(region)
        if invalid is not None:
            lines.append({"phone": phonenumbers.format_number(invalid, 0), "message": "hi", "from": "Shop"})
    lines.append({"phone": "+14155552671", "message": "hi", "media_url": ["ftp://x"], "extra": 1})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


COMMANDS = [
    ("validate", "--json", "{corpus}"),
    ("validate", "--pass", "{corpus}"),
    ("validate", "--region", "GB", "--json", "{corpus}"),
    ("send", "--dry-run", "--json", "--no-ledger", "{corpus}"),
    ("translate", "order", str(ROOT / "samples" / "orders.ndjson")),
    ("schema", "sms"),
    ("--help",),
    ("config", "--help"),
    *((command, "--help") for command in ("validate", "translate", "send", "schema", "config", "status")),
    ("optout", "--help"),
    ("valdate",),
    ("config", "chek"),
    (),
]


def test_every_command_answers_the_same_with_the_reference_implementations(
    bare_env: dict[str, str], tmp_path: Path
) -> None:
    data = str(corpus(tmp_path / "corpus.ndjson"))
    env = {**bare_env, "COLUMNS": "120", "SMSPIPE_FROM": "+15017122661"}
    env.pop(_fastpaths.SWITCH, None)
    for command in COMMANDS:
        args = [arg.replace("{corpus}", data) for arg in command]
        fast = run_process(*args, env=env)
        reference = run_process(*args, env={**env, _fastpaths.SWITCH: "all"})
        assert (reference.exit_code, reference.stdout, reference.stderr) == (
            fast.exit_code,
            fast.stdout,
            fast.stderr,
        ), args
        assert "Traceback" not in fast.stderr
    assert os.path.getsize(data) > 10_000
