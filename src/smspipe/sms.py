"""The SMS model and its validation: schema, phone, sender, message, encoding.

``validate`` and ``send`` both go through :func:`check`, so a document is
judged the same way whichever command reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from smspipe import encoding, phone
from smspipe._patterns import LazyPattern
from smspipe.documents import Document, Problem, json_kind, unwrap
from smspipe.schemacheck import Schema
from smspipe.spelling import setting

#: The JSON Schemas shipped as package data (a plain directory in every install
#: hatchling makes; read directly, which spares importlib.resources at start-up).
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MAX_MESSAGE_CHARS = 1600
SMS_FIELDS = ("id", "from", "phone", "message", "media_url", "status_callback", "category")
SECRET_PARAMETERS = frozenset({"twilio_auth_token", "twilio_api_secret"})


# Issue and SMS are made for every document checked: NamedTuples, immutable
# like frozen dataclasses and twice as quick to build.
class Issue(NamedTuple):
    """An error or warning about one field, by JSON path (``sms.phone``)."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SMS(NamedTuple):
    """A message ready to send: recipient in E.164, sender checked."""

    to: str
    body: str
    sender: str | None = None
    media_url: tuple[str, ...] = ()
    status_callback: str | None = None
    id: str | int | None = None
    #: "transactional" (sent in quiet hours), "marketing", or None (held back like marketing)
    category: str | None = None

    @property
    def transactional(self) -> bool:
        return self.category == "transactional"

    def as_document(self) -> dict[str, Any]:
        """The hub SMS object, normalised."""
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        if self.sender is not None:
            out["from"] = self.sender
        out["phone"] = self.to
        out["message"] = self.body
        if self.media_url:
            out["media_url"] = list(self.media_url)
        if self.status_callback is not None:
            out["status_callback"] = self.status_callback
        if self.category is not None:
            out["category"] = self.category
        return out


@dataclass(slots=True)
class Verdict:
    """What validation concluded about one document."""

    source: str
    line: int
    index: int | None
    #: JSON path of the SMS within the document ("sms", "sms[1]", "" when bare)
    path: str
    request_id: str | None
    parameters: dict[str, Any]
    original: Any
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    sms: SMS | None = None
    encoding: str | None = None
    segments: int | None = None

    @property
    def valid(self) -> bool:
        return not self.errors and self.sms is not None

    @property
    def where(self) -> str:
        from smspipe.documents import location

        return location(self.source, self.line, self.index)

    def report(self) -> dict[str, Any]:
        """The NDJSON record ``validate --json`` prints."""
        return {
            "source": self.source,
            "line": self.line,
            "index": self.index,
            "request_id": self.request_id,
            "valid": self.valid,
            "errors": [e.as_dict() for e in self.errors] if self.errors else [],
            "warnings": [w.as_dict() for w in self.warnings] if self.warnings else [],
            "phone": self.sms.to if self.sms else None,
            "encoding": self.encoding,
            "segments": self.segments,
        }

    def normalised(self, *, keep_secrets: bool = False) -> dict[str, Any]:
        """The document as ``validate --pass`` writes it: request form, E.164 phone.

        Secrets in ``parameters`` are dropped unless *keep_secrets*: smspipe
        never writes a token to its output.
        """
        assert self.sms is not None
        out: dict[str, Any] = {}
        if self.request_id is not None:
            out["request_id"] = self.request_id
        params = {k: v for k, v in self.parameters.items() if keep_secrets or k not in SECRET_PARAMETERS}
        if params:
            out["parameters"] = params
        out["sms"] = self.sms.as_document()
        return out

    def key(self, account: str | None = None) -> str:
        """A stable identity: the request_id, else a hash of what would be sent."""
        if self.request_id:
            return self.request_id
        return content_hash(self.sms, account) if self.sms else f"{self.source}:{self.line}"


