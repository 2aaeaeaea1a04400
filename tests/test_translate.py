"""`smspipe translate`: shapes, recipients, templates, overrides, sandbox, output, pipes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from typer.testing import CliRunner

from smspipe import encoding
from smspipe.cli.app import app
from smspipe.translate import clean_text, first_name, money

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
HUB = ROOT.parent / "shared" / "reference" / "hub-objects"  # the Wombat samples, read-only
SMSPIPE = Path(sys.executable).parent / "smspipe"


@pytest.fixture(autouse=True)
def _isolated_env(bare_env: dict[str, str]) -> None:
    """Every test here runs in conftest's clean environment."""


def run(*args: str | Path, input: str | bytes | None = None) -> Any:
    return CliRunner().invoke(app, ["translate", *[str(a) for a in args]], input=input)


def out(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def ndjson(*docs: Any) -> str:
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)


def sample(kind: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((SAMPLES / f"{kind}.json").read_text())[kind]
    return value


def order(**fields: Any) -> dict[str, Any]:
    value = sample("order")
    value.update(fields)
    return value


def with_phone(
    obj: dict[str, Any], shipping: Any = None, billing: Any = None, country: str | None = "US"
) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    for key, number in (("shipping_address", shipping), ("billing_address", billing)):
        obj[key]["phone"] = number
        obj[key]["country"] = country
    return obj


def canonical(kind: str, tmp_path: Path) -> Path:
    """The hub's canonical sample; outside this workspace, our sample with its placeholders."""
    path = HUB / f"{kind}.json"
    if path.exists():
        return path
    document = json.loads((SAMPLES / f"{kind}.json").read_text())
    for key in ("shipping_address", "billing_address"):
        document[kind][key]["phone"] = "0000000000"
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(document, indent=2))
    return path


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def assert_clean_stderr(result: Any) -> None:
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr


# --- input shapes ------------------------------------------------------------

ORDER_A = order(id="R1", status="complete")
ORDER_B = order(id="R2", status="canceled")


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        (json.dumps({"order": ORDER_A}), ["R1"]),
        (json.dumps({"orders": [ORDER_A, ORDER_B]}), ["R1", "R2"]),
        (json.dumps(ORDER_A), ["R1"]),
        (json.dumps([ORDER_A, ORDER_B]), ["R1", "R2"]),
        (json.dumps([{"order": ORDER_A}, {"order": ORDER_B}]), ["R1", "R2"]),
        (ndjson({"order": ORDER_A}, ORDER_B), ["R1", "R2"]),
        (json.dumps({"orders": [ORDER_A, ORDER_B]}, indent=2), ["R1", "R2"]),
        ("\ufeff" + json.dumps({"order": ORDER_A}), ["R1"]),
        (json.dumps({"request_id": "hub-1", "order": ORDER_A}), ["R1"]),
    ],
    ids=[
        "wrapped",
        "collection",
        "bare",
        "array",
        "array-of-wrapped",
        "ndjson",
        "pretty",
        "bom",
        "hub-envelope",
    ],
)
def test_every_input_shape(text: str, ids: list[str]) -> None:
    result = run("order", input=text.encode())
    assert result.exit_code == 0, result.stderr
    assert [d["request_id"].split(":")[1] for d in out(result)] == ids


def test_paths_and_stdin_dash(tmp_path: Path) -> None:
    first = tmp_path / "a.json"
    first.write_text(json.dumps({"order": ORDER_A}))
    result = run("order", first, "-", input=ndjson(ORDER_B))
    assert result.exit_code == 0, result.stderr
    assert [d["request_id"] for d in out(result)] == ["order:R1:complete", "order:R2:canceled"]


def test_empty_input_is_zero_objects() -> None:
    result = run("order", input="")
    assert result.exit_code == 0
    assert result.stdout == ""


def test_malformed_line_is_reported_and_the_rest_translated() -> None:
    text = ndjson(ORDER_A) + '{"order": {"id": \n' + ndjson(ORDER_B)
    result = run("order", input=text)
    assert result.exit_code == 1
    assert [d["request_id"] for d in out(result)] == ["order:R1:complete", "order:R2:canceled"]
    assert result.stderr.startswith("<stdin>:2: invalid JSON")
    assert_clean_stderr(result)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("order", tmp_path / "nope.json")
    assert result.exit_code == 2
    assert "no such file" in result.stderr
    assert result.stdout == ""


def test_unknown_kind_is_a_usage_error() -> None:
    result = run("invoice", input="{}")
    assert result.exit_code == 2


def test_item_that_is_not_an_object() -> None:
    result = run("order", input=json.dumps({"orders": [ORDER_A, 7]}))
    assert result.exit_code == 1
    assert len(out(result)) == 1
    assert "<stdin>:1: orders[1]: order: not a valid order: must be an object" in result.stderr


def test_object_without_id() -> None:
    obj = order()
    del obj["id"]
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 1
    assert "id: required field is missing" in result.stderr
    assert "smspipe schema order" in result.stderr


def test_wrong_kind_says_which_command_to_run() -> None:
    result = run("order", SAMPLES / "customer.json")
    assert result.exit_code == 1
    assert "looks like a customer document" in result.stderr
    assert "smspipe translate customer" in result.stderr


def test_ill_typed_field_names_its_path() -> None:
    result = run("order", input=json.dumps(order(status=["complete"])))
    assert result.exit_code == 1
    assert "status: must be a string or null, got an array" in result.stderr


# --- the hub's canonical samples ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "ident"), [("order", "R154085346"), ("customer", "a123"), ("shipment", "12836")]
)
def test_canonical_placeholder_phones_are_refused(kind: str, ident: str, tmp_path: Path) -> None:
    path = canonical(kind, tmp_path)
    result = run(kind, path)
    assert result.exit_code == 1
    assert result.stdout == ""
    [line, summary] = result.stderr.splitlines()
    assert line.startswith(
        f"{path}:1: {kind} {ident}: no usable phone: "
        "shipping_address.phone '0000000000' is not a valid phone number "
        "for US; billing_address.phone '0000000000' is not a valid phone"
    )
    assert "E.164" in line  # says how to fix it
    assert summary == f"1 {kind}: 0 translated, 1 failed"


def test_canonical_samples_pass_the_schema(tmp_path: Path) -> None:
    from jsonschema import Draft202012Validator

    from smspipe.sms import load_schema

    for kind in ("order", "customer", "shipment"):
        schema = load_schema(kind)
        Draft202012Validator.check_schema(schema)
        hub = json.loads(canonical(kind, tmp_path).read_text())[kind]
        assert Draft202012Validator(schema).is_valid(hub)
        assert not Draft202012Validator(schema).is_valid({"id": "x"})  # a phone is required


@pytest.mark.parametrize("kind", ["order", "customer", "shipment"])
def test_schema_command_prints_each_kind(kind: str) -> None:
    result = CliRunner().invoke(app, ["schema", kind])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["required"] == ["id"]
    assert schema["additionalProperties"] is True


# --- recipients -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "national", "e164"),
    [
        ("US", "(415) 555-2671", "+14155552671"),
        ("GB", "07911 123456", "+447911123456"),
        ("DE", "0151 23456789", "+4915123456789"),
        ("FR", "06 12 34 56 78", "+33612345678"),
        ("AU", "0412 345 678", "+61412345678"),
        ("ES", "612 345 678", "+34612345678"),
        ("NL", "06 12345678", "+31612345678"),
        ("gb", "07911 123456", "+447911123456"),
        ("DE", "+1 415 555 2671", "+14155552671"),
    ],
)
def test_phone_is_read_in_the_address_country(country: str, national: str, e164: str) -> None:
    assert phonenumbers.is_valid_number(phonenumbers.parse(e164))
    obj = with_phone(order(), shipping=national, billing=None, country=country)
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 0, result.stderr
    assert out(result)[0]["sms"]["phone"] == e164


def test_falls_back_to_billing_when_shipping_has_no_phone() -> None:
    obj = with_phone(order(), shipping="", billing="07911 123456", country="GB")
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 0, result.stderr
    assert out(result)[0]["sms"]["phone"] == "+447911123456"


