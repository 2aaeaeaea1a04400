"""GSM-7 / UCS-2 detection and segment counting, as Twilio bills a message.

GSM-7 (3GPP TS 23.038): 160 septets in a single segment; a concatenated message
carries 153 septets per part. Characters of the extension table are sent as an
escape plus the character, so they count two, and an escape pair is never split
across parts. Anything outside GSM-7 makes the whole message UCS-2, counted in
UTF-16 code units (an emoji is a surrogate pair, two units): 70 in one segment,
67 per part, and a surrogate pair is never split across parts.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The escape character itself is not a character a message can carry.
GSM7_BASIC = GSM7_BASIC - {"\x1b"}
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

# Anything but the basic set, as a pattern: one scan in C instead of a Python
# step per character.
_NOT_BASIC = re.compile("[^" + "".join(sorted(re.escape(c) for c in GSM7_BASIC)) + "]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")  # two UTF-16 units each

GSM7 = "GSM-7"
UCS2 = "UCS-2"

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67


class Encoding(NamedTuple):
    """How a message body is encoded and billed (one per message: a NamedTuple is
    immutable and quicker to build than a frozen dataclass)."""

    name: str  # GSM7 or UCS2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    # The characters that forced UCS-2, in order of first appearance.
    non_gsm: tuple[str, ...] = ()


def _pack(unit_sizes: list[int], per_part: int) -> int:
    """Count the parts needed when no character may straddle two parts."""
    parts, used = 1, 0
    for size in unit_sizes:
        if used + size > per_part:
            parts += 1
            used = 0
        used += size
    return parts


def analyse(body: str) -> Encoding:
    """Return the encoding, length in billing units and segment count of *body*."""
    # One scan for what is not a plain GSM-7 character: most messages have none.
    specials = _NOT_BASIC.findall(body)
    if not specials:
        septets = len(body)
        if septets <= GSM7_SINGLE:
            return Encoding(GSM7, septets, 1 if septets else 0)
        return Encoding(GSM7, septets, -(-septets // GSM7_PART))
    non_gsm = [c for c in specials if c not in GSM7_EXTENSION]
    if not non_gsm:  # extension characters only: each is an escape pair
        septets = len(body) + len(specials)
        if septets <= GSM7_SINGLE:
            return Encoding(GSM7, septets, 1)
        sizes = [2 if c in GSM7_EXTENSION else 1 for c in body]
        return Encoding(GSM7, septets, _pack(sizes, GSM7_PART))

    units = len(body) + len(_ASTRAL.findall(body))
    first_seen = tuple(dict.fromkeys(non_gsm))
    if units <= UCS2_SINGLE:
        return Encoding(UCS2, units, 1, first_seen)
    if units == len(body):
        return Encoding(UCS2, units, -(-units // UCS2_PART), first_seen)
    sizes = [2 if ord(c) > 0xFFFF else 1 for c in body]
    return Encoding(UCS2, units, _pack(sizes, UCS2_PART), first_seen)


@lru_cache(maxsize=1024)  # the same few characters come up again and again
def describe_chars(chars: tuple[str, ...], limit: int = 5) -> str:
    """Name characters for a warning: ’ (U+2019), 😀 (U+1F600)."""
    shown = [
        f"{c!r} (U+{ord(c):04X})" if not c.isprintable() else f"{c} (U+{ord(c):04X})" for c in chars[:limit]
    ]
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(shown) + more
