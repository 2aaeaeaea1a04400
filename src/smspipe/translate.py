"""Hub objects (orders, customers, shipments) into SMS request documents.

One :class:`Translator` per run: it compiles the kind's JSON Schema and every
template it may need once, up front, so that a broken template is a usage
error before any output, and the per-object work is a schema check, a (cached)
phone lookup (:mod:`smspipe.recipients`), one render
(:mod:`smspipe.templates`) and ``sms.check``.

A translator holds no state that a translation changes but bounded caches:
two threads may share one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from smspipe import phone, sms
from smspipe.documents import Document, Problem, json_kind, unwrap
from smspipe.errors import InputError, UsageError
from smspipe.recipients import ADDRESSES, PHONE_HINT, Recipients
from smspipe.schemacheck import Schema
from smspipe.spelling import setting
from smspipe.templates import (
    BUILTIN,
    BUILTIN_FOR_STATUS,
    CLEAN,
    CONFIG_FALLBACK_KEY,
    CONTEXT_NAMES,
    DEFAULT_EVENT,
    Compiled,
    RenderError,
    Templates,
    clean_text,
    first_name,
    is_mapping,
    is_number,
    money,
)

# kind -> (wrapper key for one object, wrapper key for a list)
KINDS: dict[str, tuple[str, str]] = {
    "order": ("order", "orders"),
    "customer": ("customer", "customers"),
    "shipment": ("shipment", "shipments"),
}

# The category each kind's texts carry: an order or shipment update answers something the
# customer did, and is wanted at any hour (quiet hours exempt it); a welcome text to a new
# customer is not urgent, so it carries none and waits for the morning like marketing.
CATEGORY: dict[str, str] = {"order": "transactional", "shipment": "transactional"}

# The names this module has always offered (tests and callers use them).
_CLEAN = CLEAN
_is_mapping = is_mapping
_is_number = is_number

__all__ = [
    "ADDRESSES",
    "BUILTIN",
    "BUILTIN_FOR_STATUS",
    "CONFIG_FALLBACK_KEY",
    "CONTEXT_NAMES",
    "DEFAULT_EVENT",
    "KINDS",
    "PHONE_HINT",
    "Options",
    "Outcome",
    "Translator",
    "clean_text",
    "first_name",
    "kind_schema",
    "money",
    "read_template_file",
]


@cache
def kind_schema(kind: str) -> Schema:
    """The kind's schema: a compiled check, and jsonschema only to explain a refusal."""
    return Schema(sms.load_schema(kind))


@dataclass(slots=True)
class Outcome:
    """What became of one object: a request document, or why not.

    Where it came from and its label are worded only when a line needs them
    (most objects translate without a word).
    """

    origin: Document | Problem
    kind: str = ""
    ident: Any = None
    path: str = ""
    request: dict[str, Any] | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.request is not None

    @property
    def where(self) -> str:
        return self.origin.where

    @property
    def label(self) -> str:
        if not self.kind:
            return ""
        label = f"{self.kind} {_show(self.ident)}" if self.ident not in (None, "") else self.kind
        return f"{self.path}: {label}" if "[" in self.path else label

    def error_line(self) -> str:
        label = self.label
        return f"{self.where}: {label}: {self.error}" if label else f"{self.where}: {self.error}"

    def warning_lines(self) -> list[str]:
        label = self.label
        prefix = f"{self.where}: {label}: " if label else f"{self.where}: "
        return [f"{prefix}warning: {w}" for w in self.warnings]


@dataclass(frozen=True, slots=True)
class Options:
    """Everything a run needs from flags and config, already resolved."""

    kind: str
    #: text and origin of --template / --template-file (wins over everything)
    template: tuple[str, str] | None = None
    #: config ``templates.<kind>``: one template, or status -> template
    config_templates: str | Mapping[str, str] | None = None
    address: str = "shipping"
    default_region: str = "US"
    allowed_countries: frozenset[str] = frozenset()
    sender: str | None = None
    max_segments: int | None = None
    shop_name: str = ""