def test_falls_back_to_billing_when_shipping_phone_is_invalid() -> None:
    obj = with_phone(order(), shipping="0000000000", billing="(415) 555-2672")
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 0, result.stderr
    assert out(result)[0]["sms"]["phone"] == "+14155552672"


def test_falls_back_when_there_is_no_shipping_address() -> None:
    obj = with_phone(order(), billing="(415) 555-2672")
    del obj["shipping_address"]
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 0, result.stderr
    assert out(result)[0]["sms"]["phone"] == "+14155552672"


def test_address_flag_and_config_pick_billing_first(tmp_path: Path) -> None:
    obj = with_phone(order(), shipping="(415) 555-2671", billing="(415) 555-2672")
    assert out(run("order", input=json.dumps(obj)))[0]["sms"]["phone"] == "+14155552671"
    result = run("order", "--address", "billing", input=json.dumps(obj))
    assert out(result)[0]["sms"]["phone"] == "+14155552672"
    config = write_config(tmp_path, "address: billing\n")
    result = run("order", "--config", config, input=json.dumps(obj))
    assert out(result)[0]["sms"]["phone"] == "+14155552672"
    result = run("order", "--config", config, "--address", "shipping", input=json.dumps(obj))
    assert out(result)[0]["sms"]["phone"] == "+14155552671"


def test_bad_address_choice_is_a_usage_error() -> None:
    result = run("order", "--address", "home", input=json.dumps(ORDER_A))
    assert result.exit_code == 2


def test_address_context_is_the_chosen_address() -> None:
    obj = with_phone(order(), shipping=None, billing="07911 123456", country="GB")
    obj["billing_address"]["city"] = "London"
    result = run("order", "-t", "{{ address.city }} {{ phone }}", input=json.dumps(obj))
    assert out(result)[0]["sms"]["message"] == "London +447911123456"


def test_without_country_the_default_region_is_used(tmp_path: Path) -> None:
    obj = with_phone(order(), shipping="07911 123456", country=None)
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 1
    assert "is not a valid phone number for US" in result.stderr
    result = run("order", "--region", "GB", input=json.dumps(obj))
    assert result.exit_code == 0, result.stderr
    assert out(result)[0]["sms"]["phone"] == "+447911123456"
    config = write_config(tmp_path, "default_region: GB\n")
    assert out(run("order", "--config", config, input=json.dumps(obj)))[0]["sms"]["phone"] == "+447911123456"


def test_country_that_is_not_an_iso_code_is_named_in_the_error() -> None:
    obj = with_phone(order(), shipping="0151 23456789", country="Germany")
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 1
    assert "country 'Germany' is not a two-letter ISO code; read as US" in result.stderr


def test_unknown_region_flag_is_a_usage_error() -> None:
    result = run("order", "--region", "XX", input=json.dumps(ORDER_A))
    assert result.exit_code == 2
    assert "unknown region" in result.stderr


def test_no_address_at_all() -> None:
    obj = {"id": "R9", "status": "complete"}
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 1
    assert (
        "order R9: no usable phone: no shipping_address; no billing_address; put a valid "
        "number in shipping_address.phone"
    ) in result.stderr


def test_premium_rate_and_allowed_countries_are_refused(tmp_path: Path) -> None:
    premium = with_phone(order(id="R7"), shipping="(900) 234-5678")
    result = run("order", input=json.dumps(premium))
    assert result.exit_code == 1
    assert "premium-rate" in result.stderr
    config = write_config(tmp_path, "allowed_countries: [US]\n")
    uk = with_phone(order(id="R8"), shipping="07911 123456", country="GB")
    result = run("order", "--config", config, input=ndjson(uk, ORDER_A))
    assert result.exit_code == 1
    assert "outside allowed_countries" in result.stderr
    assert [d["request_id"] for d in out(result)] == ["order:R1:complete"]


def test_a_bad_object_does_not_stop_the_others() -> None:
    bad = with_phone(order(id="BAD"), shipping="0000000000", billing="0000000000")
    result = run("order", input=ndjson(ORDER_A, bad, ORDER_B))
    assert result.exit_code == 1
    assert [d["request_id"] for d in out(result)] == ["order:R1:complete", "order:R2:canceled"]
    assert "<stdin>:2: order BAD: no usable phone" in result.stderr


# --- built-in templates -------------------------------------------------------------


def message_for(kind: str, obj: dict[str, Any], *args: str) -> str:
    result = run(kind, *args, input=json.dumps(obj))
    assert result.exit_code == 0, result.stderr
    [doc] = out(result)
    text: str = doc["sms"]["message"]
    return text


def test_order_texts_by_status() -> None:
    complete = message_for("order", order(status="complete"))
    placed = message_for("order", order(status="placed"))
    canceled = message_for("order", order(status="canceled"))
    shipped = message_for("order", order(status="shipped"))
    assert (
        complete
        == placed
        == ("Hi Joe, thanks for your order R154085346 of $210.00! We will text you when it ships.")
    )
    assert canceled == (
        "Hi Joe, your order R154085346 has been canceled. If this is unexpected, please contact us."
    )
    assert shipped == "Hi Joe, good news: your order R154085346 has shipped!"
    assert message_for("order", order(status="cancelled")) == canceled
    assert message_for("order", order(status="Canceled")) == canceled
    assert len({complete, canceled, shipped}) == 3


def test_order_without_status_is_placed() -> None:
    obj = order()
    del obj["status"]
    result = run("order", input=json.dumps(obj))
    assert out(result)[0]["request_id"] == "order:R154085346:placed"


def test_unknown_status_gets_the_received_text_and_one_warning() -> None:
    result = run("order", input=ndjson(order(id="R1", status="returned"), order(id="R2", status="returned")))
    assert result.exit_code == 0
    docs = out(result)
    assert [d["request_id"] for d in docs] == ["order:R1:returned", "order:R2:returned"]
    assert docs[0]["sms"]["message"].startswith("Hi Joe, thanks for your order R1 ")
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "<stdin>:1: order R1: warning: status 'returned' has no built-in text; "
        "used the 'placed' one (set templates.order.returned in the config "
        "to choose)"
    ]


def test_order_without_totals_or_names() -> None:
    obj = {"id": "R5", "shipping_address": {"phone": "+14155552671"}}
    assert message_for("order", obj) == "Hi, thanks for your order R5! We will text you when it ships."


@pytest.mark.parametrize(
    ("currency", "shown"),
    [
        ("USD", "$210.00"),
        ("EUR", "€210.00"),
        ("GBP", "£210.00"),
        ("gbp", "£210.00"),
        ("CHF", "210.00 CHF"),
        (None, "210.00"),
    ],
)
def test_order_total_in_its_currency(currency: str | None, shown: str) -> None:
    assert f"order R154085346 of {shown}!" in message_for("order", order(currency=currency))


def test_customer_welcome() -> None:
    text = message_for("customer", sample("customer"))
    assert text == "Hi Brian, thanks for signing up! Your account is ready."
    assert (
        message_for("customer", sample("customer"), "--shop-name", "Acme")
        == "Hi Brian, thanks for signing up with Acme! Your account is ready."
    )
    result = run("customer", SAMPLES / "customer.json")
    assert out(result)[0]["request_id"] == "customer:a123:welcome"


def test_shipment_names_tracking_number_and_order() -> None:
    # the sample's status is "ready": packed, not shipped yet, and the text says so
    text = message_for("shipment", sample("shipment"))
    assert text == "Hi Joe, your order R154085346 is packed and ready to ship. Tracking number: 12345678."
    shipped = {**sample("shipment"), "status": "shipped"}
    assert message_for("shipment", shipped) == (
        "Hi Joe, your order R154085346 has shipped. Tracking number: 12345678."
    )
    result = run("shipment", SAMPLES / "shipment.json")
    assert out(result)[0]["request_id"] == "shipment:12836:ready"
    bare = sample("shipment")
    for key in ("tracking", "order_id", "status"):
        del bare[key]
    assert message_for("shipment", bare) == "Hi Joe, your shipment 12836 has shipped."
    result = run("shipment", input=json.dumps(bare))
    assert out(result)[0]["request_id"] == "shipment:12836:shipped"


