"""Hub objects (orders, customers, shipments) into SMS request documents.

One :class:`Translator` per run: it compiles the kind's JSON Schema, the
Jinja2 sandbox and every template it may need once, up front, so that a
broken template is a usage error before any output, and the per-object work
is a schema check, a (cached) phone lookup, one render and ``sms.check``.

This is the only module that imports jinja2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from numbers import Number
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.defaults import DEFAULT_NAMESPACE
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from smspipe import phone, sms
from smspipe.documents import Document, Problem, unwrap
from smspipe.errors import InputError, UsageError
from smspipe.schemacheck import Schema

# kind -> (wrapper key for one object, wrapper key for a list)
KINDS: dict[str, tuple[str, str]] = {
    "order": ("order", "orders"),
    "customer": ("customer", "customers"),
    "shipment": ("shipment", "shipments"),
}
ADDRESSES = ("shipping", "billing")
#: the event (last part of the request_id) when the object has no status
DEFAULT_EVENT = {"order": "placed", "customer": "welcome", "shipment": "shipped"}
#: config ``templates.<kind>`` mapping key used for statuses it does not name
CONFIG_FALLBACK_KEY = "default"

# --- built-in templates ------------------------------------------------------
# Short, friendly, GSM-7 only (no smart quotes, no emoji): one segment for
# typical data. They use only fields they test for, so any object that passes
# the schema renders.

_SIGN = "{% if shop_name %}{{ shop_name }}: {% endif %}"
_HI = "Hi{% if name %} {{ name }}{% endif %}"
_TOTAL = (
    "{% if order.totals is mapping and order.totals.order is number %}"
    " of {{ order.totals.order | money(order.currency | default(none)) }}{% endif %}"
)
_TRACKING = (
    "{% if shipment.tracking is defined and shipment.tracking is not none"
    " and shipment.tracking | string | trim %}"
    ". Tracking number: {{ shipment.tracking }}{% endif %}"
)
_SHIPMENT_OF = (
    "{% if shipment.order_id is defined and shipment.order_id is not none %}"
    "your order {{ shipment.order_id }}{% else %}your shipment {{ shipment.id }}"
    "{% endif %}"
)

BUILTIN: dict[str, dict[str, str]] = {
    "order": {
        "placed": _SIGN
        + _HI
        + ", thanks for your order {{ order.id }}"
        + _TOTAL
        + "! We will text you when it ships.",
        "canceled": _SIGN + _HI + ", your order {{ order.id }} has been canceled. "
        "If this is unexpected, please contact us.",
        "shipped": _SIGN + _HI + ", good news: your order {{ order.id }} has shipped!",
    },
    "customer": {
        "welcome": _HI + ", thanks for signing up{% if shop_name %} with {{ shop_name }}"
        "{% endif %}! Your account is ready.",
    },
    "shipment": {
        "shipped": _SIGN + _HI + ", " + _SHIPMENT_OF + " has shipped" + _TRACKING + ".",
    },
}
# Which built-in text a status gets; any other status gets the kind's first one
# (order: the "received" text), with a warning once per status.
BUILTIN_FOR_STATUS: dict[str, dict[str, str]] = {
    "order": {
        "placed": "placed",
        "complete": "placed",
        "completed": "placed",
        "canceled": "canceled",
        "cancelled": "canceled",
        "shipped": "shipped",
    },
    "customer": {"welcome": "welcome"},
    # One shipment text whatever the status: the flow texts shipments that went out.
    "shipment": {},
}

#: what a template can use besides the object itself (documented in the README)
CONTEXT_NAMES = ("address", "name", "phone", "status", "kind", "shop_name", "sender")

# --- filters -------------------------------------------------------------------

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
_CENT = Decimal("0.01")


#: (type, amount, currency) -> text: order totals repeat, and Decimal is slow
_money_cache: dict[tuple[type, Any, str | None], str] = {}


def money(value: Any, currency: Any = None) -> str:
    """``210.0 | money("USD")`` -> ``$210.00``; unknown currency -> ``210.00 XYZ``."""
    kind = type(value)
    if (kind is float or kind is int) and (currency is None or type(currency) is str):
        key = (kind, value, currency)
        text = _money_cache.get(key)
        if text is None:
            text = _money(value, currency)
            if len(_money_cache) >= 4096:
                _money_cache.clear()
            _money_cache[key] = text
        return text
    return _money(value, currency)


def _money(value: Any, currency: Any) -> str:
    _fail_if_undefined(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"money: {value!r} is not an amount")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
        if not amount.is_finite():
            raise InvalidOperation
        amount = amount.quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError(f"money: {value!r} is not an amount") from None
    text = f"{abs(amount):,.2f}"
    sign = "-" if amount < 0 else ""
    code = "" if currency is None or isinstance(currency, Undefined) else str(currency).strip()
    symbol = CURRENCY_SYMBOLS.get(code.upper())
    if symbol is not None:
        return f"{sign}{symbol}{text}"
    return f"{sign}{text} {code.upper()}" if code else f"{sign}{text}"


_NAME_KEYS = ("firstname", "first_name")
_FULL_NAME_KEYS = ("name", "full_name", "fullname")


def first_name(value: Any) -> str:
    """A first name from a full name (``"Joe Smith"``) or an object's ``firstname``.

    An object (customer, address) gives its ``firstname``/``first_name``, else
    the first word of its ``name``/``full_name``. Nothing usable gives ``""``.
    """
    _fail_if_undefined(value)
    if isinstance(value, (dict, Mapping)):  # dict first: skips the ABC check
        for key in _NAME_KEYS:
            found = value.get(key)
            if isinstance(found, str) and found.strip():
                return " ".join(found.split())
        for key in _FULL_NAME_KEYS:
            found = value.get(key)
            if isinstance(found, str) and found.strip():
                return found.split()[0]
        return ""
    if isinstance(value, str) and value.strip():
        return value.split()[0]
    return ""


def _fail_if_undefined(value: Any) -> None:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises, naming the missing field


# --- the sandbox -----------------------------------------------------------------

MAX_REPEAT = 10_000  # longest str/list a template may build with *
MAX_POWER = 1_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with dict keys before dict methods.

    ``shipment.items`` is the shipment's ``items`` field, not ``dict.items``;
    keys of JSON objects are data, so reading them needs no safety check.
    """

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        # Bound what a template can allocate: 'x' * 10**10 would exhaust memory.
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > MAX_REPEAT
                ):
                    raise SecurityError(f"repeating a sequence {count} times is too large")
        return super().call_binop(context, operator, left, right)