class Translator:
    """Turns hub objects of one kind into SMS request documents."""

    def __init__(self, options: Options) -> None:
        if options.kind not in KINDS:
            raise UsageError(f"unknown kind {options.kind!r}", hint=f"choose one of: {', '.join(KINDS)}")
        if options.address not in ADDRESSES:
            raise UsageError(f"unknown address {options.address!r}", hint="choose shipping or billing")
        self.policy = sms.make_policy(options.default_region, options.allowed_countries, options.max_segments)
        self.kind = options.kind
        self.singular, self.plural = KINDS[options.kind]
        self.sender = _check_sender(options.sender, self.policy.default_region)
        self.schema = kind_schema(self.kind)
        self._schema_is_valid = self.schema.is_valid
        self.recipients = Recipients(
            options.address, self.policy.default_region, self.policy.allowed_countries
        )
        self.templates = Templates(
            self.kind,
            flag=options.template,
            configured=options.config_templates,
            names={"kind": self.kind, "shop_name": options.shop_name or "", "sender": self.sender or ""},
        )
        #: status text -> event
        self._events: dict[str, str] = {}

    def _built_in(self, name: str) -> Compiled:
        return self.templates.built_in(name)

    # --- per object -----------------------------------------------------------

    def run(self, items: Iterable[Document | Problem]) -> Iterator[Outcome]:
        """Translate every object of every document; problems become failed outcomes."""
        singular = self.singular
        for item in items:
            if isinstance(item, Problem):
                yield Outcome(item, error=item.message)
                continue
            # The common {"order": {...}}, as unwrap would give it (its envelope
            # is unused here), without two generators and a copy of the envelope.
            value = item.value
            inner = value.get(singular, value) if type(value) is dict else value
            if inner is not value and type(inner) is dict:
                yield self.translate_object(item, singular, inner)
            else:
                yield from self.translate_document(item)

    def translate_document(self, doc: Document) -> Iterator[Outcome]:
        for path, item, _envelope in unwrap(doc, self.singular, self.plural):
            yield self.translate_object(doc, path, item)

    def translate_object(self, doc: Document, path: str, obj: Any) -> Outcome:
        ident = obj.get("id") if isinstance(obj, dict) else None
        outcome = Outcome(doc, self.kind, ident, path)
        if not self._schema_is_valid(obj) or not isinstance(obj, dict):
            outcome.error = self._refusal(obj)
            if outcome.error is not None:
                return outcome
        recipient = self.recipients.resolve(obj)
        if type(recipient) is str:
            outcome.error = recipient
        else:
            outcome.error = self._render(obj, ident, recipient, outcome)  # type: ignore[arg-type]
        return outcome

    def _refusal(self, obj: Any) -> str | None:
        """Why *obj* is not an object of this kind, or None."""
        if not isinstance(obj, dict) and self._schema_is_valid(obj):
            return f"expected a JSON object, got {json_kind(obj)}"
        issues = [i for i in sms.schema_issues(self.schema, obj, "") if i.message and not _is_phone_rule(i)]
        if issues:
            return self._schema_error(obj, issues)
        return None if isinstance(obj, dict) else f"expected a JSON object, got {json_kind(obj)}"

    def _render(
        self,
        obj: dict[str, Any],
        ident: Any,
        recipient: tuple[str, dict[str, Any]],
        outcome: Outcome,
    ) -> str | None:
        """Render and check the message; fill in *outcome*, or return why not."""
        to, address = recipient
        status = obj.get("status") if self.kind != "customer" else None
        event = self._events.get(status) if type(status) is str else None
        if event is None:
            event = self._event(status)
        compiled, notice = self.templates.for_event(event)
        if notice:
            outcome.warnings.append(notice)
        context = compiled.base_context.copy()
        context[self.kind] = obj
        context["address"] = address
        context["phone"] = to
        context["status"] = event
        context["name"] = first_name(address) or first_name(obj) or self.recipients.other_name(obj, address)
        try:
            message = clean_text(self.templates.render(compiled, context))
        except RenderError as exc:
            return str(exc)
        request = self._request(f"{self.kind}:{ident}:{event}", to, message)
        return self._checked(request, compiled, outcome)

    def _event(self, status: Any) -> str:
        """The object's status, lower case: the last part of its request_id."""
        event = str(status).strip().lower() if status not in (None, "") else ""
        event = event or DEFAULT_EVENT[self.kind]
        if type(status) is str and len(self._events) < 1000:  # statuses are few
            self._events[status] = event
        return event

    def _request(self, request_id: str, to: str, message: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.sender is not None:
            body["from"] = self.sender
        body["phone"] = to
        body["message"] = message
        category = CATEGORY.get(self.kind)
        if category is not None:
            body["category"] = category
        return {"request_id": request_id, "sms": body}

    def _checked(self, request: dict[str, Any], compiled: Compiled, outcome: Outcome) -> str | None:
        """The rules validate and send apply to what this writes, so that they accept it:
        its phone and sender were checked as they check them; here, the rest."""
        message = request["sms"]["message"]
        found = sms.check_message(message, "sms.message", self.policy)
        control = sms.describe_control(request["request_id"])
        if control is not None:
            found.errors.insert(0, sms.Issue("request_id", f"{control} (from the object's id or status)"))
        if found.errors:
            return (
                "the rendered message is not a valid SMS: "
                + "; ".join(str(e) for e in found.errors)
                + f" (template: {compiled.origin})"
            )
        if found.warnings:
            outcome.warnings.extend(str(w) for w in found.warnings)
        elif found.segments is not None and found.segments > 1:
            outcome.warnings.append(
                f"the message needs {found.segments} segments ({found.encoding}, "
                f"{len(message)} characters), each billed; shorten the template, or set "
                f"{setting('max_segments')} to refuse long messages"
            )
        outcome.request = request
        return None

    def _schema_error(self, obj: Any, issues: list[sms.Issue]) -> str:
        if isinstance(obj, dict) and "id" not in obj:
            for kind, keys in KINDS.items():
                if kind != self.kind and any(k in obj for k in keys):
                    return (
                        f"this looks like a {kind} document, not a {self.kind}; "
                        f"run `smspipe translate {kind}`"
                    )
        shown = "; ".join(str(i) for i in issues[:5])
        more = f" and {len(issues) - 5} more" if len(issues) > 5 else ""
        return (
            f"not a valid {self.kind}: {shown}{more}; "
            f"see `smspipe schema {self.kind}` for what translate needs"
        )


def _check_sender(sender: str | None, region: str) -> str | None:
    if not sender:
        return None
    result = phone.check_sender(sender, region)
    if result.e164 is None:
        raise UsageError(
            f"from: {result.error}", hint=f"fix {setting('from')} or the from key of the config file"
        )
    return result.e164


def _is_phone_rule(issue: sms.Issue) -> bool:
    """The schema's "a phone somewhere" rule: the recipient's reason explains it far better."""
    return issue.path == "" and "is not valid under any of the given schemas" in issue.message


def _show(ident: Any) -> str:
    text = str(ident)
    if len(text) > 60:
        text = text[:57] + "..."
    return text if text.isprintable() and " " not in text else json.dumps(text)


def read_template_file(path: str | Path) -> tuple[str, str]:
    """The text of --template-file and its origin label; a usage error if unreadable."""
    try:
        return Path(path).read_text("utf-8"), f"{setting('template_file')} {path}"
    except FileNotFoundError:
        raise InputError(
            f"{setting('template_file')} {path}: no such file", hint="check the path of the template"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{setting('template_file')} {path}: cannot read it ({exc})", hint="give a UTF-8 text file"
        ) from None
