"""Segment arithmetic at every boundary Twilio bills by."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smspipe.encoding import GSM7, GSM7_BASIC, GSM7_EXTENSION, UCS2, analyse


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4), (1530, 10), (1531, 11)],
)
def test_gsm7_segments_at_boundaries(length: int, segments: int) -> None:
    result = analyse("a" * length)
    assert (result.name, result.units, result.segments) == (GSM7, length, segments)


@pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
def test_extension_characters_count_two(char: str) -> None:
    assert analyse(char * 80).units == 160
    assert analyse(char * 80).segments == 1
    assert analyse(char * 81).segments == 2


def test_escape_pair_is_never_split_across_parts() -> None:
    # 152 plain septets then a euro: the pair cannot straddle parts 1 and 2,
    # so part 1 holds 152 septets and the euro starts part 2.
    body = "a" * 152 + "€" + "a" * 152
    result = analyse(body)
    assert result.units == 306
    assert result.segments == 3  # 306 septets would fit 2 parts if the pair could split


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)])
def test_ucs2_segments_at_boundaries(length: int, segments: int) -> None:
    result = analyse("ł" * length)
    assert (result.name, result.units, result.segments) == (UCS2, length, segments)
    assert result.non_gsm == ("ł",)


def test_emoji_counts_two_utf16_units() -> None:
    assert analyse("😀" * 35).units == 70
    assert analyse("😀" * 35).segments == 1
    assert analyse("😀" * 36).segments == 2


def test_surrogate_pair_is_never_split_across_parts() -> None:
    # 66 units then an emoji (2 units) would straddle the 67-unit part boundary.
    body = "ł" * 66 + "😀" + "ł" * 66
    result = analyse(body)
    assert result.units == 134
    assert result.segments == 3


def test_smart_quote_forces_ucs2_and_is_named() -> None:
    result = analyse("It’s here")
    assert result.name == UCS2
    assert result.non_gsm == ("’",)


def test_gsm_accented_letters_stay_gsm7() -> None:
    assert analyse("Café für Müller, ¿qué? ñ Ø å").name == GSM7


def test_empty_body_has_no_segment() -> None:
    assert analyse("").segments == 0


@given(st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)), max_size=2000))
def test_gsm7_units_and_segments_are_consistent(body: str) -> None:
    result = analyse(body)
    assert result.name == GSM7
    assert result.units == sum(2 if c in GSM7_EXTENSION else 1 for c in body)
    if result.units <= 160:
        assert result.segments == (1 if body else 0)
    else:
        assert result.units / 153 <= result.segments <= result.units / 152 + 1


@given(st.text(min_size=1, max_size=800))
def test_any_text_is_analysed(body: str) -> None:
    result = analyse(body)
    assert result.segments >= 1
    units = sum(2 if ord(c) > 0xFFFF else 1 for c in body)
    if result.name == UCS2:
        assert result.units == units
        assert result.non_gsm
