"""phone.py's fast path (smspipe._phone_fast) decides exactly what phonenumbers' public API
decides (and what phone.py's own reference, used with SMSPIPE_REFERENCE=phone, decides)."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from smspipe import _phone_fast as fast
from smspipe import phone

pytestmark = pytest.mark.differential

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
]


def example_numbers() -> list[phonenumbers.PhoneNumber]:
    found = []
    for region in REGIONS:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append(number)
        invalid = phonenumbers.invalid_example_number(region)
        if invalid is not None:
            found.append(invalid)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.append(number)
    return found


EXAMPLES = example_numbers()
E164_EXAMPLES = [phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in EXAMPLES]


def parsed(text: str, region: str) -> Any:
    """phonenumbers.parse's answer: the number, or the kind of parse error."""
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return exc.error_type


def ours(text: str, region: str) -> Any:
    try:
        return fast.parse(text, region)
    except NumberParseException as exc:
        return exc.error_type


def reference_check(raw: str, region: str, allowed: frozenset[str] = frozenset()) -> Any:
    """check_number as it was written against the public API (before the quick paths)."""
    text = raw.strip()
    whatsapp = text.lower().startswith(phone.WHATSAPP_PREFIX)
    if whatsapp:
        text = text[len(phone.WHATSAPP_PREFIX) :].strip()
        if not text.startswith("+"):
            return phone.PhoneCheck(
                None,
                error=f"{raw!r}: a whatsapp: address takes an E.164 number (whatsapp:{phone.EXAMPLE_E164})",
            )
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return phone.PhoneCheck(
            None,
            error=f"{raw!r} {phone._describe_parse_error(exc)}; give it in E.164 form ({phone.EXAMPLE_E164})",
        )
    if not phonenumbers.is_valid_number(number):
        where = region if not text.startswith("+") else "its country code"
        return phone.PhoneCheck(
            None,
            error=f"{raw!r} is not a valid phone number for {where}; "
            f"give it in E.164 form ({phone.EXAMPLE_E164})",
        )
    found = phonenumbers.region_code_for_number(number)
    if phonenumbers.number_type(number) == PhoneNumberType.PREMIUM_RATE:
        return phone.PhoneCheck(
            None, found, f"{raw!r} is a premium-rate number; smspipe refuses them (SMS-pumping fraud)"
        )
    if allowed and found not in allowed:
        return phone.PhoneCheck(
            None,
            found,
            f"{raw!r} is in {found}, outside allowed_countries "
            f"({', '.join(sorted(allowed))}); add {found} to "
            "allowed_countries in the config to allow it",
        )
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return phone.PhoneCheck(phone.WHATSAPP_PREFIX + e164 if whatsapp else e164, found)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) > 1000


@pytest.mark.parametrize("region", ["US", "GB", "DE", "IT", "ZZ"])
def test_parse_of_every_example_number(region: str) -> None:
    split = 0
    for text in E164_EXAMPLES:
        assert ours(text, region) == parsed(text, region), text
        if fast.split_e164(text) is not None:
            split += 1
            assert phonenumbers.format_number(parsed(text, region), PhoneNumberFormat.E164) == text
    assert split > len(E164_EXAMPLES) * 0.9  # the shortcut is the common case


def expected_class(number: phonenumbers.PhoneNumber) -> tuple[str | None, str]:
    """What phonenumbers' public API says of the number's region and type."""
    kind = phonenumbers.number_type(number)
    valid = phonenumbers.is_valid_number(number)
    assert valid == (kind != PhoneNumberType.UNKNOWN)
    category = (
        fast.INVALID if not valid else fast.PREMIUM if kind == PhoneNumberType.PREMIUM_RATE else fast.VALID
    )
    return phonenumbers.region_code_for_number(number), category


