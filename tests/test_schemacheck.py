"""The compiled schema check answers exactly as jsonschema's is_valid does."""

from __future__ import annotations

import copy
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from smspipe import sms
from smspipe._schema_compile import compile_check, json_equal
from smspipe.schemacheck import Schema

ROOT = Path(__file__).resolve().parent.parent


def envelope_schema() -> dict[str, Any]:
    """What sms.check checks a request's other keys against (request without sms)."""
    schema = copy.deepcopy(sms.load_schema("request"))
    del schema["properties"]["sms"]
    schema["required"] = []
    return schema


def agree(schema: dict[str, Any], value: Any) -> bool:
    """Assert that the compiled check says what jsonschema says; return that."""
    fast = compile_check(schema)
    assert fast is not None
    expected = Draft202012Validator(schema).is_valid(value)
    assert fast(value) is expected, (schema, value)
    return expected


# --- values at the edges of our schemas ------------------------------------------------

LONG = 1600
URLS = [
    "http://x",
    "https://example.com/a.png",
    "HTTPS://A/b",
    "hTtP://h",
    "ftp://x",
    "http://",
    "http:///x",
    "http:// x",
    "http://\u00a0x",
    "http://\u2003x",
    " http://x",
    "xhttp://x",
    "http://x\n",
    "https//x",
    "http:\\\\x",
    "http://😀",
]
STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "a",
            "x" * LONG,
            "x" * (LONG + 1),
            "😀" * LONG,
            "😀" * (LONG + 1),
            "é" * LONG,
            "e\u0301" * 800,
            "+14155552671",
            "whatsapp:+14155552671",
            "\u0000",
            "\u2028",
            "AC" + "a" * 32,
            "AC" + "0" * 32,
            "AC" + "g" * 32,
            "SK" + "F" * 32,
            "MG" + "1" * 32,
            "MG" + "1" * 31,
            "ac" + "1" * 32,
            "AC" + "1" * 32 + "\n",
            "AC" + "1" * 33,
            *URLS,
        ]
    ),
    st.text(max_size=20),
    st.text(alphabet="AaCcSsKkMmGg0123456789abcdefABCDEFxyz", min_size=30, max_size=36),
)
# true is not an integer, 1.0 is, 1.5 is not; null is nothing but null
SCALARS = st.one_of(
    st.sampled_from([None, True, False, 0, 1, -1, 1.0, 1.5, -0.0, 2**70, 1e300]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
EDGE: st.SearchStrategy[Any] = st.one_of(STRINGS, SCALARS, st.just([]), st.just({}))
JSON = st.recursive(
    EDGE,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    [
                        "phone",
                        "message",
                        "from",
                        "id",
                        "media_url",
                        "status_callback",
                        "x",
                        "Phone",
                        "request_id",
                        "parameters",
                        "twilio_account_sid",
                        "shipping_address",
                        "country",
                    ]
                ),
                st.text(max_size=3),
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


def near(
    base: dict[str, Any],
    fields: list[str],
    values: st.SearchStrategy[Any],
    changes: int = 4,
    *,
    unknown: bool = True,
) -> Any:
    """A valid document with up to *changes* fields changed, added or (*unknown*: also
    unknown ones) removed."""
    keys = [*fields, "x", "Message"] if unknown else fields
    edits = st.dictionaries(
        st.sampled_from(keys), st.one_of(values, st.just(REMOVE)) if unknown else values, max_size=changes
    )

    def apply(change: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in change.items():
            if value is REMOVE:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    return edits.map(apply)


REMOVE = object()
SMS_FIELDS = ["id", "from", "phone", "message", "media_url", "status_callback"]
MEDIA = st.lists(st.one_of(st.sampled_from(URLS), EDGE), max_size=12)
SMS_VALUES = st.one_of(EDGE, MEDIA)
SMS_DOCS = st.one_of(
    near({"phone": "+14155552671", "message": "hi"}, SMS_FIELDS, SMS_VALUES),
    near(
        {"phone": "+14155552671", "message": "hi"},
        SMS_FIELDS,
        st.one_of(STRINGS, st.lists(st.sampled_from(URLS), max_size=11)),
        changes=2,
        unknown=False,
    ),
    near(
        {
            "phone": "+14155552671",
            "message": "hi",
            "from": "Shop",
            "id": 7,
            "media_url": ["https://x/a.png"],
            "status_callback": "https://x/cb",
        },
        SMS_FIELDS,
        SMS_VALUES,
    ),
    JSON,
)

PARAMETER_KEYS = [
    "twilio_account_sid",
    "twilio_auth_token",
    "twilio_api_key",
    "twilio_api_secret",
    "twilio_messaging_service_sid",
]
PARAMETERS = st.one_of(
    near({"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": "t"}, PARAMETER_KEYS, STRINGS),
    near({}, PARAMETER_KEYS, EDGE),
    EDGE,
)
ENVELOPES = st.one_of(
    near({"request_id": "r1"}, ["request_id", "parameters"], PARAMETERS, changes=1, unknown=False),
    near({"request_id": "r1"}, ["request_id", "parameters"], st.one_of(EDGE, PARAMETERS)),
    near(
        {"request_id": "r1", "parameters": {"twilio_api_key": "SK" + "a" * 32}},
        ["request_id", "parameters"],
        st.one_of(EDGE, PARAMETERS),
    ),
    JSON,
)

ADDRESS = st.one_of(
    near({"phone": "+14155552671", "country": "US"}, ["phone", "country", "firstname", "lastname"], EDGE),
    EDGE,
)
HUB_FIELDS = [
    "id",
    "status",
    "tracking",
    "order_id",
    "firstname",
    "lastname",
    "currency",
    "totals",
    "line_items",
    "email",
    "placed_on",
    "shipping_method",
    "shipped_at",
    "shipping_address",
    "billing_address",
]
HUB_DOCS = st.one_of(
    near({"id": "R1", "shipping_address": {"phone": "x"}}, HUB_FIELDS, st.one_of(EDGE, ADDRESS)),
    near(
        {"id": 5, "billing_address": {"phone": "+1", "country": None}, "shipping_address": None},
        HUB_FIELDS,
        st.one_of(EDGE, ADDRESS),
    ),
    JSON,
)

SETTINGS = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.differential
@SETTINGS
@given(value=SMS_DOCS)
def test_sms_schema(value: Any) -> None:
    event(f"valid: {agree(sms.load_schema('sms'), value)}")


@pytest.mark.differential
@SETTINGS
@given(value=ENVELOPES)
def test_request_envelope_schema(value: Any) -> None:
    event(f"valid: {agree(envelope_schema(), value)}")


@pytest.mark.differential
@pytest.mark.parametrize("kind", ["order", "customer", "shipment"])
@SETTINGS
@given(value=HUB_DOCS)
def test_hub_schemas(kind: str, value: Any) -> None:
    event(f"valid: {agree(sms.load_schema(kind), value)}")


@pytest.mark.differential
@pytest.mark.parametrize(
    "value",
    [
        {"phone": "+1", "message": "x" * LONG},
        {"phone": "+1", "message": "😀" * LONG},  # code points, not UTF-16 units
        {"phone": "+1", "message": "x" * (LONG + 1)},
        {"phone": "+1", "message": "m", "id": True},
        {"phone": "+1", "message": "m", "id": 1.0},
        {"phone": "+1", "message": "m", "id": 1.5},
        {"phone": "+1", "message": "m", "media_url": ["http://x"] * 10},
        {"phone": "+1", "message": "m", "media_url": ["http://x"] * 11},
        {"phone": "+1", "message": "m", "media_url": ["http:// x"]},
        {"phone": "+1", "message": "m", "status_callback": "Https://x"},
        {"phone": "+1", "message": "m", "status_callback": "https://\u00a0"},
        {"phone": "", "message": "m"},
        {"phone": "+1", "message": "m", "extra": 1},
        {"phone": "+1"},
        ["phone", "message"],
    ],
)
def test_sms_schema_examples(value: Any) -> None:
    agree(sms.load_schema("sms"), value)


# --- every keyword of the subset, on generated schemas -------------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
TYPES = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])
SMALL = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([1.0, 0.5, -0.0]),
    st.sampled_from(["", "a", "ab", "😀"]),
)
SMALL_JSON = st.recursive(
    SMALL,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(KEYS, children, max_size=3)),
    max_leaves=8,
)
LEAF_SCHEMAS = st.one_of(
    st.booleans(),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(TYPES, st.lists(TYPES, min_size=1, max_size=3)),
            "minLength": st.integers(0, 3),
            "maxLength": st.integers(0, 3),
            "pattern": st.sampled_from(["^a", "b$", "^\\s", "a|b", "😀"]),
            "minItems": st.integers(0, 3),
            "maxItems": st.integers(0, 3),
            "required": st.lists(KEYS, max_size=2),
            "minimum": st.sampled_from([0, 1, 1.5, -1]),
            "maximum": st.sampled_from([0, 1, 2.5]),
            "exclusiveMinimum": st.sampled_from([0, 1, -0.5]),
            "exclusiveMaximum": st.sampled_from([1, 2, 0.5]),
            "enum": st.lists(SMALL_JSON, max_size=3),
            "const": SMALL_JSON,
            "description": st.just("ignored"),
        },
    ),
)
INNER_SCHEMAS = st.recursive(
    LEAF_SCHEMAS,
    lambda children: st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "type": TYPES,
                "properties": st.dictionaries(KEYS, children, max_size=2),
                "additionalProperties": children,
                "items": children,
                "anyOf": st.lists(children, min_size=1, max_size=3),
                "allOf": st.lists(children, min_size=1, max_size=3),
                "oneOf": st.lists(children, min_size=1, max_size=3),
                "not": children,
                "required": st.lists(KEYS, max_size=2),
            },
        ),
    ),
    max_leaves=6,
)
SCHEMAS = st.one_of(
    INNER_SCHEMAS,
    # $ref at the root (beside other keywords) and below it
    st.builds(
        lambda sub, top: {**top, "$defs": {"d": sub}, "$ref": "#/$defs/d"},
        INNER_SCHEMAS,
        st.fixed_dictionaries({}, optional={"type": TYPES}),
    ),
    st.builds(
        lambda sub: {
            "$defs": {"d": sub},
            "properties": {"a": {"$ref": "#/$defs/d"}},
            "items": {"$ref": "#/$defs/d"},
        },
        INNER_SCHEMAS,
    ),
)


@pytest.mark.differential
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=SCHEMAS, value=SMALL_JSON)
def test_generated_schemas(schema: Any, value: Any) -> None:
    fast = compile_check(schema)
    if fast is None:
        event("declined")
        return
    expected = Draft202012Validator(schema).is_valid(value)
    event(f"valid: {expected}")
    assert fast(value) is expected, (schema, value)


@pytest.mark.differential
@given(one=SMALL_JSON, two=SMALL_JSON)
def test_json_equal_is_jsonschemas_equal(one: Any, two: Any) -> None:
    from jsonschema._utils import equal

    assert json_equal(one, two) == equal(one, two)


@pytest.mark.differential
@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        1,
        2,
        5,
        10,
        11,
        1.0,
        1.5,
        10.0,
        -3,
        "5",
        [5],
        {"a": 5},
        Decimal("5.5"),
        Fraction(1, 3),
    ],
)
@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "minimum": 1, "maximum": 10},
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
        {"minimum": 1},  # numbers only: anything else passes
        {"type": ["integer", "null"], "minimum": 1},
        {"type": "number"},
        {"type": "integer"},
    ],
)
def test_numeric_bounds(schema: dict[str, Any], value: Any) -> None:
    agree(schema, value)


def test_config_schemas_compile() -> None:
    """config's key schemas are in the subset (config or send may use Schema for them)."""
    from smspipe import config

    assert compile_check(config.config_schema()) is not None
    for key in config.KEYS.values():
        assert compile_check(key.schema) is not None, key


