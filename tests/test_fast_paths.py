"""Shortcuts taken for speed give exactly what the straightforward code gave."""

from __future__ import annotations

import json
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import StrictUndefined, tests

from smspipe import encoding
from smspipe.cli import output
from smspipe.encoding import GSM7, GSM7_ALL, GSM7_EXTENSION, UCS2, Encoding
from smspipe.translate import _CLEAN, _is_mapping, _is_number, clean_text

# Text made of the characters that matter: GSM-7 basic and extension, Latin-1
# and other BMP letters, emoji (surrogate pairs), controls and line separators.
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