def test_classify_every_example_number() -> None:
    categories = set()
    for number in EXAMPLES:
        expected = expected_class(number)
        assert fast.classify(number) == expected, number
        categories.add(expected[1])
    assert categories == {fast.INVALID, fast.PREMIUM, fast.VALID}


def test_check_number_of_every_example_number() -> None:
    allowed = frozenset({"US", "GB"})
    for number in EXAMPLES:
        region = phonenumbers.region_code_for_number(number) or "US"
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        # national form first: its E.164 form is then answered from what was learnt
        for raw, default in (
            (national, region),
            (e164, "US"),
            (e164, region),
            (f"whatsapp:{e164}", "DE"),
            (national, "US"),
        ):
            for allow in (frozenset(), allowed):
                assert phone.check_number(raw, default, allow) == reference_check(raw, default, allow), (
                    raw,
                    default,
                    allow,
                )


COUNTRY_CODES = st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)).map(str)
DIGITS = st.text(alphabet="0123456789", max_size=19)
E164_LIKE = st.one_of(
    st.builds(lambda cc, rest: f"+{cc}{rest}", COUNTRY_CODES, DIGITS),
    st.builds(lambda rest: f"+{rest}", DIGITS),
    st.builds(
        lambda cc, rest, tail: f"+{cc}{rest}{tail}",
        COUNTRY_CODES,
        DIGITS,
        st.sampled_from([" ", "x1", "#", "-", "٣", "\u00a0"]),
    ),
    st.sampled_from(E164_EXAMPLES).map(lambda e: e[:-1]),  # one digit short
    st.sampled_from(E164_EXAMPLES).map(lambda e: e + "1"),  # one digit long
    # real numbers with their last digits changed: mostly valid, of every type
    st.builds(
        lambda e, cut, tail: e[:-cut] + tail[:cut].rjust(cut, "5"),
        st.sampled_from(E164_EXAMPLES),
        st.integers(1, 6),
        DIGITS,
    ),
)


@settings(max_examples=2000, deadline=None)
@given(text=E164_LIKE, region=st.sampled_from(["US", "GB", "IT", "BR", "ZZ"]))
def test_parse_agrees_on_generated_numbers(text: str, region: str) -> None:
    expected = parsed(text, region)
    assert ours(text, region) == expected
    split = fast.split_e164(text)
    if split is not None:  # check_number's shortcut: the text is the number's E.164
        event("split")
        assert isinstance(expected, phonenumbers.PhoneNumber)
        assert split == (expected.country_code, phonenumbers.national_significant_number(expected))
        assert phonenumbers.format_number(expected, PhoneNumberFormat.E164) == text
    if isinstance(expected, phonenumbers.PhoneNumber):
        event(f"class: {expected_class(expected)[1]}")
        assert fast.classify(expected) == expected_class(expected)


@settings(max_examples=500, deadline=None)
@given(
    text=E164_LIKE,
    region=st.sampled_from(["US", "GB", "IT"]),
    allowed=st.sampled_from([frozenset(), frozenset({"US", "CA"}), frozenset({"GB"})]),
)
def test_check_number_agrees_on_generated_numbers(text: str, region: str, allowed: frozenset[str]) -> None:
    assert phone.check_number(text, region, allowed) == reference_check(text, region, allowed)


@settings(max_examples=500, deadline=None)
@given(text=E164_LIKE, region=st.sampled_from(["US", "GB", "IT", "DE"]))
def test_the_fast_path_locates_as_the_reference_does(text: str, region: str) -> None:
    """phone.py's two routes, the one SMSPIPE_REFERENCE=phone takes and the fast one."""
    try:
        reference = phone._locate_reference(text, region)
    except NumberParseException as exc:
        with pytest.raises(NumberParseException) as caught:
            fast.locate(text, region)
        assert caught.value.error_type == exc.error_type
        return
    e164, found, category, _ = fast.locate(text, region)
    assert (e164, category) == (reference[0], reference[2])
    if category != fast.INVALID:
        assert found == reference[1]
