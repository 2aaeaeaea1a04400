"""Message templates: the built-in texts, compiling, choosing one per status, rendering.

Templates are Jinja2 in the sandbox of :mod:`smspipe._sandbox`, where every
render has a budget. A template is compiled once per run, up front when it
comes from a flag or the config (a syntax error is a usage error before any
output), and probed once without data: one that exceeds its budget even then
is broken for every object, and the run stops (exit 2) before it starts. A
render that exceeds its budget fails that object; a template that fails so for
each of the first :data:`BROKEN_AFTER` objects it renders stops the run too.

A render touches no shared state but two caches (its context and budget are
its own), so one :class:`Templates` serves several threads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from numbers import Number
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2.defaults import DEFAULT_NAMESPACE
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.utils import missing

from smspipe import _render
from smspipe._patterns import LazyPattern
from smspipe._sandbox import MAX_VALUE, BudgetExceeded, Sandbox, finalize, instrument, reserved_names
from smspipe.errors import UsageError

#: the event (last part of the request_id) when the object has no status
DEFAULT_EVENT = {"order": "placed", "customer": "welcome", "shipment": "shipped"}
#: config ``templates.<kind>`` mapping key used for statuses it does not name
CONFIG_FALLBACK_KEY = "default"
#: a template over its budget for each of its first objects is broken for all
BROKEN_AFTER = 3

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
        # packed, not yet handed over: "has shipped" would be untrue
        "ready": _SIGN + _HI + ", " + _SHIPMENT_OF + " is packed and ready to ship" + _TRACKING + ".",
    },
}
# Which built-in text a status gets; any other status gets the kind's first one
# (order: the "placed" text; shipment: the "shipped" one), with a warning once per status.
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
    "shipment": {"shipped": "shipped", "ready": "ready"},
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
        raise ValueError(f"money: {_short(value)} is not an amount")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
        if not amount.is_finite():
            raise InvalidOperation
        amount = amount.quantize(_CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        raise ValueError(f"money: {_short(value)} is not an amount") from None
    text = f"{abs(amount):,.2f}"
    sign = "-" if amount < 0 else ""
    code = "" if currency is None or isinstance(currency, Undefined) else str(currency).strip()
    symbol = CURRENCY_SYMBOLS.get(code.upper())
    if symbol is not None:
        return f"{sign}{symbol}{text}"
    return f"{sign}{text} {code.upper()}" if code else f"{sign}{text}"


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, list | dict) or len(value) < 20 else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


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


def is_mapping(value: Any) -> bool:
    """Jinja2's ``is mapping``, without an ABC check for a dict."""
    return type(value) is dict or isinstance(value, Mapping)


def is_number(value: Any) -> bool:
    """Jinja2's ``is number``, without an ABC check for an int or a float."""
    return type(value) is float or type(value) is int or isinstance(value, Number)


# --- output text ---------------------------------------------------------------------

