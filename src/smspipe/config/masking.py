"""Secrets in a config file's text, found before YAML reads it.

A token line can break YAML (a value starting with ``*``, ``&``, ``!``, ``%``,
``@``, a backtick, an unclosed quote…), and then nothing parsed says which
value was the secret. So the text is searched line by line first: every value
written under a secret's name (``auth_token``, ``api_secret``, and the names
people use for them) is registered with :func:`smspipe.errors.register_secret`,
in every form a parser or a message could quote it, and every message is
redacted from then on, whatever broke and wherever it is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from smspipe.config.keys import KEYS, SECRET_KEYS
from smspipe.config.wording import ALIASES
from smspipe.errors import register_secret

#: key names whose values are secrets: the keys, their aliases, their document parameters
SECRET_NAMES = frozenset(
    {
        *SECRET_KEYS,
        *(alias for alias, key in ALIASES.items() if key in SECRET_KEYS),
        *(KEYS[name].parameter or name for name in SECRET_KEYS),
        "secret",
        "password",
    }
)

# Patterns, compiled (and cached by re) when a file is first read, not at start-up.
_KEY_LINE = (
    r"""^(?P<indent>[ \t]*)(?:-[ \t]+)?[{,]?[ \t]*["']?"""  # indent, a list item, a flow mapping
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_-]*)["']?[ \t]*:(?:[ \t]+|$)(?P<value>.*)$"""
)
_BLOCK_INDICATOR = r"^[|>][-+0-9]*[ \t]*(?:#.*)?$"
# Characters YAML gives a meaning at the start or end of a value (anchor, alias,
# tag, directive, reserved, flow, quotes): a message may quote the value without them.
_INDICATORS = "*&!%@`'\"[]{},|>?:#- \t"
#: parts of a value at least this long are registered on their own (a tag and a
#: token: ``!x tok3n…``); shorter words would mask ordinary words in messages
_PART_LENGTH = 12


def register_secrets_in(text: str) -> None:
    """Register every secret value written in *text* (a config file), parsed or not."""
    for value in secret_values(text):
        register_secret(value)


def secret_values(text: str) -> Iterator[str]:
    """The values written under a secret's name in *text*, in the forms a message could show."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(_KEY_LINE, line)
        if match is None or match["name"].lower().replace("-", "_") not in SECRET_NAMES:
            continue
        value = match["value"].strip()
        if not value or re.match(_BLOCK_INDICATOR, value):
            # the value is on the lines below (a block scalar, a plain scalar continued)
            value = _continuation(lines, index, len(match["indent"]))
        yield from _forms(value)


def _continuation(lines: list[str], index: int, indent: int) -> str:
    parts = []
    for line in lines[index + 1 :]:
        stripped = line.strip()
        if stripped and len(line) - len(line.lstrip()) <= indent:
            break
        if stripped:
            parts.append(stripped)
    return " ".join(parts)


def _forms(value: str) -> Iterator[str]:
    forms = {value, value.split(" #", 1)[0].strip()}
    for form in list(forms):
        bare = form.strip(_INDICATORS)
        forms.add(bare)
        forms.update(part.strip(_INDICATORS) for part in form.split() if len(part) >= _PART_LENGTH)
    yield from (form for form in forms if form)
