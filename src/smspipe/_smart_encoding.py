"""How Twilio's message log may show a body other than the one sent, and the comparison that allows for it.

Two rewrites are known:

- a trial account prefixes every body with ``Sent from your Twilio trial account - ``;
- Smart Encoding (on by default for Messaging Services) replaces characters
  that would force UCS-2 with GSM-7 look-alikes.

Source of the table: Twilio, "List of characters replaced by Smart Encoding",
https://www.twilio.com/docs/messaging/services/smart-encoding-char-list (also
reproduced by Twilio's own segment calculator, github.com/TwilioDevEd/
message-segment-calculator, src/libs/SmartEncodingMap.ts, which lists the
whitespace and invisible characters the page does not show). Where that
calculator disagrees with the characters' meaning (‹ › map to > <), both
readings are accepted.
"""

from __future__ import annotations

TRIAL_PREFIX = "Sent from your Twilio trial account - "

# replacement -> the characters Twilio replaces with it
_BY_REPLACEMENT: dict[str, str] = {
    '"': "\u00ab\u00bb\u201c\u201d\u02ba\u02ee\u201f\u275d\u275e\u301d\u301e\uff02\u201e",
    "'": (
        "\u2018\u2019\u02bb\u02c8\u02bc\u02bd\u02b9\u201b\uff07\u00b4\u02ca\u0060\u02cb"
        "\u275b\u275c\u0313\u0314\ufe10\ufe11\u2017"
    ),
    "/": "\u00f7\u29f8\u0337\u0338\u2044\u2215\uff0f",
    "1/4": "\u00bc",
    "1/2": "\u00bd",
    "3/4": "\u00be",
    "\\": "\u29f9\u29f5\u20e5\ufe68\uff3c",
    "_": "\u0332\uff3f",
    "|": "\u20d2\u20d3\u2223\uff5c\u23b8\u23b9\u23d0\u239c\u239f",
    "-": "\u23bc\u23bd\u2015\ufe63\uff0d\u2010\u2043\u2014\u2013\u2022",
    "@": "\ufe6b\uff20",
    "$": "\ufe69\uff04",
    "!": "\u01c3\ufe15\ufe57\uff01",
    "!!": "\u203c",
    "#": "\ufe5f\uff03",
    "%": "\ufe6a\uff05",
    "&": "\ufe60\uff06",
    ",": "\u201a\u0326\ufe50\ufe51\uff0c\uff64\u3001",
    "(": "\u2768\u276a\ufe59\uff08\u27ee\u2985",
    ")": "\u2769\u276b\ufe5a\uff09\u27ef\u2986",
    "*": (
        "\u204e\u2217\u229b\u2722\u2723\u2724\u2725\u2731\u2732\u2733\u273a\u273b"
        "\u273c\u273d\u2743\u2749\u274a\u274b\u29c6\ufe61\uff0a"
    ),
    "+": "\u02d6\ufe62\uff0b",
    ".": "\u3002\ufe52\uff0e\uff61",
    "...": "\u2026",
    ":": "\u02d0\u02f8\u2982\ua789\ufe13\uff1a",
    ";": "\u204f\ufe14\ufe54\uff1b",
    "<": "\ufe64\uff1c\u2039\u203a",
    "=": "\u0347\ua78a\ufe66\uff1d",
    ">": "\ufe65\uff1e\u2039\u203a",
    "?": "\ufe16\ufe56\uff1f",
    "^": "\u02c6\u0302\uff3e\u1dcd",
    "{": "\u2774\ufe5b\uff5b",
    "}": "\u2775\ufe5c\uff5d",
    "[": "\uff3b",
    "]": "\uff3d",
    "~": "\u02dc\u02f7\u0303\u0330\u0334\u223c\uff5e",
    " ": (
        "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
        "\u202f\u205f\u3000\u2028\u2029"
    ),
    "": "\u200b\u2060\ufeff",
}
# Fullwidth digits and capitals, and small capitals.
_BY_REPLACEMENT.update({str(d): chr(0xFF10 + d) for d in range(10)})
_SMALL_CAPITALS = dict(
    zip(
        "ABCDEFGHIJKLMNOPRSTUVWYZ",
        "\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d"
        "\u0274\u1d0f\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22",
        strict=True,
    )
)
for _letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _BY_REPLACEMENT[_letter] = chr(0xFF21 + ord(_letter) - ord("A")) + _SMALL_CAPITALS.get(_letter, "")


def _table() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for replacement, characters in _BY_REPLACEMENT.items():
        for character in characters:
            table[character] = (*table.get(character, ()), replacement)
    return table


#: character -> what Smart Encoding may put in its place (the first is the usual one)
REPLACEMENTS: dict[str, tuple[str, ...]] = _table()


def smart_encode(body: str) -> str:
    """*body* with every character Smart Encoding replaces replaced (its usual replacement)."""
    return "".join(REPLACEMENTS[c][0] if c in REPLACEMENTS else c for c in body)


def same_message(sent: str, logged: str) -> bool:
    """True when Twilio's log shows *logged* for a message sent as *sent*.

    *logged* is *sent* itself, or *sent* with characters replaced as Smart
    Encoding replaces them, either with the trial-account prefix or without.
    Nothing looser: another text, even one differing only in case or
    spacing, is another message.
    """
    if logged == sent:
        return True
    if logged.startswith(TRIAL_PREFIX) and _encodes_to(sent, logged[len(TRIAL_PREFIX) :]):
        return True
    return _encodes_to(sent, logged)


def _encodes_to(sent: str, logged: str) -> bool:
    """Whether replacing some of *sent*'s characters by their replacements gives *logged*.

    One pass, no backtracking: a replaceable character never appears in a
    replacement, so at each position it either is there unchanged or one of
    its replacements is (they differ in their first character), or its
    replacement is empty.
    """
    position = 0
    end = len(logged)
    for character in sent:
        if position < end and logged[position] == character:
            position += 1
            continue
        choices = REPLACEMENTS.get(character)
        if choices is None:
            return False
        for replacement in choices:
            if logged.startswith(replacement, position):
                position += len(replacement)
                break
        else:
            return False
    return position == end