def content_hash(sms: SMS, account: str | None) -> str:
    material = json.dumps(
        [account, sms.to, sms.sender, sms.body, list(sms.media_url)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    import hashlib  # not at import time: loading it would cost every command

    # surrogatepass: never a crash, even for a string no reader would let through
    return "sha256:" + hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# --- schemas -----------------------------------------------------------------


def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped as package data (sms, request, order, …)."""
    text = (SCHEMA_DIR / f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(name: str) -> Schema:
    return Schema(load_schema(name))


@cache
def _envelope_validator() -> Schema:
    """The request schema with any ``sms``: checks request_id and parameters
    (a document may be passed whole, its sms checked apart)."""
    schema = load_schema("request")  # a fresh dict: ours to change
    schema["properties"]["sms"] = True
    schema["required"] = []
    return Schema(schema)


def schema_issues(validator: Any, value: Any, prefix: str) -> list[Issue]:
    """Run a validator (a :class:`~smspipe.schemacheck.Schema`, or jsonschema's) and
    turn its errors into one Issue each."""
    if validator.is_valid(value):
        return []
    key = _issue_key(validator, value, prefix)
    if key is not None:
        cached = _issue_cache.get(key)
        if cached is not None:
            return list(cached)
    issues = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        issues.append(_describe_schema_error(error, prefix))
    if key is not None:
        if len(_issue_cache) >= 4096:
            _issue_cache.clear()
        _issue_cache[key] = tuple(issues)
    return issues


# Small invalid values come again and again (an export of empty objects, the
# same typo in every line): jsonschema's explanation of one is costly, so
# it is kept, by the value's JSON text.
_issue_cache: dict[tuple[int, str, str], tuple[Issue, ...]] = {}
_ISSUE_KEY_MAX = 256


def _issue_key(validator: Any, value: Any, prefix: str) -> tuple[int, str, str] | None:
    # repr tells JSON values apart as the schema does (true from 1, 1 from 1.0).
    if type(value) is not dict or len(value) > 8:
        return None
    try:
        text = repr(value)
    except RecursionError:
        return None
    return (id(validator), prefix, text) if len(text) <= _ISSUE_KEY_MAX else None


def join_path(prefix: str, *parts: str | int) -> str:
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return path


def _describe_schema_error(error: Any, prefix: str) -> Issue:
    path = join_path(prefix, *error.absolute_path)
    validator = error.validator
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return Issue(join_path(path, missing), "required field is missing")
    if validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in known]
        name = extras[0] if extras else "?"
        import difflib

        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(known)}"
        return Issue(join_path(path, str(name)), f"unknown field{hint}")
    if validator == "type":
        expected = error.validator_value
        expected = (
            " or ".join(_article(t) for t in expected) if isinstance(expected, list) else _article(expected)
        )
        return Issue(path, f"must be {expected}, got {json_kind(error.instance)}")
    if validator == "maxLength":
        return Issue(path, too_long(len(error.instance), error.validator_value))
    if validator == "minLength":
        return Issue(path, "must not be empty")
    if validator == "maxItems":
        return Issue(path, f"has {len(error.instance)} items; at most {error.validator_value} are allowed")
    if validator == "pattern":
        return Issue(path, _pattern_message(path, error.instance))
    if validator == "oneOf":
        return Issue(path, "must be an SMS object or a list of SMS objects")
    return Issue(path, error.message)


def _pattern_message(path: str, instance: Any) -> str:
    if path.endswith("status_callback") or "media_url" in path:
        from smspipe import urls

        return urls.url_problem(instance) or f"{instance!r} is not an http(s) URL"
    control = describe_control(instance) if isinstance(instance, str) else None
    if control is not None:
        return f"{control}; remove it"
    return f"{instance!r} is not of the expected form"


def _article(type_name: str) -> str:
    names = {
        "object": "an object",
        "array": "an array",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
    }
    return names.get(type_name, type_name)


# --- checks ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """What the checks beyond the schema need from the configuration."""

    default_region: str = "US"
    allowed_countries: frozenset[str] = frozenset()
    max_segments: int | None = None


#: codes people use that ISO 3166 (and so phonenumbers) spells otherwise
_REGION_ALIASES = {"UK": "GB", "EL": "GR", "EN": "GB"}


def make_policy(
    region: str, allowed_countries: Iterable[str] = (), max_segments: int | None = None
) -> Policy:
    """The policy every command checks with; an unknown region is a usage error."""
    code = str(region).strip().upper()
    if not phone.is_region(code):
        from smspipe.errors import UsageError

        known = _REGION_ALIASES.get(code)
        hint = (
            f"did you mean {known!r}? (the ISO 3166 code)"
            if known
            else "use a two-letter country code such as US, GB or DE"
        )
        raise UsageError(f"unknown region {region!r}", hint=hint)
    return Policy(
        default_region=code,
        allowed_countries=frozenset(c.upper() for c in allowed_countries),
        max_segments=max_segments,
    )


def split(doc: Document) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """The SMS items of a document: wrapped, hub request, bare, or a collection."""
    return unwrap(doc, "sms", "sms")


def check(doc: Document, policy: Policy) -> list[Verdict]:
    """Validate every SMS in *doc* (one, or several for ``{"sms": [...]}``)."""
    value = doc.value
    if type(value) is dict:
        inner = value.get("sms")
        if type(inner) is dict:
            # The common {"request_id", "sms": {...}}: the document is its own
            # envelope (the envelope schema takes any "sms"), without a copy.
            return [check_item(doc, "sms", inner, value, policy)]
    return [check_item(doc, path, item, envelope, policy) for path, item, envelope in split(doc)]


def check_item(doc: Document, path: str, item: Any, envelope: dict[str, Any], policy: Policy) -> Verdict:
    request_id = envelope.get("request_id")
    parameters = envelope.get("parameters")
    verdict = Verdict(
        doc.source,
        doc.line,
        doc.index,
        path,
        request_id if isinstance(request_id, str) and request_id else None,
        parameters if isinstance(parameters, dict) else {},
        doc.value,
    )
    if verdict.request_id is not None and path.endswith("]"):
        # One request, several messages: each needs its own ledger identity.
        verdict.request_id = f"{verdict.request_id}{path[path.index('[') :]}"
    if envelope:
        envelope_schema = _envelope_validator()
        if not envelope_schema.is_valid(envelope):
            verdict.errors.extend(schema_issues(envelope_schema, envelope, ""))
    sms_schema = _validator("sms")
    if not sms_schema.is_valid(item):
        verdict.errors.extend(schema_issues(sms_schema, item, path))
    if type(item) is not dict and not isinstance(item, dict):
        return verdict

    to = _check_phone(item.get("phone"), path, policy, verdict)
    sender = item.get("from")
    if sender is not None:
        sender = _check_from(sender, path, policy, verdict)
    body = item.get("message")
    if type(body) is str or isinstance(body, str):
        _check_message(body, join_path(path, "message"), policy, verdict)
    if "media_url" in item or "status_callback" in item:
        _check_urls(item, path, verdict)
    if verdict.errors or to is None or not isinstance(body, str):
        return verdict
    media = item.get("media_url") or ()
    verdict.sms = SMS(
        to, body, sender, tuple(media), item.get("status_callback"), item.get("id"), item.get("category")
    )
    return verdict


# C0 controls but tab, line feed and carriage return; DEL; C1. No handset shows
# them, any of them makes a message UCS-2, and C1 in text is nearly always
# mis-decoded Windows-1252 (mojibake): refused, so the export gets fixed.
_CONTROL = LazyPattern("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "BS", 0x0B: "VT", 0x0C: "FF", 0x1B: "ESC", 0x7F: "DEL"}
_SURROGATE = LazyPattern("[\ud800-\udfff]")


_ANY_CONTROL = LazyPattern("[\\x00-\\x1f\\x7f-\\x9f]")


def describe_control(text: str, *, message: bool = False) -> str | None:
    """The first control character in *text* (a *message* may hold tab and
    line breaks), described; None if none."""
    match = (_CONTROL if message else _ANY_CONTROL).search(text)
    if match is None:
        return None
    code = ord(match.group())
    name = _CONTROL_NAMES.get(code)
    shown = f"U+{code:04X} ({name})" if name else f"U+{code:04X}"
    return f"holds control character {shown} at position {match.start() + 1}"


class MessageCheck:
    """What the rules of a message text found (see :func:`check_message`).

    A plain class: one is made for every message translate writes, and a
    dataclass with list defaults takes twice as long to build."""

    __slots__ = ("encoding", "errors", "segments", "warnings")

    def __init__(self) -> None:
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.encoding: str | None = None
        self.segments: int | None = None


def check_message(body: str, path: str, policy: Policy) -> MessageCheck:
    """Every rule a message text must meet, its length included (which
    ``check`` leaves to the schema): for a text made here, as translate makes one."""
    found = MessageCheck()
    if len(body) > MAX_MESSAGE_CHARS:
        found.errors.append(Issue(path, too_long(len(body), MAX_MESSAGE_CHARS)))
    _check_message(body, path, policy, found)
    return found


def too_long(size: int, limit: int) -> str:
    return f"is {size} characters; at most {limit} are allowed"


def _check_message(body: str, path: str, policy: Policy, verdict: Verdict | MessageCheck) -> None:
    if not body or body.isspace():  # what not body.strip() says, without a copy
        verdict.errors.append(Issue(path, "must not be blank"))
    analysis = encoding.analyse(body)
    verdict.encoding = analysis.name
    verdict.segments = analysis.segments
    # Plain GSM-7 (one unit a character, no extension character) holds no control.
    if (analysis.name != encoding.GSM7 or analysis.units != len(body)) and _unprintable(body, path, verdict):
        return
    if analysis.non_gsm:
        verdict.warnings.append(
            Issue(
                path,
                f"UCS-2 encoding (70 characters a segment, not 160) because of "
                f"{encoding.describe_chars(analysis.non_gsm)}; "
                f"{analysis.segments} segment{'s' if analysis.segments != 1 else ''}",
            )
        )
    if policy.max_segments is not None and analysis.segments > policy.max_segments:
        verdict.errors.append(
            Issue(
                path,
                f"needs {analysis.segments} segments, more than {setting('max_segments')} "
                f"{policy.max_segments}; shorten the text",
            )
        )


_CONTROL_OR_SURROGATE = LazyPattern("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\ud800-\\udfff]")


def _unprintable(body: str, path: str, verdict: Verdict | MessageCheck) -> bool:
    """Refuse a control character, or a lone surrogate (no reader lets one
    through, but a message may be built in Python)."""
    if _CONTROL_OR_SURROGATE.search(body) is None:
        return False
    control = describe_control(body, message=True)
    if control is not None:
        verdict.errors.append(
            Issue(path, f"{control}; remove it (tab, line feed and carriage return are allowed)")
        )
        return True
    surrogate = _SURROGATE.search(body)
    if surrogate is not None:
        verdict.errors.append(
            Issue(
                path,
                f"holds a lone surrogate (U+{ord(surrogate.group()):04X}) at position "
                f"{surrogate.start() + 1}, which no encoding can carry; remove it",
            )
        )
        return True
    return False


def _check_urls(item: dict[str, Any], path: str, verdict: Verdict) -> None:
    """Beyond the schema's shape: a host Twilio can reach (urls.url_problem)."""
    from smspipe import urls

    refused = {issue.path for issue in verdict.errors}
    media = item.get("media_url")
    candidates: list[tuple[str, Any]] = []
    if isinstance(media, list):
        candidates.extend((join_path(path, "media_url", i), url) for i, url in enumerate(media))
    candidates.append((join_path(path, "status_callback"), item.get("status_callback")))
    for where, url in candidates:
        if isinstance(url, str) and where not in refused:
            problem = urls.url_problem(url)
            if problem is not None:
                verdict.errors.append(Issue(where, problem))


def _check_phone(raw: Any, prefix: str, policy: Policy, verdict: Verdict) -> str | None:
    if not isinstance(raw, str) or not raw or raw.isspace():
        return None  # the schema already said so
    result = phone.check_number(raw, policy.default_region, policy.allowed_countries)
    if result.e164 is None:
        verdict.errors.append(Issue(join_path(prefix, "phone"), result.error or "not a valid phone number"))
    return result.e164


def _check_from(raw: Any, prefix: str, policy: Policy, verdict: Verdict) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    result = phone.check_sender(raw, policy.default_region)
    if result.e164 is None:
        verdict.errors.append(Issue(join_path(prefix, "from"), result.error or "not a valid sender"))
    return result.e164


def problem_verdict(problem: Problem) -> Verdict:
    """An unreadable line or item, as a verdict so that reports treat it alike."""
    return Verdict(
        source=problem.source,
        line=problem.line,
        index=problem.index,
        path="",
        request_id=None,
        parameters={},
        original=None,
        errors=[Issue("", problem.message)],
    )