# Control characters go (tab becomes a space); line breaks are kept as \n,
# because a template may lay a message out on several lines on purpose.
CLEAN: dict[int, str | None] = {c: None for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
CLEAN[0x09] = " "
CLEAN[0x0A] = "\n"
CLEAN[0x2028] = "\n"
CLEAN[0x2029] = "\n"

# What CLEAN would change: most texts have none of it, and a search is cheaper than translate.
_UNCLEAN = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(CLEAN) if c != 0x0A) + "]")
_SURROGATE = LazyPattern("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Strip control characters (keeping line breaks) and surrounding whitespace."""
    if _UNCLEAN.search(text) is None:
        return text.strip()
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(CLEAN).strip()


# --- missing fields ---------------------------------------------------------------------


class _MissingMessage(str):
    """UndefinedError's message, carrying what was missing where: the render that
    catches it names the field by its path in its own context."""

    __slots__ = ("name", "obj")
    obj: Any
    name: Any


class MissingField(StrictUndefined):
    """A StrictUndefined whose error can name the missing field by its path."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        message = _MissingMessage(super()._undefined_message)
        message.obj = self._undefined_obj
        message.name = self._undefined_name
        return message if not self._undefined_hint else self._undefined_hint


def missing_field_text(error: UndefinedError, context: Mapping[str, Any]) -> str:
    """``order.totals.nope is missing``, or what Jinja2 said."""
    message = error.args[0] if error.args else ""
    if not isinstance(message, _MissingMessage):
        return str(error)
    name: Any = message.name  # an int for a list index
    if message.obj is missing:
        usable = ", ".join(sorted(k for k in context if k not in DEFAULT_NAMESPACE))
        return f"{name!r} is undefined (the template can use: {usable})"
    where = _path_of(message.obj, context)
    if where is None:
        return str(message)
    if isinstance(name, int):
        return f"{where}[{name}] is missing"
    return f"{where}.{name} is missing" if where else f"{name} is missing"


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


# --- compiled templates -------------------------------------------------------------------


class RenderError(Exception):
    """Rendering failed for this object (a missing field, a filter refusing a
    value, the budget): the object fails, the run goes on."""


@dataclass(slots=True)
class Compiled:
    """A template ready to render, and how its renders have gone so far."""

    template: Template
    origin: str  # "built-in order.placed", "config templates.order.canceled", "--template"
    #: the template's globals and the run's names: a render's context starts as a copy
    base_context: dict[str, Any]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rendered: bool = False
    _over_budget: int = 0

    @property
    def rendered(self) -> bool:
        return self._rendered

    def succeeded(self) -> None:
        with self._lock:
            self._rendered = True

    def over_budget(self, reason: str) -> None:
        """Count a render over its budget; the run stops if none ever succeeded."""
        with self._lock:
            if self._rendered:
                return
            self._over_budget += 1
            count = self._over_budget
        if count >= BROKEN_AFTER:
            raise UsageError(
                f"{self.origin}: template exceeded its budget for each of the first {count} objects "
                f"({reason})",
                hint="a template renders one short text; remove the loops or sizes that grow it",
            )


def unsafe_names(tree: nodes.Template) -> list[str]:
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


def new_environment() -> Sandbox:
    """The sandbox every template of a run compiles in."""
    env = Sandbox(
        undefined=MissingField,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        finalize=finalize,
        cache_size=0,
        auto_reload=False,
    )
    env.filters["money"] = money
    env.filters["first_name"] = first_name
    # Jinja2's own, answering the same, but quick for the dicts and floats of
    # JSON: an isinstance check against an ABC is slow for a built-in text.
    env.tests["mapping"] = is_mapping
    env.tests["number"] = is_number
    return env


class Templates:
    """The templates of one kind for a run: flag, config, built-in; compiled once."""

    def __init__(
        self,
        kind: str,
        *,
        flag: tuple[str, str] | None,
        configured: str | Mapping[str, str] | None,
        names: Mapping[str, Any],
    ) -> None:
        self.kind = kind
        self.env = new_environment()
        self.render_path = _render.chosen()
        self._names = dict(names)
        # Compile every template this run may use now: a syntax error is a
        # usage error, reported once, before any output.
        self._flag = self.compile(*flag) if flag else None
        self._config_one: Compiled | None = None
        self._config_by_status: dict[str, Compiled] = {}
        if isinstance(configured, str):
            self._config_one = self.compile(configured, f"config templates.{kind}")
        elif isinstance(configured, Mapping):
            for status, text in configured.items():
                self._config_by_status[str(status).strip().lower()] = self.compile(
                    text, f"config templates.{kind}.{status}"
                )
        # Built-in texts are ours and known to compile: compiled when first used.
        self._builtin: dict[str, Compiled] = {}
        self._for_status: dict[str, tuple[Compiled, str | None]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    # --- compiling ----------------------------------------------------------------

    def compile(self, text: Any, origin: str) -> Compiled:
        if not isinstance(text, str):
            raise UsageError(f"{origin}: a template must be text")
        try:
            tree = self.env.parse(text)
            _refuse_reaching(tree, origin)
            tree = instrument(tree)
            tree.set_environment(self.env)
            template = self.env.template_class.from_code(
                self.env, self.env.compile(tree), self.env.make_globals(None), None
            )
        except TemplateSyntaxError as exc:
            raise UsageError(
                # Jinja2 ends some messages with a period, and the hint follows
                f"{origin}: line {exc.lineno}: {(exc.message or 'syntax error').rstrip('.')}",
                hint="fix the Jinja2 syntax",
            ) from None
        # Template.render merges the globals (a ChainMap over the environment's)
        # into every render's context, and the context lists their names: half
        # the cost of a short render. They never change after this, so they are
        # merged once, here, and kept as a plain dict, quicker to list.
        template.globals = dict(template.globals)
        compiled = Compiled(template, origin, {**template.globals, **self._names})
        self._probe(compiled)
        return compiled

    def _probe(self, compiled: Compiled) -> None:
        """Render once with every name undefined (lenient): over budget even
        then, the template is broken whatever the data."""
        context = compiled.base_context.copy()
        for name in (self.kind, "address", "name", "phone", "status"):
            context[name] = ChainableUndefined(name=name)
        try:
            try:
                self.render_path(compiled.template, context)
            except RecursionError:
                raise BudgetExceeded(_TOO_DEEP) from None
        except BudgetExceeded as exc:
            raise UsageError(
                f"{compiled.origin}: template exceeded its budget even without data: {exc}",
                hint="a template renders one short text; remove the loops or sizes that grow it",
            ) from None
        except SecurityError as exc:
            raise _refused(compiled.origin, exc) from None
        except Exception:  # noqa: S110 - anything else depends on the data: each object reports it
            pass

    # --- choosing --------------------------------------------------------------------

    def for_event(self, event: str) -> tuple[Compiled, str | None]:
        """The template for a status, and a warning the first time a status has none."""
        chosen = self._for_status.get(event)
        if chosen is None:
            chosen = self._choose(event)
            if len(self._for_status) < 1000:  # statuses are few; bound it anyway
                self._for_status[event] = chosen
        compiled, notice = chosen
        if notice is not None:
            with self._lock:
                if event in self._warned:
                    return compiled, None
                self._warned.add(event)
        return compiled, notice

    def _choose(self, event: str) -> tuple[Compiled, str | None]:
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
            return self.built_in(name), None
        name = next(iter(BUILTIN[self.kind]))
        notice = None
        if known:
            notice = (
                f"status {event!r} has no built-in text; used the {name!r} one "
                f"(set templates.{self.kind}.{event} in the config to choose)"
            )
        return self.built_in(name), notice

    def built_in(self, name: str) -> Compiled:
        compiled = self._builtin.get(name)
        if compiled is None:
            compiled = self.compile(BUILTIN[self.kind][name], f"built-in {self.kind}.{name}")
            with self._lock:
                compiled = self._builtin.setdefault(name, compiled)
        return compiled

    # --- rendering -----------------------------------------------------------------------

    def render(self, compiled: Compiled, context: dict[str, Any]) -> str:
        """The text *compiled* renders for *context*; RenderError if it cannot."""
        try:
            text = self.render_path(compiled.template, context)
        except BudgetExceeded as exc:
            raise _over_budget(compiled, exc) from None
        except RecursionError:
            raise _over_budget(compiled, BudgetExceeded(_TOO_DEEP)) from None
        except SecurityError as exc:
            raise _refused(compiled.origin, exc) from None  # the template's fault: stop the run
        except UndefinedError as exc:
            raise RenderError(
                f"template {compiled.origin}: {missing_field_text(exc, context)}; give the object that "
                "field, or make the template tolerate its absence ({% if x is defined %}, | default(''))"
            ) from None
        except Exception as exc:  # a filter refusing a value, a type error: whatever the template did
            raise RenderError(f"template {compiled.origin} failed: {_exception_text(exc)}") from None
        if len(text) > MAX_VALUE or not text.isascii():
            _check_rendered(text, compiled)
        if not compiled.rendered:
            compiled.succeeded()
        return text


_TOO_DEEP = "it recurses too deeply (a macro or loop that calls itself without end)"


def _over_budget(compiled: Compiled, exc: BudgetExceeded) -> RenderError:
    compiled.over_budget(str(exc))
    return RenderError(
        f"template exceeded its budget: {exc} (template {compiled.origin}); "
        "a template renders one short text, remove what makes it grow"
    )


def _refuse_reaching(tree: nodes.Template, origin: str) -> None:
    unsafe = unsafe_names(tree)
    if unsafe:
        raise UsageError(
            f"{origin}: the template reaches for {unsafe[0]!r}, which the sandbox refuses",
            hint="templates may only read the object's fields",
        )
    reserved = reserved_names(tree)
    if reserved:
        raise UsageError(f"{origin}: the filter {reserved[0]!r} is smspipe's own", hint="use another name")


def _refused(origin: str, exc: SecurityError) -> UsageError:
    return UsageError(
        f"{origin}: refused by the sandbox: {exc}", hint="templates may only read the object's fields"
    )


def _exception_text(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _check_rendered(text: str, compiled: Compiled) -> None:
    if len(text) > MAX_VALUE:
        raise _over_budget(compiled, BudgetExceeded(f"an output of {len(text):,} characters"))
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        raise RenderError(
            f"the rendered text holds a lone surrogate \\u{ord(surrogate.group()):04x}, which no "
            f"encoding can carry (template {compiled.origin}); remove it from the template or the data"
        )
