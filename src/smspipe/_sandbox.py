"""The Jinja2 sandbox templates render in, and the budget of one render.

Jinja2's immutable sandbox keeps a template from reaching Python internals or
changing its data; it does not bound what a template costs. Here every render
gets a :class:`Budget` (processor time, steps, sizes), charged by:

- the sandbox's own hooks: every call (``environment.call``), the operators
  that can build big values (``intercepted_binops``: ``+ * ** %``), attribute
  access to ``str.format``;
- a rewrite of the template's syntax tree before it is compiled: each ``for``
  loop iterates through a counting filter (charging the loop's literal text
  per iteration), and ``~`` goes through a concatenation that checks sizes;
- ``finalize``, which sees every value a template outputs, in every block;
- every filter and global that takes a size or builds a value: checked before
  it runs (``center(10**9)`` is refused, not attempted) and charged after.

Exceeding the budget raises :class:`BudgetExceeded`, which fails that object.
"""

from __future__ import annotations

import re
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import update_wrapper
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.filters import FILTERS
from jinja2.runtime import Context, LoopContext, Macro, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from smspipe._patterns import LazyPattern

# --- the budget -------------------------------------------------------------------

#: loop iterations, calls, operators and filters in one render
MAX_STEPS = 100_000
#: characters of one string (items of one list) a template builds
MAX_VALUE = 100_000
#: characters and items built over one render, output included
MAX_BUILT = 1_000_000
#: processor time of one render, in seconds
MAX_CPU = 0.5
#: size of an integer a template computes, in bits
MAX_INT_BITS = 10_000
#: steps between two looks at the clock
_TICK = 1024

LIMITS = {
    "steps": MAX_STEPS,
    "value": MAX_VALUE,
    "built": MAX_BUILT,
    "cpu_seconds": MAX_CPU,
    "int_bits": MAX_INT_BITS,
}


class BudgetExceeded(Exception):
    """A render went over its budget: the object fails, the run goes on."""


class Budget:
    """What one render may still spend."""

    __slots__ = ("built", "started", "steps", "tick")

    def __init__(self) -> None:
        self.steps = 0
        self.built = 0
        self.tick = 0  # the first step starts the clock
        self.started = -1.0

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_STEPS:
            raise BudgetExceeded(
                f"more than {MAX_STEPS:,} steps (loop iterations, calls, operators and filters)"
            )
        self.tick -= count
        if self.tick <= 0:
            self._check_time()

    def _check_time(self) -> None:
        now = time.thread_time()
        if self.started < 0:
            self.started = now
        elif now - self.started > MAX_CPU:
            raise BudgetExceeded(f"more than {MAX_CPU} s of processor time")
        self.tick = _TICK

    def build(self, size: int, what: str = "a string or list") -> None:
        """Account for a value of *size* characters or items, before it is made."""
        if size > MAX_VALUE:
            raise BudgetExceeded(f"{what} of {size:,} characters or items (at most {MAX_VALUE:,})")
        self.built += size
        if self.built > MAX_BUILT:
            raise BudgetExceeded(f"more than {MAX_BUILT:,} characters and items built in one render")
        if size > _TICK:
            self.step()

    def integer(self, bits: int) -> None:
        if bits > MAX_INT_BITS:
            raise BudgetExceeded(f"an integer of {bits:,} bits (at most {MAX_INT_BITS:,})")


class BudgetContext(Context):
    """A render's context, carrying its budget (made when first charged)."""

    smspipe_budget: Budget | None = None

    def derived(self, locals: dict[str, Any] | None = None) -> Context:
        context = super().derived(locals)
        context.smspipe_budget = budget_of(self)  # type: ignore[attr-defined]
        return context


def budget_of(context: Context) -> Budget:
    budget: Budget | None = getattr(context, "smspipe_budget", None)
    if budget is None:
        budget = Budget()
        context.smspipe_budget = budget  # type: ignore[attr-defined]
    return budget


# --- sizes ------------------------------------------------------------------------------


def text_size(value: Any, limit: int = MAX_VALUE) -> int:
    """About how many characters ``str(value)`` has; stops counting past *limit*.

    A list holding the same long string 10,000 times is small to hold and
    huge to print: the estimate walks it (each repetition counted).
    """
    kind = type(value)
    if kind is str or kind is Markup:
        return len(value)
    if value is None or kind is bool or kind is float:
        return 8
    if kind is int:
        bits: int = value.bit_length()
        return bits // 3 + 2
    return _walk_size(value, limit)


