"""Phone numbers and sender IDs: parsing, E.164 normalisation, fraud policy.

Parsing is cached: exports repeat the same customers' numbers, and
``phonenumbers.parse`` is the most expensive step of validating a document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

WHATSAPP_PREFIX = "whatsapp:"
SHORT_CODE = re.compile(r"\d{5,6}")
# Twilio's alphanumeric sender IDs: letters, digits and spaces (plus a few
# signs), 1 to 11 characters, at least one letter.
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 +\-_&.]{1,11}")
EXAMPLE_E164 = "+14155552671"


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    """The outcome of checking one number: E.164 form, or why it was refused."""

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


@lru_cache(maxsize=65536)
def check_number(raw: str, default_region: str, allowed: frozenset[str] = frozenset()) -> PhoneCheck:
    """Parse *raw* (national form for *default_region*, or E.164) into E.164.

    Refuses invalid numbers, premium-rate numbers (SMS-pumping fraud) and, when
    *allowed* is not empty, numbers of countries outside it.
    """
    text = raw.strip()
    whatsapp = text.lower().startswith(WHATSAPP_PREFIX)
    if whatsapp:
        text = text[len(WHATSAPP_PREFIX):].strip()
        if not text.startswith("+"):
            return PhoneCheck(None, error=f"{raw!r}: a whatsapp: address takes an E.164 number "
                                          f"(whatsapp:{EXAMPLE_E164})")
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        return PhoneCheck(None, error=f"{raw!r} {_describe_parse_error(exc)}; "
                                      f"give it in E.164 form ({EXAMPLE_E164})")
    if not phonenumbers.is_valid_number(number):
        where = default_region if not text.startswith("+") else "its country code"
        return PhoneCheck(None, error=f"{raw!r} is not a valid phone number for {where}; "
                                      f"give it in E.164 form ({EXAMPLE_E164})")
    region = phonenumbers.region_code_for_number(number)
    if phonenumbers.number_type(number) == PhoneNumberType.PREMIUM_RATE:
        return PhoneCheck(None, region, f"{raw!r} is a premium-rate number; "
                                        "smspipe refuses them (SMS-pumping fraud)")
    if allowed and region not in allowed:
        return PhoneCheck(None, region, f"{raw!r} is in {region}, outside allowed_countries "
                                        f"({', '.join(sorted(allowed))}); add {region} to "
                                        "allowed_countries in the config to allow it")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return PhoneCheck(WHATSAPP_PREFIX + e164 if whatsapp else e164, region)


def check_sender(raw: str, default_region: str) -> PhoneCheck:
    """Check a ``from``: E.164, short code, alphanumeric sender ID or whatsapp: address."""
    text = raw.strip()
    if SHORT_CODE.fullmatch(text) or ALPHANUMERIC_SENDER.fullmatch(text):
        return PhoneCheck(text)
    if text.lower().startswith(WHATSAPP_PREFIX) or text.startswith("+") or any(
        c.isdigit() for c in text
    ):
        result = check_number(text, default_region)
        if result.e164 is None:
            return PhoneCheck(None, error=(result.error or "").replace(
                "phone number", "sender number"))
        return result
    return PhoneCheck(None, error=f"{raw!r} is not a valid sender: use an E.164 number "
                                  f"({EXAMPLE_E164}), a 5-6 digit short code, an alphanumeric "
                                  "sender ID (1-11 characters, at least one letter) or a "
                                  "whatsapp: address")


def is_region(code: str) -> bool:
    """True for a two-letter region phonenumbers knows (US, GB, DE…)."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS
