"""The fast render path agrees with Jinja2's Template.render (issue 12, item 4).

`smspipe._render.render_fast` calls Jinja2 internals; `render_reference` is the
public API. Over generated templates (expressions, filters, loops, macros,
missing fields, budget overruns) and generated orders, both give the same text
or raise the same error with the same message. Run this file against a new
Jinja2 release before moving the pin in pyproject.toml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from smspipe import _render
from smspipe.errors import UsageError
from smspipe.templates import Templates

ROOT = Path(__file__).resolve().parent.parent
ORDER = json.loads((ROOT / "samples" / "order.json").read_text())["order"]

NAMES = ["order", "name", "phone", "status", "kind", "shop_name", "sender", "address", "nope"]
FIELDS = ["id", "status", "currency", "totals", "line_items", "email", "shipping_address", "nope", "0"]
FILTERS = [
    "",
    " | default('-')",
    " | upper",
    " | length",
    " | string | trim",
    " | first_name",
    " | money('USD')",
    " | center(5)",
    " | join(',')",
    " | list | first",
    " | tojson",
    " | replace('a', 'bb')",
    " | truncate(3)",
    " | truncate(-5)",
    " | wordwrap(4)",
    " | center(10**9)",
    " | indent(2)",
    " | dictsort",
]

names = st.sampled_from(NAMES)
paths = st.builds(
    lambda head, rest: head + "".join(rest),
    names,
    st.lists(st.sampled_from(FIELDS).map(lambda f: f"[{f}]" if f.isdigit() else f".{f}"), max_size=3),
)
literals = st.sampled_from(["'x'", "1", "2.5", "none", "[1, 2]", "{'a': 1}", "'%s-%d'", "10**5", "'ab' * 3"])
atoms = st.one_of(paths, literals)
expressions = st.recursive(
    st.builds(lambda atom, flt: f"{atom}{flt}", atoms, st.sampled_from(FILTERS)),
    lambda inner: st.one_of(
        st.builds(
            lambda a, op, b: f"({a} {op} {b})",
            inner,
            st.sampled_from(["~", "+", "*", "%", "==", "in"]),
            inner,
        ),
        st.builds(lambda a: f"{a} is defined", inner),
        st.builds(lambda a, b: f"({a} if {b} else 'no')", inner, inner),
    ),
    max_leaves=4,
)
blocks = st.recursive(
    st.one_of(
        st.sampled_from(["text ", "{{ name }} ", "\n"]),
        expressions.map(lambda e: "{{ " + e + " }}"),
    ),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map("".join),
        st.builds(
            lambda e, a, b: f"{{% if {e} %}}{a}{{% else %}}{b}{{% endif %}}", expressions, inner, inner
        ),
        st.builds(lambda e, body: f"{{% for x in {e} %}}{body}{{{{ x }}}}{{% endfor %}}", expressions, inner),
        st.builds(lambda body: f"{{% macro m(v) %}}{body}{{{{ v }}}}{{% endmacro %}}{{{{ m(1) }}}}", inner),
        st.builds(lambda e, body: f"{{% set s = {e} %}}{body}{{{{ s }}}}", expressions, inner),
    ),
    max_leaves=6,
)
values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False), st.text(max_size=6)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)
    ),
    max_leaves=10,
)
orders = st.builds(
    lambda changes: {**ORDER, **changes}, st.dictionaries(st.sampled_from(FIELDS), values, max_size=3)
)


def outcome(render: _render.Render, template: Any, context: dict[str, Any]) -> tuple[str, str]:
    try:
        return "text", render(template, dict(context))
    except Exception as exc:  # the comparison is the point: any error, same type and message
        return type(exc).__name__, str(exc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=blocks, order=orders)
def test_fast_and_reference_render_agree(text: str, order: dict[str, Any]) -> None:
    try:
        templates = Templates("order", flag=(text, "-t"), configured=None, names={"kind": "order"})
    except UsageError:
        return  # refused up front (over budget without data): no render to compare
    compiled = templates.for_event("complete")[0]
    context = {
        **compiled.base_context,
        "order": order,
        "address": order.get("shipping_address"),
        "name": "Joe",
        "phone": "+14155552671",
        "status": "complete",
    }
    fast = outcome(_render.render_fast, compiled.template, context)
    reference = outcome(_render.render_reference, compiled.template, context)
    event(f"outcome: {fast[0]}")
    assert fast == reference


@pytest.mark.parametrize(
    ("value", "reference"),
    [("", False), ("phone", False), ("render", True), ("all", True), ("json, render", True)],
)
def test_the_switch_back_to_the_reference(
    monkeypatch: pytest.MonkeyPatch, value: str, reference: bool
) -> None:
    monkeypatch.setenv("SMSPIPE_REFERENCE", value)
    assert (_render.chosen() is _render.render_reference) is reference


def test_a_run_through_the_reference_path_gives_the_same_output(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from smspipe.cli.app import app

    data = (ROOT / "samples" / "orders.ndjson").read_text()
    fast = CliRunner().invoke(app, ["translate", "order", "--json"], input=data)
    monkeypatch.setenv("SMSPIPE_REFERENCE", "render")
    reference = CliRunner().invoke(app, ["translate", "order", "--json"], input=data)
    assert fast.exit_code == reference.exit_code == 0
    assert fast.stdout == reference.stdout
