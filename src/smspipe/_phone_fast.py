"""phone.py's fast path: phonenumbers' answers, from its metadata compiled per region.

A new number costs a fraction of what ``parse`` does (README, Fast paths): plain E.164 (the common form, and
what translate writes) is split into country code and national number as
``phonenumbers.parse`` would split it (anything else still goes to parse), and
its region and type come from phonenumbers' metadata compiled into three
patterns a region, once rather than the three times ``is_valid_number``,
``region_code_for_number`` and ``number_type`` would.

This mirrors private parts of phonenumbers (``_number_type_helper``,
``_region_code_for_number_from_list``, ``_is_number_matching_desc``, how
``parse`` reads a country code and strips a national prefix), so it is tied to
the versions pyproject.toml allows. tests/test_phone_fast.py compares every
answer with phonenumbers' public API (``pytest -m differential``);
``SMSPIPE_REFERENCE=phone`` turns it off (:mod:`smspipe._fastpaths`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumber

# Keep every compiled metadata pattern instead of asking re's bounded cache each time.
phonenumbers.enable_pattern_cache()

_PLAIN_E164 = re.compile(r"\+([1-9][0-9]{2,19})")
_COUNTRY_CODES = {str(code): code for code in COUNTRY_CODE_TO_REGION_CODE}
#: country code -> its national-prefix rule, compiled (None: it has none)
_prefix_rules: dict[int, re.Pattern[str] | None] = {}


def split_e164(text: str) -> tuple[int, str] | None:
    """(country code, national number) of plain E.164 text, exactly as parse reads it.

    For ``+`` and ASCII digits only, with a known country code and a national
    number parse leaves alone (no leading zero, nothing its national-prefix
    rule could strip), ``phonenumbers.parse`` gives just that country code and
    national number. None for anything else: parse decides.
    """
    match = _PLAIN_E164.fullmatch(text)
    if match is None:
        return None
    digits = match.group(1)
    for size in (1, 2, 3):  # as parse reads a country code: the shortest known one
        country_code = _COUNTRY_CODES.get(digits[:size])
        if country_code is not None:
            national = digits[size:]
            if not 2 <= len(national) <= 17 or national[0] == "0":
                return None
            if country_code not in _prefix_rules:
                _prefix_rules[country_code] = _prefix_rule(country_code)
            rule = _prefix_rules[country_code]
            if rule is not None and rule.match(national) is not None:
                return None
            return country_code, national
    return None


def _prefix_rule(country_code: int) -> re.Pattern[str] | None:
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, phonenumbers.region_code_for_country_code(country_code)
    )
    if metadata is None:
        return re.compile("")  # matches everything: leave it to parse
    prefix = metadata.national_prefix_for_parsing
    return re.compile(prefix) if prefix else None


def parse(text: str, region: str) -> PhoneNumber:
    """``phonenumbers.parse(text, region)``, without its cost for plain E.164."""
    split = split_e164(text)
    if split is not None:
        return PhoneNumber(country_code=split[0], national_number=int(split[1]))
    return phonenumbers.parse(text, region)


# What check_number needs of a number's type: invalid, premium-rate, or valid otherwise.
INVALID, PREMIUM, VALID = "invalid", "premium", "valid"


def classify(number: PhoneNumber) -> tuple[str | None, str]:
    """The number's region and whether it is INVALID, PREMIUM or VALID.

    Answers as ``region_code_for_number(n)`` and ``number_type(n)`` do
    (UNKNOWN is INVALID: ``is_valid_number`` is ``number_type != UNKNOWN``).
    """
    return classify_national(number.country_code or 0, phonenumbers.national_significant_number(number))


def classify_national(country_code: int, national: str) -> tuple[str | None, str]:
    """:func:`classify` of the number with this country code and national significant number.

    From phonenumbers' metadata, with each region's type patterns compiled
    into three regular expressions: phonenumbers tries up to eleven patterns
    one Python call at a time, and does so three times over (region,
    validity, type).
    """
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return None, INVALID
    if len(regions) == 1:
        types = _types(country_code, regions[0])
        return regions[0], types.category(national) if types is not None else INVALID
    # A shared country code (+1, +44): the first region whose leading digits
    # match, or else whose patterns take the number (phonenumbers'
    # _region_code_for_number_from_list).
    for leading, candidates in _shared_plan(country_code):
        if leading is None:  # one region without leading digits: its patterns decide
            region = candidates[0]
            types = _types(country_code, region)
            category = types.category(national) if types is not None else INVALID
            if category != INVALID:
                return region, category
            continue
        match = leading.match(national)
        if match is not None:
            name = match.lastgroup  # r<i>: every alternative is a named group
            region = candidates[int(name[1:])] if name else candidates[0]
            types = _types(country_code, region)
            return region, types.category(national) if types is not None else INVALID
    return None, INVALID


#: shared country code -> its regions in phonenumbers' order, as steps: a region
#: without leading digits alone (pattern None), or a run of regions with leading
#: digits as one pattern, whose named group r<i> says which of them matched.
_shared_plans: dict[int, list[tuple[re.Pattern[str] | None, tuple[str, ...]]]] = {}


def _shared_plan(country_code: int) -> list[tuple[re.Pattern[str] | None, tuple[str, ...]]]:
    plan = _shared_plans.get(country_code)
    if plan is not None:
        return plan
    plan = []
    run: list[tuple[str, str]] = []
    for region in COUNTRY_CODE_TO_REGION_CODE[country_code]:
        leading = _leading_digits(country_code, region)
        if leading is _NO_REGION:
            continue
        if leading is not None:
            run.append((region, leading.pattern))
            continue
        if run:
            plan.append(_alternatives(run))
            run = []
        plan.append((None, (region,)))
    if run:
        plan.append(_alternatives(run))
    _shared_plans[country_code] = plan
    return plan


def _alternatives(run: list[tuple[str, str]]) -> tuple[re.Pattern[str], tuple[str, ...]]:
    # Alternatives are tried left to right, as the regions were one by one.
    pattern = "|".join(f"(?P<r{i}>{leading})" for i, (_, leading) in enumerate(run))
    return re.compile(pattern), tuple(region for region, _ in run)


@dataclass(frozen=True, slots=True)
class _RegionTypes:
    """One region's number types as phonenumbers' _number_type_helper tests them."""

    general: re.Pattern[str] | None
    premium: re.Pattern[str] | None
    #: every other type (mobile, fixed line, toll-free...): valid, not premium
    other: re.Pattern[str] | None

    def category(self, national: str) -> str:
        if self.general is None or self.general.fullmatch(national) is None:
            return INVALID
        if self.premium is not None and self.premium.fullmatch(national) is not None:
            return PREMIUM
        if self.other is not None and self.other.fullmatch(national) is not None:
            return VALID
        return INVALID


# Compiled on first use, region by region: a region's patterns take a few ms to compile.
_region_types: dict[tuple[int, str], _RegionTypes | None] = {}
_region_leading: dict[tuple[int, str], re.Pattern[str] | None] = {}
_NO_REGION = re.compile("")  # stands for "no metadata for this region"
# Mobile and fixed line first: the types numbers mostly are (any match will do).
_OTHER_TYPES = (
    "mobile",
    "fixed_line",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


def _metadata(country_code: int, region: str) -> Any:
    return PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())


def _leading_digits(country_code: int, region: str) -> re.Pattern[str] | None:
    key = (country_code, region)
    if key not in _region_leading:
        metadata = _metadata(country_code, region)
        _region_leading[key] = (
            _NO_REGION
            if metadata is None
            else None
            if metadata.leading_digits is None
            else re.compile(metadata.leading_digits)
        )
    return _region_leading[key]


def _types(country_code: int, region: str) -> _RegionTypes | None:
    key = (country_code, region)
    if key not in _region_types:
        metadata = _metadata(country_code, region)
        _region_types[key] = None if metadata is None else _compile_types(metadata)
    return _region_types[key]


def _compile_types(metadata: Any) -> _RegionTypes:
    names = [n for n in _OTHER_TYPES if n != "mobile" or not metadata.same_mobile_and_fixed_line_pattern]
    others = [p for p in (_desc_pattern(getattr(metadata, n)) for n in names) if p is not None]
    general = _desc_pattern(metadata.general_desc)
    premium = _desc_pattern(metadata.premium_rate)
    return _RegionTypes(
        general=re.compile(general) if general is not None else None,
        premium=re.compile(premium) if premium is not None else None,
        other=re.compile("|".join(others)) if others else None,
    )


def _desc_pattern(desc: Any) -> str | None:
    """A pattern whose fullmatch is phonenumbers' _is_number_matching_desc(n, desc).

    That is: the number has one of the desc's possible lengths (any length when
    it lists none) and fully matches its national number pattern. None when
    nothing can match.
    """
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = desc.possible_length or ()
    if lengths:
        usable = sorted({n for n in lengths if n >= 0})
        if not usable:
            return None  # [-1]: the region has no numbers of this type
        gate = "(?=(?:" + "|".join(f"[0-9]{{{n}}}" for n in usable) + r")\Z)"
    else:
        gate = ""
    return f"(?:{gate}(?:{desc.national_number_pattern}))"


#: (E.164 form or None when INVALID, region, category, whether checking the E.164
#: form reads the same number, so that the answer may be reused for it). A plain
#: tuple: one is built per new number.
Located = tuple[str | None, str | None, str, bool]


def locate(text: str, default_region: str) -> Located:
    """``phonenumbers.parse`` (NumberParseException), then region and category, quickly."""
    split = split_e164(text)
    if split is not None:  # plain E.164: parse would give exactly this
        country_code, national = split
        region, category = classify_national(country_code, national)
        # E.164 of a plain E.164 text is that text (the country code and national
        # number are its digits, neither with a leading zero).
        return (None if category == INVALID else text), region, category, True
    number = phonenumbers.parse(text, default_region)
    country_code = number.country_code or 0  # parse always sets it
    national = phonenumbers.national_significant_number(number)
    region, category = classify_national(country_code, national)
    if category == INVALID:
        return None, region, category, False
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, region, category, split_e164(e164) == (country_code, national)
