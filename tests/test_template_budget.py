"""Template budgets (issue 11, item 7): a hostile template costs one object, or stops the run.

Every payload of the issue, and what else a template author could try, runs
through `smspipe translate` as a user would run it. A render over its budget
fails that object with one line and exit 1; a template over its budget
whatever the data stops the run before any output with exit 2. Never a
traceback, never exit 70, never unbounded.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smspipe._sandbox import MAX_STEPS, MAX_VALUE
from smspipe.cli.app import app
from smspipe.translate import Options, Translator

pytestmark = pytest.mark.usefixtures("bare_env")

ROOT = Path(__file__).resolve().parent.parent
ORDER = json.loads((ROOT / "samples" / "order.json").read_text())["order"]


def orders(count: int = 3, **fields: Any) -> str:
    return "".join(json.dumps({"order": {**ORDER, "id": f"R{n}", **fields}}) + "\n" for n in range(count))


def translate(template: str, data: str | None = None) -> Any:
    return CliRunner().invoke(app, ["translate", "order", "-t", template], input=data or orders())


def assert_no_crash(result: Any) -> None:
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr


# Broken whatever the data: found by a render without data when the template
# is compiled, so the run stops before it starts.
BROKEN_FOR_ALL = [
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
    "{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(1) }}",
    "{% macro r(n) %}{% if n %}{{ r(n-1) }}{{ r(n-1) }}{% endif %}x{% endmacro %}{{ r(40) }}",
    "{{ lipsum(n=10**8) }}",
    "{{ order.line_items | slice(10**9) }}",
    "{{ 'x' | center(10**9) }}",
    "{{ 'x' | indent(10**9) }}",
    "{{ '%01000000000d' | format(1) }}",
    "{{ '%01000000000d' % 1 }}",
    "{{ '{:>1000000000}'.format('x') }}",
    "{{ '{0:{1}}'.format('x', 10**9) }}",
    "{{ '{:.1000000000f}'.format(1.5) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l * 2 %}{% endfor %}",
    "{% set ns = namespace(n=2) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "{{ ('x' * 10000) | replace('x', 'x' * 10000) }}",
    "{{ ('x' * 10000).replace('x', 'x' * 10000) }}",
    "{{ ('x ' * 50000) | wordwrap(1) }}",
    "{{ range(100000) | join }}",
    "{{ range(99999) | map('string') | join('x' * 1000) }}",
    "{{ ('x' * 99999) * 99999 }}",
    "{{ [1] * 10**9 }}",
    "{{ 'ab' ~ 'x' * 99999 ~ 'x' * 99999 }}",
    "{{ range(100000) | batch(10**9, 'x') | list }}",
    "{{ ([[1] * 1000] * 1000) | sum(start=[]) }}",
    "{{ ([order] * 10000) | pprint }}",
    "{{ ([order] * 10000) | tojson }}",
    "{{ order | tojson(indent=10**9) }}",
    "{{ (['x' * 99999] * 10) | string }}",
    "{{ (['x' * 99999] * 10) | upper }}",
    "{{ (['x' * 99999] * 10) ~ '' }}",
    "{{ ['x' * 99999] * 10 }}",
    "{{ '%s' % ((['x' * 99999] * 10),) }}",
    "{{ '{}'.format(['x' * 99999] * 10) }}",
    "{{ ('&' * 99999) | escape }}",
    "{{ {'a': '&' * 99999} | xmlattr }}",
    "{{ ('x' * 99999) | urlize }}",
    "{{ 2 ** 100000 }}",
    "{{ '{:,}'.format(10**5000) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ '\\t'.expandtabs(10**9) }}",
    "{{ 'a'.join(['x'] * 100000) }}",
    "{{ 'x'.translate({120: 'y' * 10**6}) }}",
    "{% for i in [1] recursive %}{{ loop(range(99999)) }}{% endfor %}",
    "{% set x %}{% for i in range(99999) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}{{ x | length }}",
    "{% filter upper %}{% for i in range(99999) %}{{ 'y' * 1000 }}{% endfor %}{% endfilter %}",
    "{% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}"
    "{% call m() %}{% call m() %}{% call m() %}{{ 'x' * 99999 }}{% endcall %}{% endcall %}{% endcall %}",
    "{% for i in range(100000) %}{{ i }}{% endfor %}",
]


@pytest.mark.parametrize("template", BROKEN_FOR_ALL)
def test_a_template_over_budget_whatever_the_data_stops_the_run_up_front(template: str) -> None:
    result = translate(template)
    assert_no_crash(result)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("smspipe: error: --template: template exceeded its budget even without data: ")


# Over budget only for some data: that object fails, the others go on.
@pytest.mark.parametrize(
    "template",
    [
        "{% for x in order.line_items %}{% for i in range(99999) %}{% endfor %}{% endfor %}{{ order.id }}",
        "{{ order.id }}{{ order.note * 10**9 if order.note is defined else '' }}",
        "{{ order.id }}{% for x in order.line_items %}{{ x.name | center(10**6) }}{% endfor %}",
    ],
)
def test_a_render_over_budget_fails_that_object_and_the_others_go_on(template: str) -> None:
    items = [{"name": "a"}, {"name": "b"}]
    data = orders(2, line_items=[]) + json.dumps(
        {"order": {**ORDER, "id": "BIG", "note": "n", "line_items": items}}
    )
    result = translate(template, data)
    assert_no_crash(result)
    assert result.exit_code == 1, result.stderr
    assert [d["request_id"] for d in map(json.loads, result.stdout.splitlines())] == [
        "order:R0:complete",
        "order:R1:complete",
    ]
    [failure] = [line for line in result.stderr.splitlines() if line.startswith("<stdin>:3:")]
    assert failure.startswith("<stdin>:3: order BIG: template exceeded its budget: ")
    assert "(template --template)" in failure


def test_a_template_over_budget_for_each_of_its_first_objects_stops_the_run() -> None:
    template = "{% for k in order %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    result = translate(template, orders(10))
    assert_no_crash(result)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0] for line in lines[:2]] == ["<stdin>:1", "<stdin>:2"]
    assert lines[-1].startswith(
        "smspipe: error: --template: template exceeded its budget for each of the first 3 objects"
    )


def test_a_template_that_once_rendered_is_never_stopped_by_later_objects() -> None:
    template = "{{ order.id }}{% for x in order.line_items %}{{ 'x' * (10**6 if x.big else 1) }}{% endfor %}"
    big = {"line_items": [{"big": True}]}
    small = {"line_items": [{"big": False}]}
    data = orders(1, **small) + orders(4, **big).replace('"R', '"B')
    result = translate(template, data)
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 1
    assert len([line for line in result.stderr.splitlines() if "exceeded its budget" in line]) == 4


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'abc' | truncate(-5) }}", "truncate: length -5 is shorter than the end marker"),
        ("{{ 'abc' | truncate(5, leeway=-1) }}", "truncate: leeway -1 must not be negative"),
        ("{{ 10**400 / 3 }}", "too large"),
        ("{{ range(10**10) }}", "Range too big"),
        ("{% include 'x' %}", "no loader"),
        ("{{ '%s%s' % ('a',) }}", "not enough arguments"),
    ],
)
def test_a_template_error_is_one_line_for_each_object(template: str, message: str) -> None:
    result = translate(template)
    assert_no_crash(result)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 4  # three objects, then the summary
    assert lines[0].startswith("<stdin>:1: order R0: template --template failed: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("{% for x in order.line_items %}{{ x.name }}; {% endfor %}", "Spree T-Shirt;"),
        ("{{ '%05.1f' | format(order.totals.order) }}", "210.0"),
        ("{{ '[{:>8}|{:<4}]'.format(order.id[:3], 'x') }}", "[      R0|x   ]"),
        ("{{ (order.id ~ '-') * 3 }}", "R0-R0-R0-"),
        ("{{ order.line_items | map(attribute='name') | join(', ') | upper }}", "SPREE T-SHIRT"),
        ("{{ range(3) | list | sum }} {{ [1, 2] + [3] }}", "3 [1, 2, 3]"),
        ("{{ lipsum(1, html=False, min=3, max=4) | wordcount > 0 }}", "True"),
        ("{% macro hi(n) %}Hi {{ n }}{% endmacro %}{{ hi(name) }}", "Hi Joe"),
        ("{{ order | dictsort | length }} {{ order.id | center(6) | trim }}", "R0"),
        ("{% for i in range(2) recursive %}{{ i }}{% endfor %}", "01"),
    ],
)
def test_ordinary_templates_render_within_the_budget(template: str, text: str) -> None:
    result = CliRunner().invoke(app, ["translate", "order", "-t", template], input=orders(1))
    assert result.exit_code == 0, result.stderr
    assert text in json.loads(result.stdout)["sms"]["message"]


def test_the_limits_are_what_the_readme_says() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"{MAX_STEPS:,} steps" in readme
    assert f"{MAX_VALUE:,} characters" in readme


def test_one_translator_serves_two_threads() -> None:
    """Renders share no state: each thread gets the text, and the missing-field
    message, of its own objects (a class attribute holding "the" render context
    would mix them up)."""
    translator = Translator(Options(kind="order", template=("{{ name }} {{ order.extra.note }}", "-t")))
    from smspipe.documents import Document

    def objects(tag: str) -> list[Document]:
        found = []
        for n in range(2000):
            value: dict[str, Any] = {**ORDER, "id": f"{tag}{n}"}
            value["shipping_address"] = {**ORDER["shipping_address"], "firstname": f"{tag}name{n}"}
            if n % 2:
                value["extra"] = {"note": f"{tag}note{n}"}
            else:
                value["extra"] = {tag: 1}
            found.append(Document("-", n + 1, None, {"order": value}))
        return found

    results: dict[str, list[str]] = {}

    def work(tag: str) -> None:
        texts = []
        for outcome in translator.run(objects(tag)):
            texts.append(outcome.request["sms"]["message"] if outcome.request else str(outcome.error))
        results[tag] = texts

    threads = [threading.Thread(target=work, args=(tag,)) for tag in ("A", "B")]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    for tag in ("A", "B"):
        _assert_own_texts(tag, results[tag])


def _assert_own_texts(tag: str, texts: list[str]) -> None:
    for n, text in enumerate(texts):
        if n % 2:
            assert text == f"{tag}name{n} {tag}note{n}"
        else:
            assert "order.extra.note is missing" in text, text
            assert f"{tag}name" not in text