def _walk_size(value: Any, limit: int) -> int:
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        total += _shallow_size(item, stack)
        if total > limit:
            return total
    return total


def _shallow_size(item: Any, stack: list[Any]) -> int:
    """The size of *item* itself; its parts go on *stack*."""
    if isinstance(item, str):
        return len(item) + 2  # quoted in a container's str()
    if isinstance(item, Mapping):
        stack.extend(item.keys())
        stack.extend(item.values())
        return 2 + 4 * len(item)
    if isinstance(item, list | tuple | set | frozenset | types.MappingProxyType):
        stack.extend(item)
        return 2 + 2 * len(item)
    if isinstance(item, Namespace):
        stack.append(dict(item._Namespace__attrs))
        return 12
    if isinstance(item, int) and not isinstance(item, bool):
        return item.bit_length() // 3 + 2
    return 16  # numbers, None, Undefined, generators, ranges: short whatever they hold


def _charge(budget: Budget, value: Any) -> None:
    """Charge a value a filter or call has just built."""
    kind = type(value)
    if kind is str or kind is Markup or kind is list or kind is tuple:
        budget.build(len(value))


def _int_arg(value: Any, default: int = 0) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError, OverflowError):
        return default


# --- formatting ---------------------------------------------------------------------

_PERCENT_SPEC = LazyPattern(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_FORMAT_SPEC = LazyPattern(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[a-zA-Z%]?\Z", re.DOTALL)


def check_percent(budget: Budget, template: str, args: Any) -> None:
    """Before ``template % args``: the widths and precisions it asks for."""
    values = (
        list(args.values())
        if isinstance(args, Mapping)
        else list(args)
        if isinstance(args, tuple)
        else [args]
    )
    size = len(template) + sum(text_size(v, MAX_VALUE) for v in values)
    for match in _PERCENT_SPEC.finditer(template):
        for number in match.group(1, 2):
            if number == "*":
                size += sum(_int_arg(v) for v in values if type(v) is int)
            elif number:
                size += int(number) if len(number) < 10 else MAX_VALUE + 1
        if size > MAX_VALUE:
            break
    budget.build(size, "formatted text")


def _format_spec_size(spec: str) -> int:
    match = _FORMAT_SPEC.match(spec)
    if match is None:
        return len(spec)
    width, precision = match.group(1, 2)
    return sum(int(n) if len(n) < 10 else MAX_VALUE + 1 for n in (width, precision) if n)


class _BudgetFormatter(SandboxedFormatter):
    """str.format in the sandbox, each field's width and size checked first."""

    def __init__(self, env: Any, budget: Budget) -> None:
        super().__init__(env)
        self.budget = budget

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.budget.build(text_size(value) + _format_spec_size(format_spec), "formatted text")
        return super().format_field(value, format_spec)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            self.budget.build(2 * text_size(value), "formatted text")
        return super().convert_field(value, conversion)


class _FormatMethod:
    """``"...".format`` or ``format_map`` read by a template: formats within the budget."""

    def __init__(self, env: Any, text: str, is_map: bool) -> None:
        self.env = env
        self.text = text
        self.is_map = is_map

    def run(self, budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self.is_map:
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            kwargs = args[0]
            args = ()
        formatter = _BudgetFormatter(self.env, budget)
        text = formatter.vformat(self.text, args, kwargs)
        result = type(self.text)(text) if isinstance(self.text, Markup) else str(text)
        budget.build(len(result), "formatted text")
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return self.run(Budget(), args, kwargs)


# --- checks before a str method or a filter runs -------------------------------------------


def _str_method_size(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The size a str method will build, for those that can build big; else None."""
    text: str = method.__self__
    name = method.__name__
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        return max(len(text), _int_arg(width))
    if name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        return len(text) + text.count("\t") * _int_arg(tabsize)
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        return _replaced_size(text, args[0], args[1], count)
    if name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        return len(text) * max(longest, 1)
    return None


def _replaced_size(text: str, old: str, new: str, count: Any) -> int:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(0, len(new) - len(old))


def _joined_size(separator: str, items: list[Any]) -> int:
    size = len(separator) * max(len(items) - 1, 0)
    for item in items:
        size += text_size(item)
        if size > MAX_VALUE:
            break
    return size


def _materialize(budget: Budget, value: Any) -> list[Any]:
    """An iterable as a list, counting its items as steps."""
    if isinstance(value, list | tuple):
        budget.step(len(value))
        return list(value)
    items = []
    for item in value:
        budget.step()
        items.append(item)
    return items


def _check_text_input(budget: Budget, value: Any) -> None:
    # Every string filter starts with str(value): a list of references may print huge.
    kind = type(value)
    if kind is not str and kind is not int and kind is not float and value is not None:
        size = text_size(value)
        if size > MAX_VALUE:
            budget.build(size, "the text of a value")


Precheck = Callable[[Budget, Any, tuple[Any, ...], dict[str, Any]], tuple[Any, tuple[Any, ...]]]


def _pre_center(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    width = args[0] if args else kwargs.get("width", 80)
    budget.build(max(text_size(value), _int_arg(width)))
    return value, args


def _pre_indent(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    width = args[0] if args else kwargs.get("width", 4)
    per_line = len(width) if isinstance(width, str) else _int_arg(width)
    size = text_size(value)
    lines = value.count("\n") + 1 if isinstance(value, str) else 1
    budget.build(size + lines * per_line)
    return value, args


def _pre_truncate(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    length = args[0] if args else kwargs.get("length", 255)
    end = args[2] if len(args) > 2 else kwargs.get("end", "...")
    leeway = args[3] if len(args) > 3 else kwargs.get("leeway")
    if isinstance(length, int) and isinstance(end, str) and length < len(end):
        raise ValueError(f"truncate: length {length} is shorter than the end marker {end!r}")
    if isinstance(leeway, int) and leeway < 0:
        raise ValueError(f"truncate: leeway {leeway} must not be negative")
    budget.build(text_size(value) + (len(end) if isinstance(end, str) else 0))
    return value, args


def _pre_wordwrap(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    width = _int_arg(args[0] if args else kwargs.get("width", 79), 79) or 1
    wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring")
    size = text_size(value)
    budget.build(size + (size // width + 1) * (len(wrap) if isinstance(wrap, str) else 2))
    return value, args


def _pre_format(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    check_percent(budget, value if isinstance(value, str) else str(value)[:MAX_VALUE], kwargs or args)
    return value, args


def _pre_replace(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    old = args[0] if args else kwargs.get("old", "")
    new = args[1] if len(args) > 1 else kwargs.get("new", "")
    count = args[2] if len(args) > 2 else kwargs.get("count")
    _check_text_input(budget, value)
    text = value if isinstance(value, str) else ""
    budget.build(_replaced_size(text, str(old), str(new), -1 if count is None else count))
    return value, args


def _pre_join(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    items = _materialize(budget, value)
    separator = args[0] if args else kwargs.get("d", "")
    budget.build(_joined_size(str(separator), items))
    return items, args


def _pre_batch(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    items = _materialize(budget, value)
    count = args[0] if args else kwargs.get("linecount", 1)
    budget.build(len(items) + _int_arg(count), "a list")
    return items, args


def _pre_slice(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    items = _materialize(budget, value)
    slices = args[0] if args else kwargs.get("slices", 1)
    budget.build(len(items) + _int_arg(slices), "a list")
    budget.step(_int_arg(slices))
    return items, args


def _pre_items(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if isinstance(value, Undefined | str | Mapping):  # as they are: a mapping is not its keys here
        _check_text_input(budget, value)
        return value, args
    items = _materialize(budget, value)
    budget.build(len(items), "a list")
    return items, args


def _pre_sum(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    items = _materialize(budget, value)
    start = args[1] if len(args) > 1 else kwargs.get("start", 0)
    if not isinstance(start, int | float):  # adding up strings or lists: quadratic, and big
        size = text_size(start)
        for item in items:
            size += text_size(item)
            if size > MAX_VALUE:
                break
        budget.build(size, "a sum")
        budget.step(len(items) * max(size // 1000, 1))
    return items, args


def _pre_text(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _check_text_input(budget, value)
    return value, args


def _pre_escaped(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    budget.build(6 * text_size(value), "escaped text")  # & becomes &amp;
    return value, args


def _pre_json(budget: Budget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    indent = args[0] if args else kwargs.get("indent")
    per_level = len(indent) if isinstance(indent, str) else _int_arg(indent)
    budget.build(6 * text_size(value) * (1 + per_level), "JSON text")
    return value, args


#: filters checked before they run (by what they may build); every other
#: filter but the harmless ones has its input's text size checked
_PRECHECKS: dict[str, Precheck] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "truncate": _pre_truncate,
    "wordwrap": _pre_wordwrap,
    "format": _pre_format,
    "replace": _pre_replace,
    "join": _pre_join,
    "batch": _pre_batch,
    "slice": _pre_slice,
    "sum": _pre_sum,
    "list": _pre_items,
    "sort": _pre_items,
    "unique": _pre_items,
    "dictsort": _pre_items,
    "groupby": _pre_items,
    "urlize": _pre_escaped,
    "xmlattr": _pre_escaped,
    "escape": _pre_escaped,
    "e": _pre_escaped,
    "forceescape": _pre_escaped,
    "urlencode": _pre_escaped,
    "tojson": _pre_json,
    "pprint": _pre_json,
}
#: filters that build nothing: the fast path of every built-in text uses them
_UNCHARGED = frozenset({"default", "d", "length", "count", "first", "last", "abs", "attr", "random"})


def _budgeted_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """*function* as a filter that steps, checks before and charges after."""
    precheck: Precheck = _PRECHECKS.get(name, _pre_text)
    pass_arg = _PassArg.from_obj(function)

    def budgeted(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = budget_of(context)
        budget.step()
        value, args = precheck(budget, value, args, kwargs)
        try:
            if pass_arg is None:
                result = function(value, *args, **kwargs)
            else:
                first = {
                    _PassArg.context: context,
                    _PassArg.eval_context: context.eval_ctx,
                    _PassArg.environment: context.environment,
                }[pass_arg]
                result = function(first, value, *args, **kwargs)
        except AssertionError as exc:  # Jinja2's own argument checks (truncate)
            raise ValueError(f"{name}: {exc or 'invalid arguments'}") from None
        _charge(budget, result)
        return result

    # After update_wrapper, which copies the wrapped filter's own pass_* mark.
    return pass_context(update_wrapper(budgeted, function))


def budgeted_filters() -> dict[str, Callable[..., Any]]:
    """Jinja2's filters, each within the render's budget (the harmless ones as they are)."""
    return {
        name: function if name in _UNCHARGED else _budgeted_filter(name, function)
        for name, function in FILTERS.items()
    }


@pass_context
def _lipsum(context: Context, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    budget = budget_of(context)
    budget.build(_int_arg(n) * (_int_arg(max) + 1) * 12, "lorem ipsum")
    budget.step(_int_arg(n) * (_int_arg(max) + 1))
    text: str = generate_lorem_ipsum(n=n, html=html, min=min, max=max)
    return text


# --- the filters the rewrite inserts ---------------------------------------------------------

LOOP_FILTER = "smspipe_loop"
CONCAT_FILTER = "smspipe_concat"
OUTPUT_FILTER = "smspipe_output"
RESERVED = frozenset({LOOP_FILTER, CONCAT_FILTER, OUTPUT_FILTER})
#: output expressions outside loops, macros and blocks left uncharged: each
#: is at most MAX_VALUE (finalize), so together they stay small
_FREE_OUTPUTS = 32


def finalize(value: Any) -> Any:
    """Every value a template outputs: null prints as nothing, none may be huge."""
    if value is None:
        return ""
    kind = type(value)
    if kind is str:
        if len(value) > MAX_VALUE:
            raise BudgetExceeded(f"an output of {len(value):,} characters (at most {MAX_VALUE:,})")
        return value
    if kind is not int and kind is not float and kind is not bool and text_size(value) > MAX_VALUE:
        raise BudgetExceeded(f"an output of more than {MAX_VALUE:,} characters")
    return value


@pass_context
def _output(context: Context, value: Any) -> Any:
    """An output in a loop, macro or block: charged, since it may repeat."""
    budget_of(context).build(text_size(value), "output")
    return value


@pass_context
def _counted(context: Context, iterable: Any, literal_size: int = 0) -> Iterator[Any]:
    """A for loop's iterable, each iteration a step (and its literal text charged)."""
    budget = budget_of(context)
    return _count(budget, iterable, literal_size)


def _count(budget: Budget, iterable: Iterable[Any], literal_size: int) -> Iterator[Any]:
    for item in iterable:
        budget.step()
        if literal_size:
            budget.build(literal_size, "a loop's text")
        yield item


@pass_context
def _concat(context: Context, values: list[Any]) -> str:
    """``a ~ b``: sizes checked before the text is made."""
    budget = budget_of(context)
    budget.build(sum(text_size(v) for v in values), "a concatenation")
    joined: str = markup_join(values) if context.eval_ctx.autoescape else str_join(values)
    return joined


class _Instrument(NodeTransformer):
    """Rewrites a parsed template so that loops, ``~`` and repeated output are budgeted."""

    def __init__(self, charge_every_output: bool) -> None:
        self.repeating = 0  # loops, macros and blocks around the node visited
        self.charge_every_output = charge_every_output

    def _repeated(self, node: nodes.Node) -> nodes.Node:
        self.repeating += 1
        try:
            self.generic_visit(node)
        finally:
            self.repeating -= 1
        return node

    visit_Macro = visit_CallBlock = visit_AssignBlock = visit_FilterBlock = visit_Block = _repeated

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self._repeated(node)
        literal = sum(len(data.data) for data in _own_template_data(node.body))
        node.iter = nodes.Filter(
            node.iter, LOOP_FILTER, [nodes.Const(literal)], [], None, None, lineno=node.lineno
        )
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        if self.repeating or self.charge_every_output:
            node.nodes = [
                child
                if isinstance(child, nodes.TemplateData)
                else nodes.Filter(child, OUTPUT_FILTER, [], [], None, None, lineno=child.lineno)
                for child in node.nodes
            ]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(
            nodes.List(node.nodes, lineno=node.lineno), CONCAT_FILTER, [], [], None, None, lineno=node.lineno
        )


def _own_template_data(body: list[nodes.Node]) -> Iterator[nodes.TemplateData]:
    """Literal text a loop body outputs itself (inner loops and macros charge theirs)."""
    stack: list[nodes.Node] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            yield node
        elif not isinstance(node, nodes.For | nodes.Macro | nodes.CallBlock):
            stack.extend(node.iter_child_nodes())


def instrument(tree: nodes.Template) -> nodes.Template:
    """*tree* rewritten so that each render stays within its budget."""
    outputs = sum(
        not isinstance(child, nodes.TemplateData)
        for node in tree.find_all(nodes.Output)
        for child in node.nodes
    )
    result = _Instrument(charge_every_output=outputs > _FREE_OUTPUTS).visit(tree)
    assert isinstance(result, nodes.Template)
    return result


def reserved_names(tree: nodes.Template) -> list[str]:
    """The rewrite's own filters, if a template names them itself."""
    return [node.name for node in tree.find_all(nodes.Filter) if node.name in RESERVED]


# --- the environment --------------------------------------------------------------------------


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with a budget, and dict keys before dict methods.

    ``shipment.items`` is the shipment's ``items`` field, not ``dict.items``;
    keys of JSON objects are data, so reading them needs no safety check.
    """

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    context_class = BudgetContext

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters.update(budgeted_filters())
        self.filters[LOOP_FILTER] = _counted
        self.filters[CONCAT_FILTER] = _concat
        self.filters[OUTPUT_FILTER] = _output
        self.globals["lipsum"] = _lipsum

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Any:
        if (
            not isinstance(value, types.MethodType | types.BuiltinMethodType)
            or value.__name__ not in ("format", "format_map")
            or not isinstance(value.__self__, str)
        ):
            return None
        return _FormatMethod(self, value.__self__, value.__name__ == "format_map")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = budget_of(context)
        budget.step()
        _check_binop(budget, operator, left, right)
        result = super().call_binop(context, operator, left, right)
        _charge(budget, result)
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = budget_of(__context)
        budget.step()
        if type(__obj) is _FormatMethod:
            return __obj.run(budget, args, kwargs)
        args = _before_call(budget, __obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if type(result) is str or isinstance(__obj, Macro):
            _charge(budget, result)
        return result


def _before_call(budget: Budget, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop
        return (_count(budget, args[0], 0), *args[1:])
    if isinstance(obj, types.BuiltinMethodType) and isinstance(getattr(obj, "__self__", None), str):
        if obj.__name__ == "join" and args:
            items = _materialize(budget, args[0])
            budget.build(_joined_size(str(obj.__self__), items))
            return (items, *args[1:])
        size = _str_method_size(obj, args, kwargs)
        if size is not None:
            budget.build(size)
    return args


def _check_binop(budget: Budget, operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        _check_repeat(budget, left, right)
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            budget.build(len(left) + len(right))
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            budget.integer(left.bit_length() * right)
    elif operator == "%" and isinstance(left, str):
        check_percent(budget, left, right)


def _check_repeat(budget: Budget, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if not isinstance(left, bool) and not isinstance(right, bool):
            budget.integer(left.bit_length() + right.bit_length())
        return
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(count, int):
            budget.build(len(sequence) * max(count, 0), "a repeated string or list")
