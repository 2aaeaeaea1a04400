"""Whom a hub object's text goes to: the phone of its shipping or billing address.

The address tried first is a run's choice (``--address``); a number in
national form is read in its address's ``country`` (else the default region),
checked as validate checks it (premium rate, allowed countries) and written in
E.164. A :class:`Recipients` keeps a small cache of countries, safe to share
between threads (a lost race only computes an entry twice).
"""

from __future__ import annotations

import re
from typing import Any

from smspipe import phone
from smspipe.templates import first_name

ADDRESSES = ("shipping", "billing")
PHONE_HINT = (
    "put a valid number in shipping_address.phone or billing_address.phone "
    f"(E.164 such as {phone.EXAMPLE_E164}, or national form for the address's country)"
)
_E164_HINT = re.compile(r"; give it in E\.164 form \(\+\d+\)$")


class Recipients:
    """Finds the recipient of an object, by the address order of a run."""

    def __init__(self, first: str, region: str, allowed: frozenset[str]) -> None:
        self.address_order = (f"{first}_address", *(f"{a}_address" for a in ADDRESSES if a != first))
        self.region = region
        self.allowed = allowed
        self._regions: dict[Any, tuple[str, str]] = {}

    def resolve(self, obj: dict[str, Any]) -> tuple[str, dict[str, Any]] | str:
        """The E.164 phone of the first address that has a usable one (and that
        address), or why there is none."""
        reasons = []
        for name in self.address_order:
            address = obj.get(name)
            if not isinstance(address, dict):
                reasons.append(f"no {name}")
                continue
            e164, reason = self._phone_of(name, address)
            if e164 is None:
                reasons.append(reason)
                continue
            return e164, address
        return f"no usable phone: {'; '.join(reasons)}; {PHONE_HINT}"

    def _phone_of(self, name: str, address: dict[str, Any]) -> tuple[str | None, str]:
        """The address's number in E.164, or why not."""
        raw = address.get("phone")
        if not isinstance(raw, str) or not raw.strip():
            return None, f"{name} has no phone"
        if raw.lstrip().startswith("+"):
            # The region does not matter for E.164; using the run's region makes
            # sms.check's own lookup of the same number a cache hit, not a parse.
            region, note = self.region, ""
        else:
            region, note = self._region(address.get("country"))
        result = phone.check_number(raw, region, self.allowed)
        if result.e164 is not None:
            return result.e164, ""
        error = _E164_HINT.sub("", result.error or "is not a valid phone number")
        return None, f"{name}.phone {error}{note}"

    def _region(self, country: Any) -> tuple[str, str]:
        """The region a national-form number is read in, and a note when defaulted."""
        try:
            return self._regions[country]
        except (KeyError, TypeError):
            pass
        if isinstance(country, str) and country.strip() and phone.is_region(country.strip()):
            found = (country.strip().upper(), "")
        elif isinstance(country, str) and country.strip():
            found = (
                self.region,
                f" (country {country[:40]!r} is not a two-letter ISO code; read as {self.region})",
            )
        else:
            found = (self.region, "")
        if isinstance(country, str | None) and len(self._regions) < 1000:
            self._regions[country] = found
        return found

    def name(self, obj: dict[str, Any], chosen: dict[str, Any]) -> str:
        """The recipient's first name: the chosen address's, the object's, another address's."""
        return first_name(chosen) or first_name(obj) or self.other_name(obj, chosen)

    def other_name(self, obj: dict[str, Any], chosen: dict[str, Any]) -> str:
        """The first name of an address other than the chosen one."""
        for key in self.address_order:
            address = obj.get(key)
            if isinstance(address, dict) and address is not chosen:
                found = first_name(address)
                if found:
                    return found
        return ""