class _MissingField(StrictUndefined):
    """A StrictUndefined whose message names the missing field by its path."""

    __slots__ = ()
    #: the context of the render in progress, set by Translator._render
    context: Mapping[str, Any] = {}

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name: Any = self._undefined_name  # an int for a list index
        if self._undefined_obj is missing:
            usable = ", ".join(sorted(k for k in type(self).context if k not in DEFAULT_NAMESPACE))
            return f"{name!r} is undefined (the template can use: {usable})"
        where = _path_of(self._undefined_obj, type(self).context)
        if where is None:
            return super()._undefined_message
        if isinstance(name, int):
            return f"{where}[{name}] is missing"
        return f"{where}.{name} is missing" if where else f"{name} is missing"


def _make_undefined() -> type[_MissingField]:
    """A class of its own per translator, since it holds that translator's render context."""

    class MissingField(_MissingField):
        __slots__ = ()

    return MissingField


def _path_of(target: Any, context: Mapping[str, Any], depth: int = 6) -> str | None:
    """Where *target* sits in the render context (``order.totals``), by identity."""
    level: list[tuple[str, Any]] = [(k, v) for k, v in context.items() if isinstance(v, dict | list)]
    for _ in range(depth):
        following: list[tuple[str, Any]] = []
        for path, value in level:
            if value is target:
                return path
            children = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in children:
                if isinstance(child, dict | list):
                    following.append((f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}", child))
        level = following
    return None


def _unsafe_names(tree: nodes.Template) -> list[str]:
    """Dunder attributes a template reaches for (``''.__class__``): refused up front."""
    found = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif (
            isinstance(node, nodes.Filter)
            and node.name == "attr"
            and node.args
            and isinstance(node.args[0], nodes.Const)
        ):
            name = node.args[0].value
        if isinstance(name, str) and name.startswith("__"):
            found.append(name)
    return found


# --- output text -------------------------------------------------------------------

# Control characters go (tab becomes a space); line breaks are kept as \n,
# because a template may lay a message out on several lines on purpose.
_CLEAN: dict[int, str | None] = {c: None for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CLEAN[0x09] = " "
_CLEAN[0x0A] = "\n"
_CLEAN[0x2028] = "\n"
_CLEAN[0x2029] = "\n"


# What _CLEAN would change: most texts have none of it, and a search is cheaper than translate.
_UNCLEAN = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_CLEAN) if c != 0x0A) + "]")


