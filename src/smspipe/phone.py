"""Phone numbers and sender IDs: parsing, E.164 normalisation, fraud policy.

Checks are cached: exports repeat the same customers' numbers, and checking a
number is the most expensive step of validating a document. Where a number
belongs and what kind it is comes from a fast path (:mod:`smspipe._phone_fast`,
phonenumbers' metadata compiled per region) that answers exactly as
phonenumbers' public API does (:func:`_locate_reference`);
``SMSPIPE_REFERENCE=phone`` uses the public API instead.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from smspipe import _phone_fast as _fast
from smspipe._fastpaths import use_reference
from smspipe._phone_fast import Located

WHATSAPP_PREFIX = "whatsapp:"
SHORT_CODE = re.compile(r"\d{5,6}")
# Twilio's alphanumeric sender IDs: letters, digits and spaces (plus a few
# signs), 1 to 11 characters, at least one letter.
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 +\-_&.]{1,11}")
EXAMPLE_E164 = "+14155552671"


class PhoneCheck(NamedTuple):
    """The outcome of checking one number: E.164 form, or why it was refused.

    Immutable (the checks are cached and shared), and a NamedTuple: one is
    built per new number, twice as fast as a frozen dataclass.
    """

    e164: str | None
    region: str | None = None
    error: str | None = None


def _describe_parse_error(exc: NumberParseException) -> str:
    reasons = {
        NumberParseException.INVALID_COUNTRY_CODE: "has no valid country code",
        NumberParseException.NOT_A_NUMBER: "is not a phone number",
        NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
        NumberParseException.TOO_SHORT_NSN: "is too short",
        NumberParseException.TOO_LONG: "is too long",
    }
    return reasons.get(exc.error_type, "is not a phone number")


# --- where a number belongs and what kind it is ----------------------------------------

INVALID, PREMIUM, VALID = _fast.INVALID, _fast.PREMIUM, _fast.VALID


def _locate_reference(text: str, default_region: str) -> Located:
    """What phonenumbers' public API says: parse, is_valid_number, region_code_for_number,
    number_type. The fast path (:func:`smspipe._phone_fast.locate`) answers the same."""
    number = phonenumbers.parse(text, default_region)
    region = phonenumbers.region_code_for_number(number)
    if not phonenumbers.is_valid_number(number):
        return None, region, INVALID, False
    premium = phonenumbers.number_type(number) == PhoneNumberType.PREMIUM_RATE
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, region, PREMIUM if premium else VALID, False


_locate = _locate_reference if use_reference("phone") else _fast.locate


# --- the checks ------------------------------------------------------------------------

#: (E.164, allowed) -> check, for numbers first seen in another form: checking
#: the E.164 form translate then writes gives the same answer; no need to redo it.
_seen_e164: dict[tuple[str, frozenset[str]], PhoneCheck] = {}


@lru_cache(maxsize=65536)
def check_number(raw: str, default_region: str, allowed: frozenset[str] = frozenset()) -> PhoneCheck:
    """Parse *raw* (national form for *default_region*, or E.164) into E.164.

    Refuses invalid numbers, premium-rate numbers (SMS-pumping fraud) and, when
    *allowed* is not empty, numbers of countries outside it.
    """
    known = _seen_e164.get((raw, allowed))
    if known is not None:
        return known
    text = raw.strip()
    whatsapp = text.lower().startswith(WHATSAPP_PREFIX)
    if whatsapp:
        text = text[len(WHATSAPP_PREFIX) :].strip()
        if not text.startswith("+"):
            return PhoneCheck(
                None, error=f"{raw!r}: a whatsapp: address takes an E.164 number (whatsapp:{EXAMPLE_E164})"
            )
    try:
        e164, region, category, reusable = _locate(text, default_region)
    except NumberParseException as exc:
        return PhoneCheck(
            None, error=f"{raw!r} {_describe_parse_error(exc)}; give it in E.164 form ({EXAMPLE_E164})"
        )
    refused = _refusal(raw, text, default_region, e164, region, category, allowed)
    if refused is not None:
        return refused
    assert e164 is not None
    if whatsapp:
        return PhoneCheck(WHATSAPP_PREFIX + e164, region)
    result = PhoneCheck(e164, region)
    if e164 != raw and reusable:
        # Checking the E.164 form reads the same number: remember the answer.
        if len(_seen_e164) >= 65536:
            _seen_e164.clear()
        _seen_e164[(e164, allowed)] = result
    return result


def _refusal(
    raw: str,
    text: str,
    default_region: str,
    e164: str | None,
    region: str | None,
    category: object,
    allowed: frozenset[str],
) -> PhoneCheck | None:
    """Why a parsed number is refused (invalid, premium-rate, another country), or None."""
    if category == INVALID or e164 is None:
        where = default_region if not text.startswith("+") else "its country code"
        return PhoneCheck(
            None,
            error=f"{raw!r} is not a valid phone number for {where}; give it in E.164 form ({EXAMPLE_E164})",
        )
    if category == PREMIUM:
        return PhoneCheck(
            None, region, f"{raw!r} is a premium-rate number; smspipe refuses them (SMS-pumping fraud)"
        )
    if allowed and region not in allowed:
        return PhoneCheck(
            None,
            region,
            f"{raw!r} is in {region}, outside allowed_countries "
            f"({', '.join(sorted(allowed))}); add {region} to "
            "allowed_countries in the config to allow it",
        )
    return None


def check_sender(raw: str, default_region: str) -> PhoneCheck:
    """Check a ``from``: E.164, short code, alphanumeric sender ID or whatsapp: address."""
    text = raw.strip()
    if SHORT_CODE.fullmatch(text) or ALPHANUMERIC_SENDER.fullmatch(text):
        return PhoneCheck(text)
    if text.lower().startswith(WHATSAPP_PREFIX) or text.startswith("+") or any(c.isdigit() for c in text):
        result = check_number(text, default_region)
        if result.e164 is None:
            return PhoneCheck(None, error=(result.error or "").replace("phone number", "sender number"))
        return result
    return PhoneCheck(
        None,
        error=f"{raw!r} is not a valid sender: use an E.164 number "
        f"({EXAMPLE_E164}), a 5-6 digit short code, an alphanumeric "
        "sender ID (1-11 characters, at least one letter) or a "
        "whatsapp: address",
    )


def is_region(code: str) -> bool:
    """True for a two-letter region phonenumbers knows (US, GB, DE…)."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS
