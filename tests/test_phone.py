"""Phone numbers and sender IDs."""

from __future__ import annotations

import pytest

from smspipe.phone import check_number, check_sender


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("+14155552671", "GB", "+14155552671"),
        ("07911 123456", "GB", "+447911123456"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("whatsapp:+14155552671", "US", "whatsapp:+14155552671"),
    ],
)
def test_valid_numbers_are_normalised_to_e164(raw: str, region: str, e164: str) -> None:
    assert check_number(raw, region).e164 == e164


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("555-555-5555", "not a valid phone number"),
        ("0000000000", "not a valid phone number"),
        ("hello", "not a phone number"),
        ("whatsapp:4155552671", "E.164"),
        ("+1 900 555 0123", "premium-rate"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(raw: str, fragment: str) -> None:
    result = check_number(raw, "US")
    assert result.e164 is None
    assert result.error is not None and fragment in result.error


def test_allow_list_refuses_other_countries() -> None:
    result = check_number("+447911123456", "US", frozenset({"US", "CA"}))
    assert result.e164 is None
    assert result.error is not None and "allowed_countries" in result.error
    assert check_number("+14155552671", "US", frozenset({"US"})).e164 == "+14155552671"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("+15017122661", "+15017122661"),
        ("12345", "12345"),
        ("123456", "123456"),
        ("ACME", "ACME"),
        ("Shop 24", "Shop 24"),
        ("whatsapp:+14155552671", "whatsapp:+14155552671"),
        ("(415) 555-2671", "+14155552671"),
    ],
)
def test_valid_senders(raw: str, normalised: str) -> None:
    assert check_sender(raw, "US").e164 == normalised


@pytest.mark.parametrize("raw", ["444-444-4444", "1234", "ABCDEFGHIJKL", "!!!", "1234567"])
def test_invalid_senders(raw: str) -> None:
    result = check_sender(raw, "US")
    assert result.e164 is None and result.error
