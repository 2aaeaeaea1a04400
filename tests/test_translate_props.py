"""Property tests for `smspipe translate`: generated hub objects never crash it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from smspipe import sms
from smspipe.cli.app import app
from smspipe.documents import Document
from smspipe.schemacheck import compile_check


@pytest.fixture(autouse=True)
def _isolated_env(bare_env: dict[str, str]) -> None:
    """Every test here runs in conftest's clean environment."""


# Names with accents, GSM-7 extension characters, emoji (some of several code
# points), controls and line separators.
PIECES = st.sampled_from(
    [
        *"abcxyzABC éèüñçÇøØåÆßÅÖ€[]{}^~|\\\"'\n\t\x07",
        "Joe",
        "Zoë",
        "😀",
        "👩\u200d👩\u200d👧",
        "🇺🇸",
        "Ω",
        "中",
        "\u200b",
        "\u2028",
    ]
)


def pieces(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.lists(PIECES, min_size=min_size, max_size=max_size).map("".join)


NAMES = st.one_of(pieces(12), st.none(), st.text(max_size=10), st.integers(-5, 5))
PHONES = st.one_of(
    st.sampled_from(
        [
            "(415) 555-2671",
            "+14155552671",
            "07911 123456",
            "0151 23456789",
            "06 12 34 56 78",
            "0000000000",
            "",
            "  ",
            "+",
            "(900) 234-5678",
            "whatsapp:+14155552671",
            "whatsapp:0790",
            "+44 7911 123456 ext. 5",
        ]
    ),
    st.text(max_size=20),
    st.none(),
    st.integers(0, 10**12),
)
COUNTRIES = st.one_of(
    st.sampled_from(["US", "GB", "DE", "FR", "gb", "Germany", "", "XX"]), st.none(), st.integers(0, 3)
)
AMOUNTS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**9), 10**9),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
)
STATUSES = st.one_of(
    st.sampled_from(["complete", "placed", "canceled", "cancelled", "shipped", "returned", "", "COMPLETE"]),
    pieces(6),
    st.none(),
    st.integers(0, 3),
)
IDS = st.one_of(
    pieces(8), st.integers(-(10**6), 10**6), st.none(), st.floats(allow_nan=False, allow_infinity=False)
)

ADDRESS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "firstname": NAMES,
            "lastname": NAMES,
            "phone": PHONES,
            "country": COUNTRIES,
            "city": NAMES,
        },
    ),
    st.none(),
    st.text(max_size=3),
)
ORDER = st.fixed_dictionaries(
    {},
    optional={
        "id": IDS,
        "status": STATUSES,
        "currency": st.one_of(
            st.sampled_from(["USD", "EUR", "GBP", "usd", "XYZ", ""]), st.none(), st.integers()
        ),
        "totals": st.one_of(st.fixed_dictionaries({}, optional={"order": AMOUNTS}), st.none(), AMOUNTS),
        "email": NAMES,
        "shipping_address": ADDRESS,
        "billing_address": ADDRESS,
        "line_items": st.one_of(st.lists(st.fixed_dictionaries({"name": NAMES}), max_size=2), st.none()),
    },
)
# Mostly translatable: an id and a valid phone for its country, the rest open.
GOOD_PHONES = st.sampled_from(
    [
        ("(415) 555-2671", "US"),
        ("+14155552671", None),
        ("07911 123456", "GB"),
        ("0151 23456789", "de"),
        ("06 12 34 56 78", "FR"),
        ("+447911123456", "Germany"),
    ]
)
GOOD_ADDRESS = st.builds(
    lambda pair, extra: {**extra, "phone": pair[0], "country": pair[1]},
    GOOD_PHONES,
    st.fixed_dictionaries({}, optional={"firstname": NAMES, "lastname": NAMES}),
)
GOOD_ORDER = st.builds(
    lambda ident, address, rest: {**rest, "id": ident, "shipping_address": address},
    st.one_of(pieces(8, min_size=1), st.integers(1, 10**9)),
    GOOD_ADDRESS,
    st.fixed_dictionaries(
        {},
        optional={
            "status": STATUSES,
            "currency": st.sampled_from(["USD", "EUR", "GBP", "JPY", None]),
            "totals": st.fixed_dictionaries({"order": st.floats(0, 10**7)}),
            "billing_address": ADDRESS,
            "email": NAMES,
        },
    ),
)