def clean_text(text: str) -> str:
    """Strip control characters (keeping line breaks) and surrounding whitespace."""
    if _UNCLEAN.search(text) is None:
        return text.strip()
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_CLEAN).strip()


# --- schema check --------------------------------------------------------------------


@cache
def kind_schema(kind: str) -> Schema:
    """The kind's schema: a compiled check, and jsonschema only to explain a refusal."""
    return Schema(sms.load_schema(kind))


# --- results -----------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What became of one object: a request document, or why not."""

    where: str
    label: str
    request: dict[str, Any] | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.request is not None

    def error_line(self) -> str:
        return f"{self.where}: {self.label}: {self.error}" if self.label else f"{self.where}: {self.error}"

    def warning_lines(self) -> list[str]:
        prefix = f"{self.where}: {self.label}: " if self.label else f"{self.where}: "
        return [f"{prefix}warning: {w}" for w in self.warnings]


@dataclass(frozen=True, slots=True)
class _Compiled:
    template: Any  # jinja2.Template
    origin: str  # "built-in order.placed", "config templates.order.canceled", "--template"
    #: the template's globals and the run's names: a render's context starts as a copy
    base_context: dict[str, Any]


# --- the translator ------------------------------------------------------------------

_E164_HINT = re.compile(r"; give it in E\.164 form \(\+\d+\)$")
PHONE_HINT = (
    "put a valid number in shipping_address.phone or billing_address.phone "
    f"(E.164 such as {phone.EXAMPLE_E164}, or national form for the address's country)"
)


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
        region = self.policy.default_region
        self.kind = options.kind
        self.singular, self.plural = KINDS[options.kind]
        self.region = region
        self.allowed = self.policy.allowed_countries
        self.sender = self._check_sender(options.sender, region)
        first = f"{options.address}_address"
        self.address_order = (first, *(f"{a}_address" for a in ADDRESSES if a != options.address))
        self.schema = kind_schema(self.kind)
        self._base_context: dict[str, Any] = {
            "kind": self.kind,
            "shop_name": options.shop_name or "",
            "sender": self.sender or "",
        }
        self._undefined = _make_undefined()
        self.env = _Sandbox(
            undefined=self._undefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            finalize=_finalize,
            cache_size=0,
            auto_reload=False,
        )
        self.env.filters["money"] = money
        self.env.filters["first_name"] = first_name
        # Jinja2's own, answering the same, but quick for the dicts and floats of
        # JSON: an isinstance check against an ABC costs a built-in text ~0.3 us.
        self.env.tests["mapping"] = _is_mapping
        self.env.tests["number"] = _is_number
        # Compile every template this run may use now: a syntax error is a
        # usage error, reported once, before any output.
        self._flag = self._compile(*options.template) if options.template else None
        self._config_one: _Compiled | None = None
        self._config_by_status: dict[str, _Compiled] = {}
        configured = options.config_templates
        if isinstance(configured, str):
            self._config_one = self._compile(configured, f"config templates.{self.kind}")
        elif isinstance(configured, Mapping):
            for status, text in configured.items():
                self._config_by_status[str(status).strip().lower()] = self._compile(
                    text, f"config templates.{self.kind}.{status}"
                )
        # Built-in texts are ours and known to compile: compiled when first used.
        self._builtin: dict[str, _Compiled] = {}
        self._for_status: dict[str, tuple[_Compiled, str | None]] = {}
        self._warned: set[str] = set()
        self._regions: dict[Any, tuple[str, str]] = {}
        #: status text -> event
        self._events: dict[str, str] = {}
        self._schema_is_valid = self.schema.is_valid

    @staticmethod
    def _check_sender(sender: str | None, region: str) -> str | None:
        if not sender:
            return None
        result = phone.check_sender(sender, region)
        if result.e164 is None:
            raise UsageError(f"from: {result.error}", hint="fix --from or the from key of the config file")
        return result.e164

    def _compile(self, text: str, origin: str) -> _Compiled:
        if not isinstance(text, str):
            raise UsageError(f"{origin}: a template must be text")
        try:
            tree = self.env.parse(text)
            unsafe = _unsafe_names(tree)
            if unsafe:
                raise UsageError(
                    f"{origin}: the template reaches for {unsafe[0]!r}, which the sandbox refuses",
                    hint="templates may only read the object's fields",
                )
            template = self.env.from_string(text)
        except TemplateSyntaxError as exc:
            raise UsageError(
                f"{origin}: line {exc.lineno}: {exc.message}", hint="fix the Jinja2 syntax"
            ) from None
        # Template.render merges the globals (a ChainMap over the environment's)
        # into every render's context, and the context lists their names: half
        # the cost of a short render. They never change after this, so they are
        # merged once, here, and kept as a plain dict, quicker to list.
        template.globals = dict(template.globals)
        return _Compiled(template, origin, {**template.globals, **self._base_context})

    # --- per object -----------------------------------------------------------

    def run(self, items: Iterable[Document | Problem]) -> Iterator[Outcome]:
        """Translate every object of every document; problems become failed outcomes."""
        singular = self.singular
        for item in items:
            if isinstance(item, Problem):
                yield Outcome(item.where, "", error=item.message)
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
        where = doc.where
        ident = obj.get("id") if isinstance(obj, dict) else None
        label = f"{self.kind} {_show(ident)}" if ident not in (None, "") else self.kind
        if "[" in path:
            label = f"{path}: {label}"
        if not self._schema_is_valid(obj):
            issues = [
                i for i in sms.schema_issues(self.schema, obj, "") if i.message and not _is_phone_rule(i)
            ]
            if issues:
                return Outcome(where, label, error=self._schema_error(obj, issues))
        assert isinstance(obj, dict)

        recipient = self._recipient(obj)
        if isinstance(recipient, str):
            return Outcome(where, label, error=recipient)
        to, address = recipient

        status = obj.get("status") if self.kind != "customer" else None
        event = self._events.get(status) if type(status) is str else None
        if event is None:
            event = str(status).strip().lower() if status not in (None, "") else ""
            event = event or DEFAULT_EVENT[self.kind]
            if type(status) is str and len(self._events) < 1000:  # statuses are few
                self._events[status] = event
        compiled, notice = self._template_for(event)
        outcome = Outcome(where, label)
        if notice:
            outcome.warnings.append(notice)

        context = compiled.base_context.copy()
        context[self.kind] = obj
        context["address"] = address
        context["phone"] = to
        context["status"] = event
        context["name"] = first_name(address) or first_name(obj) or self._other_name(obj, address)
        try:
            message = clean_text(self._render(compiled, context))
        except _RenderError as exc:
            outcome.error = str(exc)
            return outcome

        request_id = f"{self.kind}:{ident}:{event}"
        body: dict[str, Any] = {}
        if self.sender is not None:
            body["from"] = self.sender
        body["phone"] = to
        body["message"] = message
        request = {"request_id": request_id, "sms": body}
        # The same checks validate and send apply: what we write, they accept.
        # (sms.check would split the request into just these: its sms, and an
        # envelope of the other keys.)
        # check_item takes only the source, line and index of the document (and
        # keeps its value as Verdict.original, unused here): doc itself will do.
        verdict = sms.check_item(doc, "sms", body, {"request_id": request_id}, self.policy)
        if not verdict.valid:
            outcome.error = (
                "the rendered message is not a valid SMS: "
                + "; ".join(str(e) for e in verdict.errors)
                + f" (template: {compiled.origin})"
            )
            return outcome
        if verdict.warnings:
            outcome.warnings.extend(str(w) for w in verdict.warnings)
        elif verdict.segments is not None and verdict.segments > 1:
            outcome.warnings.append(
                f"the message needs {verdict.segments} segments ({verdict.encoding}, "
                f"{len(message)} characters), each billed; shorten the template, or set "
                "--max-segments to refuse long messages"
            )
        outcome.request = request
        return outcome

    def _render(self, compiled: _Compiled, context: dict[str, Any]) -> str:
        self._undefined.context = context  # lets a missing field be named by its path
        template = compiled.template
        try:
            # What Template.render does, less its copies of the context (we
            # build a fresh one per object) and its traceback rewriting (the
            # exception is the same; we only keep its message).
            text: str = "".join(
                template.root_render_func(
                    template.environment.context_class(
                        template.environment,
                        context,
                        template.name,
                        template.blocks,
                        globals=template.globals,
                    )
                )
            )
        except SecurityError as exc:
            # The template's fault, not the object's: stop the run (exit 2).
            raise UsageError(
                f"{compiled.origin}: refused by the sandbox: {exc}",
                hint="templates may only read the object's fields",
            ) from None
        except UndefinedError as exc:
            raise _RenderError(
                f"template {compiled.origin}: {exc}; give the object that field, or make the "
                "template tolerate its absence ({% if x is defined %}, | default(''))"
            ) from None
        except (
            TemplateError,
            ArithmeticError,
            LookupError,
            TypeError,
            ValueError,
            AttributeError,
            RecursionError,
        ) as exc:
            raise _RenderError(f"template {compiled.origin} failed: {exc}") from None
        return text

    def _template_for(self, event: str) -> tuple[_Compiled, str | None]:
        """The template for a status, and a warning the first time a status has none."""
        chosen = self._for_status.get(event)
        if chosen is None:
            chosen = self._choose(event)
            if len(self._for_status) < 1000:  # statuses are few; bound it anyway
                self._for_status[event] = chosen
        compiled, notice = chosen
        if notice is not None:
            if event in self._warned:
                return compiled, None
            self._warned.add(event)
        return compiled, notice

    def _choose(self, event: str) -> tuple[_Compiled, str | None]:
        """Highest first: --template/--template-file, config templates, built-in."""
        if self._flag is not None:
            return self._flag, None
        if self._config_one is not None:
            return self._config_one, None
        if event in self._config_by_status:
            return self._config_by_status[event], None
        if CONFIG_FALLBACK_KEY in self._config_by_status:
            return self._config_by_status[CONFIG_FALLBACK_KEY], None
        known = BUILTIN_FOR_STATUS[self.kind]
        name = known.get(event)
        if name is not None:
            return self._built_in(name), None
        name = next(iter(BUILTIN[self.kind]))
        notice = None
        if known:
            notice = (
                f"status {event!r} has no built-in text; used the {name!r} one "
                f"(set templates.{self.kind}.{event} in the config to choose)"
            )
        return self._built_in(name), notice

    def _built_in(self, name: str) -> _Compiled:
        compiled = self._builtin.get(name)
        if compiled is None:
            compiled = self._builtin[name] = self._compile(
                BUILTIN[self.kind][name], f"built-in {self.kind}.{name}"
            )
        return compiled

    def _recipient(self, obj: dict[str, Any]) -> tuple[str, dict[str, Any]] | str:
        """The E.164 phone of the first address that has a usable one, or why none."""
        reasons = []
        for name in self.address_order:
            address = obj.get(name)
            if not isinstance(address, dict):
                reasons.append(f"no {name}")
                continue
            raw = address.get("phone")
            if not isinstance(raw, str) or not raw.strip():
                reasons.append(f"{name} has no phone")
                continue
            if raw.lstrip().startswith("+"):
                # The region does not matter for E.164; using the run's region makes
                # sms.check's own lookup of the same number a cache hit, not a parse.
                region, note = self.region, ""
            else:
                region, note = self._region(address.get("country"))
            result = phone.check_number(raw, region, self.allowed)
            if result.e164 is not None:
                return result.e164, address
            error = _E164_HINT.sub("", result.error or "is not a valid phone number")
            reasons.append(f"{name}.phone {error}{note}")
        return f"no usable phone: {'; '.join(reasons)}; {PHONE_HINT}"

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
                f" (country {country!r} is not a two-letter ISO code; read as {self.region})",
            )
        else:
            found = (self.region, "")
        if isinstance(country, str | None) and len(self._regions) < 1000:
            self._regions[country] = found
        return found

    def _other_name(self, obj: dict[str, Any], chosen: dict[str, Any]) -> str:
        for name in self.address_order:
            address = obj.get(name)
            if isinstance(address, dict) and address is not chosen:
                found = first_name(address)
                if found:
                    return found
        return ""

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


class _RenderError(Exception):
    """Rendering failed for this object (a missing field, a filter refusing a value)."""


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int or isinstance(value, Number)


def _finalize(value: Any) -> Any:
    # A field that is present but null prints as nothing, not "None".
    return "" if value is None else value


def _is_phone_rule(issue: sms.Issue) -> bool:
    """The schema's "a phone somewhere" rule: _recipient explains it far better."""
    return issue.path == "" and "is not valid under any of the given schemas" in issue.message


def _show(ident: Any) -> str:
    text = str(ident)
    if len(text) > 60:
        text = text[:57] + "..."
    return text if text.isprintable() and " " not in text else json.dumps(text)


def read_template_file(path: str | Path) -> tuple[str, str]:
    """The text of --template-file and its origin label; a usage error if unreadable."""
    try:
        return Path(path).read_text("utf-8"), f"--template-file {path}"
    except FileNotFoundError:
        raise InputError(
            f"--template-file {path}: no such file", hint="check the path of the template"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"--template-file {path}: cannot read it ({exc})", hint="give a UTF-8 text file"
        ) from None
