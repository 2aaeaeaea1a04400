"""What is wrong with a config value, in words, without repeating the value.

A value may be a secret pasted into the wrong key (a token in ``from:``), so
no message repeats a string, a list or a mapping; a short number is shown (it
cannot be a secret), and a key name only when it looks like one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from smspipe.config.keys import KEYS, SENDER, URL, config_validator

#: (path to the value in the file, message, hint)
ConfigProblem = tuple[list[str | int], str, str]

# Names people reach for that difflib does not find (hub parameter names, synonyms).
ALIASES = {
    "sender": "from",
    "from_number": "from",
    "phone_number": "from",
    "region": "default_region",
    "token": "auth_token",
    "twilio_account_sid": "account_sid",
    "twilio_auth_token": "auth_token",
    "twilio_api_key": "api_key",
    "twilio_api_secret": "api_secret",
    "messaging_service": "messaging_service_sid",
    "base_url": "api_url",
    "url": "api_url",
}


def suggest(name: str, known: list[str]) -> str | None:
    """The known key closest to a misspelt *name*, if any is close."""
    alias = ALIASES.get(name.lower().replace("-", "_"))
    if alias in known:
        return alias
    import difflib  # only when something is misspelt

    close = difflib.get_close_matches(name.lower().replace("-", "_"), known, n=1, cutoff=0.6)
    return close[0] if close else None


def problems_in(data: Mapping[Any, Any]) -> list[ConfigProblem]:
    """Every problem of a config mapping, unknown keys and ill-typed values alike."""
    problems: list[ConfigProblem] = []
    for name in data:
        if name not in KEYS:
            close = suggest(str(name), list(KEYS))
            hint = f"did you mean {close!r}?" if close else f"known keys: {', '.join(KEYS)}"
            problems.append(([name], f"unknown key {shown_name(name)}", hint))
    known = {name: value for name, value in data.items() if name in KEYS}
    validator = config_validator()
    if validator.is_valid(known):
        return problems
    seen: set[tuple[str | int, ...]] = set()
    for error in validator.iter_errors(known):
        key_path = list(error.absolute_path)
        if tuple(key_path) in seen:
            continue  # one problem per value: the first (an empty string is not also ill-formed)
        seen.add(tuple(key_path))
        secret = bool(key_path) and KEYS[str(key_path[0])].secret
        message, hint = describe(error, secret=secret)
        problems.append((key_path, f"{dotted(key_path)}: {message}", hint))
    return problems


def check_value(name: str, value: Any) -> str | None:
    """Why *value* is not valid for key *name*, or None; never repeats the value."""
    problems = problems_in({name: value})
    if not problems:
        return None
    _, message, hint = problems[0]
    return f"{message}: {hint}" if hint else message


def looks_like_a_name(name: Any) -> bool:
    """A key name we may repeat in a message; a long or digit-heavy one may be a pasted secret."""
    text = str(name)
    return (
        len(text) <= 24
        and sum(c.isdigit() for c in text) <= 3
        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text) is not None
    )


def shown_name(name: Any) -> str:
    return repr(str(name)) if looks_like_a_name(name) else "(not repeated: it may be a secret)"


def dotted(path: list[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = str(part) if looks_like_a_name(part) else "…"
            text += f".{shown}" if text else shown
    return text or "(top level)"


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _shown_value(value: Any, *, secret: bool) -> str:
    """ ", got 500" for a short number or a boolean; nothing for anything that could be a secret."""
    if secret or isinstance(value, str | dict | list) or value is None:
        return ""
    if isinstance(value, bool) or (isinstance(value, int | float) and len(repr(value)) <= 6):
        return f", got {value!r}"
    return ""


_SEE_EXAMPLE = "see `smspipe config example`"


def describe(error: Any, *, secret: bool) -> tuple[str, str]:
    """A message and a hint for one jsonschema error, without the offending value."""
    kind, expected, value = error.validator, error.validator_value, error.instance
    shown = _shown_value(value, secret=secret)
    if kind == "type":
        return _describe_type(expected, value)
    if kind == "pattern":
        return f"is not {_pattern_words(expected)}", _SEE_EXAMPLE
    if kind == "minLength":
        return (
            "must not be empty" if expected == 1 else f"must be at least {expected} characters"
        ), "give it a value or remove the line"
    if kind == "enum":
        return f"must be one of: {', '.join(str(v) for v in expected)}{shown}", _SEE_EXAMPLE
    if kind in _BOUNDS:
        return _describe_bound(kind, expected, error.schema, shown), _SEE_EXAMPLE
    if kind == "additionalProperties" and isinstance(value, dict):
        known = list(error.schema.get("properties", {}))
        extra = [str(k) for k in value if k not in known]
        if extra:
            close = suggest(extra[0], known)
            hint = f"did you mean {close!r}?" if close else f"known keys: {', '.join(known)}"
            return f"unknown key {shown_name(extra[0])}", hint
    if kind in ("oneOf", "anyOf"):
        options = [s.get("type") for s in expected if isinstance(s, dict)]
        if all(isinstance(t, str) for t in options):
            want = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in options)
            return f"must be {want}, got {_kind(value)}", _SEE_EXAMPLE
    return "is not valid", _SEE_EXAMPLE


_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def _describe_bound(kind: str, expected: Any, schema: Mapping[str, Any], shown: str) -> str:
    """``must be >= 1``; the whole range when there is one (``must be from 1 to 100``)."""
    low, high = schema.get("minimum"), schema.get("maximum")
    if kind in ("minimum", "maximum") and low is not None and high is not None:
        return f"must be from {low} to {high}{shown}"
    return f"must be {_BOUNDS[kind]} {expected}{shown}"


def _describe_type(expected: Any, value: Any) -> tuple[str, str]:
    types = [expected] if isinstance(expected, str) else list(expected)
    want = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
    if value is None:
        return (
            f"has no value (expected {want})",
            "give it a value, or remove the line (or comment it out with #)",
        )
    if "string" in types and isinstance(value, bool | int | float):
        return (
            f"must be {want}, got {_kind(value)}",
            "put the value in quotes (YAML reads +1555…, 0123, yes, no, on, off as numbers or booleans)",
        )
    if "boolean" in types and isinstance(value, str):
        return f"must be {want}, got {_kind(value)}", "write true or false, without quotes"
    return f"must be {want}, got {_kind(value)}", _SEE_EXAMPLE


_PATTERN_WORDS = {
    "^AC[0-9a-fA-F]{32}$": "an Account SID (AC followed by 32 hex digits)",
    "^SK[0-9a-fA-F]{32}$": "an API key SID (SK followed by 32 hex digits)",
    "^MG[0-9a-fA-F]{32}$": "a Messaging Service SID (MG followed by 32 hex digits)",
    "^[A-Za-z]{2}$": "a two-letter country code such as US, GB or DE",
    URL["pattern"]: "an http:// or https:// URL",
    SENDER["pattern"]: "a valid sender: an E.164 number (+15017122661), a 5-6 digit short code, "
    "an alphanumeric sender ID (1-11 characters, at least one letter) or a whatsapp: address",
}


def _pattern_words(pattern: str) -> str:
    return _PATTERN_WORDS.get(pattern, f"in the expected form ({pattern})")