def test_shop_name_signs_the_built_in_texts(tmp_path: Path) -> None:
    assert message_for("order", order(), "--shop-name", "Acme").startswith("Acme: Hi Joe, ")
    config = write_config(tmp_path, "shop_name: Acme Outfitters\n")
    assert message_for("shipment", sample("shipment"), "--config", str(config)).startswith(
        "Acme Outfitters: Hi Joe, your order R154085346 is packed and ready to ship."
    )


def test_built_in_texts_fit_one_gsm7_segment() -> None:
    long_shop = "Acme Outfitters Ltd"
    texts = [
        message_for("order", order(status=s, totals={"order": 12345.67}), "--shop-name", long_shop)
        for s in ("complete", "canceled", "shipped")
    ]
    texts.append(message_for("customer", sample("customer"), "--shop-name", long_shop))
    shipment = sample("shipment")
    shipment["tracking"] = "1Z999AA10123456784"
    texts.append(message_for("shipment", shipment, "--shop-name", long_shop))
    for text in texts:
        analysis = encoding.analyse(text)
        assert (analysis.name, analysis.segments) == ("GSM-7", 1), text


# --- overrides ------------------------------------------------------------------


def test_template_flag() -> None:
    assert (
        message_for(
            "order", order(), "--template", "{{ order.id }}: {{ order.totals.order | money(order.currency) }}"
        )
        == "R154085346: $210.00"
    )


def test_template_file(tmp_path: Path) -> None:
    path = tmp_path / "order.j2"
    path.write_text(
        "{% if order.status == 'complete' %}\nThanks {{ name }}!\n{% endif %}\nOrder {{ order.id }}\n"
    )
    assert message_for("order", order(), "--template-file", str(path)) == "Thanks Joe!\nOrder R154085346"


def test_template_and_template_file_together_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "t.j2"
    path.write_text("x")
    result = run("order", "-t", "y", "-T", path, input=json.dumps(ORDER_A))
    assert result.exit_code == 2


def test_missing_template_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("order", "--template-file", tmp_path / "none.j2", input=json.dumps(ORDER_A))
    assert result.exit_code == 2
    assert "none.j2: no such file" in result.stderr


CONFIG_TEMPLATES = """\
templates:
  order:
    canceled: "Order {{ order.id }} canceled, {{ name }}."
    default: "Order {{ order.id }} is {{ status }}."
  customer: "Welcome, {{ customer | first_name }}!"
"""


def test_config_templates_per_kind_and_status(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG_TEMPLATES)
    assert (
        message_for("order", order(status="canceled"), "--config", str(config))
        == "Order R154085346 canceled, Joe."
    )
    assert (
        message_for("order", order(status="shipped"), "--config", str(config))
        == "Order R154085346 is shipped."
    )
    assert message_for("customer", sample("customer"), "--config", str(config)) == "Welcome, Brian!"
    # no shipment entry: the built-in text
    assert "Tracking number: 12345678" in message_for("shipment", sample("shipment"), "--config", str(config))


def test_config_mapping_without_default_falls_back_to_built_in(tmp_path: Path) -> None:
    config = write_config(tmp_path, "templates:\n  order:\n    canceled: 'Gone: {{ order.id }}'\n")
    assert message_for("order", order(status="canceled"), "--config", str(config)) == "Gone: R154085346"
    assert message_for("order", order(status="complete"), "--config", str(config)).startswith(
        "Hi Joe, thanks for your order"
    )


def test_flag_template_beats_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG_TEMPLATES)
    assert (
        message_for("order", order(status="canceled"), "--config", str(config), "-t", "flag {{ order.id }}")
        == "flag R154085346"
    )


def test_broken_config_template_is_a_usage_error_reported_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, "templates:\n  order: 'Hi {{ order.id '\n")
    result = run("order", "--config", config, input=ndjson(ORDER_A, ORDER_B))
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("smspipe: error: config templates.order: line 1: ")
    assert "fix the Jinja2 syntax" in line


def test_syntax_error_in_flag_template() -> None:
    result = run("order", "-t", "{% if %}", input=json.dumps(ORDER_A))
    assert result.exit_code == 2
    assert "--template: line 1:" in result.stderr
    assert_clean_stderr(result)


def test_from_flag_and_config(tmp_path: Path) -> None:
    result = run("order", "--from", "(415) 555-0100", input=json.dumps(ORDER_A))
    assert result.exit_code == 0, result.stderr
    assert list(out(result)[0]["sms"]) == ["from", "phone", "message", "category"]
    assert out(result)[0]["sms"]["from"] == "+14155550100"
    config = write_config(tmp_path, "from: AcmeShop\n")
    result = run("order", "--config", config, input=json.dumps(ORDER_A))
    assert out(result)[0]["sms"]["from"] == "AcmeShop"
    assert "from" not in out(run("order", input=json.dumps(ORDER_A)))[0]["sms"]


def test_invalid_from_is_a_usage_error() -> None:
    result = run("order", "--from", "not a sender!", input=json.dumps(ORDER_A))
    assert result.exit_code == 2
    assert "from:" in result.stderr
    assert result.stdout == ""


def test_unknown_config_key_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, "shopname: Acme\n")
    result = run("order", "--config", config, input=json.dumps(ORDER_A))
    assert result.exit_code == 2
    assert "shop_name" in result.stderr


# --- StrictUndefined and the sandbox ---------------------------------------------


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("{{ order.nope }}", "order.nope is missing"),
        ("{{ order.totals.nope }}", "order.totals.nope is missing"),
        ("{{ order.line_items[3].name }}", "order.line_items[3] is missing"),
        ("{{ address.nope | upper }}", "address.nope is missing"),
        (
            "{{ nope }}",
            "'nope' is undefined (the template can use: address, kind, name, "
            "order, phone, sender, shop_name, status)",
        ),
        ("{{ order.nope | money }}", "order.nope is missing"),
    ],
)
def test_missing_field_is_an_error_naming_field_and_object(template: str, named: str) -> None:
    result = run("order", "-t", template, input=ndjson(ORDER_A, ORDER_B))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("<stdin>:1: order R1: template --template: ")
    assert named in lines[0]
    assert lines[1].startswith("<stdin>:2: order R2: ")
    assert_clean_stderr(result)


def test_optional_fields_can_be_tested() -> None:
    template = "{{ order.nope | default('none') }} {% if order.gift is defined %}gift{% endif %}"
    assert message_for("order", order(), "-t", template) == "none"


def test_null_field_renders_as_nothing() -> None:
    assert message_for("order", order(email=None), "-t", "[{{ order.email }}] x") == "[] x"


def test_dict_keys_win_over_dict_methods() -> None:
    shipment = sample("shipment")
    text = message_for(
        "shipment", shipment, "-t", "{{ shipment.items | length }} item, {{ shipment.items[0].name }}"
    )
    assert text == "1 item, Spree T-Shirt"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ order.__class__ }}",
        "{{ order['__class__'] }}",
        "{{ order | attr('__class__') }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_sandbox_refuses_dunder_access_up_front(template: str) -> None:
    result = run("order", "-t", template, input=ndjson(ORDER_A, ORDER_B))
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("smspipe: error: --template: the template reaches for '__")
    assert "sandbox" in line


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ order.line_items.append(1) }}", "unsafe"),
        ("{{ order.line_items.pop() }}", "unsafe"),
        ("{% set n = '__cla' ~ 'ss__' %}{{ order | attr(n) }}", "unsafe"),
    ],
)
def test_sandbox_refuses_at_render_with_one_line(template: str, why: str) -> None:
    result = run("order", "-t", template, input=ndjson(ORDER_A, ORDER_B))
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("smspipe: error: --template: refused by the sandbox: ")
    assert why in line


def test_filter_refusing_a_value_is_an_error_for_that_object() -> None:
    bad = order(id="R3", totals={"order": "lots"})
    result = run("order", "-t", "{{ order.totals.order | money }}", input=ndjson(ORDER_A, bad))
    assert result.exit_code == 1
    assert len(out(result)) == 1
    assert "order R3: template --template failed: money: 'lots' is not an amount" in result.stderr


# --- filters and text --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        (210.0, "USD", "$210.00"),
        (210, "EUR", "€210.00"),
        ("48.5", "GBP", "£48.50"),
        (2.675, "USD", "$2.68"),
        (1234567.891, "USD", "$1,234,567.89"),
        (-5, "USD", "-$5.00"),
        (210, "XYZ", "210.00 XYZ"),
        (210, None, "210.00"),
        (0.1 + 0.2, "", "0.30"),
    ],
)
def test_money(value: Any, currency: Any, shown: str) -> None:
    assert money(value, currency) == shown


@pytest.mark.parametrize("value", [True, None, "abc", "NaN", [1], {"a": 1}])
def test_money_refuses_what_is_not_an_amount(value: Any) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        money(value, "USD")


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Joe Smith", "Joe"),
        ("  Amélie  Martin ", "Amélie"),
        ({"firstname": "Mary Ann"}, "Mary Ann"),
        ({"first_name": "Zoë"}, "Zoë"),
        ({"name": "Liam Wilson"}, "Liam"),
        ({"firstname": ""}, ""),
        ({}, ""),
        ("", ""),
        (None, ""),
        (42, ""),
    ],
)
def test_first_name(value: Any, name: str) -> None:
    assert first_name(value) == name


def test_first_name_filter_in_a_template() -> None:
    assert (
        message_for(
            "customer",
            sample("customer"),
            "-t",
            "{{ customer | first_name }}/{{ 'Ada Lovelace' | first_name }}",
        )
        == "Brian/Ada"
    )


def test_clean_text() -> None:
    assert clean_text("  Hi\x07 Joe,\tthanks\r\nbye\x1b \u2028end\x00 \n") == "Hi Joe, thanks\nbye \nend"


def test_message_is_stripped_of_control_characters() -> None:
    obj = order()
    obj["shipping_address"]["firstname"] = "Jo\u0007e\u0000"
    assert message_for("order", obj, "-t", "  \n{{ name }}\t{{ order.id }}\r\n ") == "Joe R154085346"


def test_blank_message_is_an_error() -> None:
    result = run("order", "-t", "{{ order.email | default('') }}  ", input=json.dumps(order(email=None)))
    assert result.exit_code == 1
    assert "must not be blank" in result.stderr


# --- segments -----------------------------------------------------------------------

LONG = "{{ order.id }} " + "x" * 170


def test_multi_segment_warning() -> None:
    result = run("order", "-t", LONG, input=json.dumps(ORDER_A))
    assert result.exit_code == 0
    assert "warning: the message needs 2 segments (GSM-7" in result.stderr


def test_ucs2_warning_names_the_characters() -> None:
    obj = order()
    obj["shipping_address"]["firstname"] = "Zoë 😀"
    result = run("order", input=json.dumps(obj))
    assert result.exit_code == 0
    assert "UCS-2" in result.stderr
    assert "U+1F600" in result.stderr


def test_quiet_hides_warnings_and_summary() -> None:
    result = run("order", "-q", "-t", LONG, input=json.dumps(ORDER_A))
    assert result.exit_code == 0
    assert result.stderr == ""


def test_max_segments_flag_and_config(tmp_path: Path) -> None:
    result = run("order", "-t", LONG, "--max-segments", "1", input=ndjson(ORDER_A, ORDER_B))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        "<stdin>:1: order R1: the rendered message is not a valid SMS: sms.message: needs "
        "2 segments, more than --max-segments 1" in result.stderr
    )
    config = write_config(tmp_path, "max_segments: 1\n")
    assert run("order", "-t", LONG, "--config", config, input=json.dumps(ORDER_A)).exit_code == 1
    assert run("order", "-t", LONG, "--max-segments", "2", input=json.dumps(ORDER_A)).exit_code == 0


def test_message_longer_than_1600_characters_is_an_error() -> None:
    result = run("order", "-t", "{{ order.id }}{{ 'x' * 1700 }}", input=json.dumps(ORDER_A))
    assert result.exit_code == 1
    assert "at most 1600" in result.stderr


# --- output -----------------------------------------------------------------------


def test_output_document_shape() -> None:
    result = run("order", SAMPLES / "order.json")
    assert result.stdout == (
        '{"request_id":"order:R154085346:complete","sms":{"phone":"+14155552671","message":'
        '"Hi Joe, thanks for your order R154085346 of $210.00! We will text you when it ships.",'
        '"category":"transactional"}}\n'
    )
    assert result.stderr == "1 order: 1 translated, 0 failed\n"


def test_same_input_twice_gives_identical_output() -> None:
    data = (SAMPLES / "orders.ndjson").read_bytes()
    first = run("order", "--from", "+15017122661", input=data)
    second = run("order", "--from", "+15017122661", input=data)
    assert first.exit_code == 0
    assert first.stdout_bytes == second.stdout_bytes
    ids = [d["request_id"] for d in out(first)]
    assert len(set(ids)) == len(ids)


def test_json_flag_gives_ndjson() -> None:
    result = run("order", "--json", SAMPLES / "orders.ndjson")
    assert len(result.stdout.splitlines()) == len(out(result)) == 6


def test_pretty_json_on_a_terminal(bare_env: dict[str, str]) -> None:
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.run(
        [str(SMSPIPE), "translate", "order", str(SAMPLES / "order.json")],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=bare_env,
        timeout=60,
        check=False,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    assert proc.returncode == 0
    assert text.startswith('{\n  "request_id": "order:R154085346:complete",\n  "sms": {')
    assert json.loads(text)["sms"]["phone"] == "+14155552671"


def test_every_sample_translates() -> None:
    for kind, path in (
        ("order", "order.json"),
        ("customer", "customer.json"),
        ("shipment", "shipment.json"),
        ("order", "orders.ndjson"),
    ):
        result = run(kind, SAMPLES / path)
        assert result.exit_code == 0, result.stderr
        assert "warning" not in result.stderr
    countries = {d["sms"]["phone"][:3] for d in out(run("order", SAMPLES / "orders.ndjson"))}
    assert len(countries) >= 5


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("order", "order.json"),
        ("customer", "customer.json"),
        ("shipment", "shipment.json"),
        ("order", "orders.ndjson"),
    ],
)
def test_translate_then_validate(kind: str, path: str) -> None:
    translated = run(kind, "--from", "+15017122661", SAMPLES / path)
    assert translated.exit_code == 0, translated.stderr
    validated = CliRunner().invoke(app, ["validate", "--json", "-"], input=translated.stdout)
    assert validated.exit_code == 0, validated.stdout + validated.stderr
    passed = CliRunner().invoke(app, ["validate", "--pass", "-"], input=translated.stdout)
    assert passed.exit_code == 0
    # translate already writes what validate --pass would: normalised, same ids
    assert passed.stdout == translated.stdout


@pytest.mark.parametrize("kind", ["order", "customer", "shipment"])
def test_real_pipeline_translate_into_validate(kind: str, bare_env: dict[str, str]) -> None:
    pipeline = f"'{SMSPIPE}' translate {kind} samples/{kind}.json | '{SMSPIPE}' validate -"
    proc = subprocess.run(
        ["/bin/sh", "-c", pipeline],
        cwd=ROOT,
        env=bare_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["valid"] is True


def test_importing_the_cli_does_not_import_jinja2() -> None:
    code = "import sys, smspipe.cli.app; assert 'jinja2' not in sys.modules, 'jinja2 imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_order_and_shipment_texts_are_transactional_welcome_texts_are_not() -> None:
    """Issue 14: quiet hours hold back what is not transactional; a welcome text can wait."""
    order = out(run("order", input=json.dumps(ORDER_A)))[0]["sms"]
    assert order["category"] == "transactional"
    welcome = run("customer", SAMPLES / "customer.json")
    assert welcome.exit_code == 0, welcome.stderr
    assert "category" not in out(welcome)[0]["sms"]