TEMPLATES = st.sampled_from(
    [
        None,
        "{{ name }}: {{ order.id }} {{ order.totals.order | money(order.currency) }}",
        "{{ order.shipping_address | first_name }} {{ address.city | default('') }} {{ status }}",
        "{% for item in order.line_items %}{{ item.name }} {% endfor %}{{ order.id }}",
    ]
)


def _documents(orders: list[Any], wrap: str) -> str:
    if wrap == "collection":
        return json.dumps({"orders": orders}, ensure_ascii=False)
    if wrap == "array":
        return json.dumps(orders, ensure_ascii=False)
    return "".join(
        json.dumps({"order": o} if wrap == "wrapped" else o, ensure_ascii=False) + "\n" for o in orders
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    orders=st.lists(st.one_of(GOOD_ORDER, ORDER), min_size=1, max_size=4),
    template=TEMPLATES,
    wrap=st.sampled_from(["wrapped", "bare", "collection", "array"]),
    max_segments=st.sampled_from([None, "1", "3"]),
)
def test_generated_orders_never_crash(
    orders: list[Any], template: str | None, wrap: str, max_segments: str | None
) -> None:
    args = ["translate", "order", "--shop-name", "Zoë's 😀 shop"]
    if template is not None:
        args += ["--template", template]
    if max_segments is not None:
        args += ["--max-segments", max_segments]
    result = CliRunner().invoke(app, args, input=_documents(orders, wrap).encode())
    assert result.exit_code in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    written = [json.loads(line) for line in result.stdout.splitlines()]
    failures = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("<stdin>:") and ": warning: " not in line
    ]
    assert len(written) + len(failures) == len(orders)
    event(f"translated {min(len(written), 2)}+, failed {min(len(failures), 2)}+")
    assert (result.exit_code == 1) == bool(failures)
    policy = sms.Policy(max_segments=int(max_segments) if max_segments else None)
    for document in written:
        [verdict] = sms.check(Document("-", 1, None, document), policy)
        assert verdict.valid, verdict.errors
        assert document["request_id"].startswith("order:")
        message = document["sms"]["message"]
        assert message == message.strip()
        assert not any(ord(c) < 32 and c != "\n" for c in message)


# --- the fast schema check agrees with jsonschema ----------------------------------

KEYS = st.sampled_from(
    [
        "id",
        "status",
        "phone",
        "country",
        "firstname",
        "lastname",
        "shipping_address",
        "billing_address",
        "totals",
        "tracking",
        "order_id",
        "email",
        "currency",
        "line_items",
        "x",
    ]
)
JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["", "a", "+14155552671"]),
    ),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(KEYS, children, max_size=5)),
    max_leaves=25,
)
# Values at the schema's edges: "" vs "x", 1 vs 1.0 vs 1.5 vs True, null, wrong types.
EDGE: st.SearchStrategy[Any] = st.sampled_from(["", "x", "+14155552671", 1, 1.0, 1.5, 0, True, None, [], {}])
ADDRESS_VALUE = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"phone": EDGE, "country": EDGE, "firstname": EDGE, "lastname": EDGE, "x": EDGE}
    ),
    EDGE,
)
VALID_BASE = {"id": "R1", "shipping_address": {"phone": "x"}}
FIELDS = st.sampled_from(
    [
        "id",
        "status",
        "tracking",
        "order_id",
        "firstname",
        "currency",
        "totals",
        "line_items",
        "email",
        "shipping_address",
        "billing_address",
        "x",
    ]
)
# A valid object with zero to three fields changed to edge values.
NEAR_VALID = st.builds(
    lambda changes: {**VALID_BASE, **changes},
    st.dictionaries(FIELDS, st.one_of(EDGE, ADDRESS_VALUE), max_size=3),
)


@pytest.mark.parametrize("kind", ["order", "customer", "shipment"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(JSON, NEAR_VALID))
def test_fast_schema_check_agrees_with_jsonschema(kind: str, value: Any) -> None:
    schema = sms.load_schema(kind)
    fast = compile_check(schema)
    assert fast is not None
    expected = Draft202012Validator(schema).is_valid(value)
    event(f"valid: {expected}")
    assert fast(value) == expected


def test_fast_check_declines_keywords_it_does_not_know() -> None:
    assert compile_check({"type": "object", "maxProperties": 3}) is None
    assert compile_check({"patternProperties": {"^x": {"type": "string"}}}) is None
    assert compile_check({"$ref": "other.json"}) is None