def test_declines_what_it_does_not_compile() -> None:
    assert compile_check({"type": "object", "maxProperties": 3}) is None
    assert compile_check({"patternProperties": {"^x": {}}, "additionalProperties": False}) is None
    assert compile_check({"$ref": "sms.json"}) is None
    assert compile_check({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}) is None
    assert compile_check({"type": "decimal"}) is None
    assert compile_check({"format": "email"}) is None
    assert compile_check({"minimum": True}) is None
    assert compile_check({"multipleOf": 2}) is None
    assert compile_check({"properties": {"a": {"$id": "x"}}}) is None


def test_schema_falls_back_to_jsonschema_and_explains() -> None:
    schema = Schema({"type": "object", "maxProperties": 1})
    assert schema.is_valid({"a": 1})
    assert not schema.is_valid({"a": 1, "b": 2})
    [error] = schema.iter_errors({"a": 1, "b": 2})
    assert error.validator == "maxProperties"


def test_schema_issues_unchanged() -> None:
    issues = sms.schema_issues(sms._validator("sms"), {"phone": 5, "mesage": "hi"}, "sms")
    assert [str(i) for i in issues] == [
        "sms.message: required field is missing",
        "sms.mesage: unknown field; did you mean 'message'?",
        "sms.phone: must be a string, got a number",
    ]


def test_valid_documents_never_import_jsonschema(bare_env: dict[str, str]) -> None:
    """`validate` and `translate` of valid input start without jsonschema's ~45 ms import."""
    code = (
        "import sys\n"
        "from smspipe.cli.app import main\n"
        "sys.argv = ['smspipe', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code in (0, None), exit\n"
        "assert 'jsonschema' not in sys.modules, 'jsonschema was imported'\n"
    )
    for args in (["validate", "samples/sms.json"], ["translate", "order", "samples/order.json"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            env=bare_env,
        )
        assert proc.returncode == 0, proc.stderr
