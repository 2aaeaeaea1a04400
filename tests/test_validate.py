"""`smspipe validate`: shapes, rules, reports, exit codes, malformed input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smspipe.cli.app import app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
HUB_SMS = {"sms": {"from": "444-444-4444", "phone": "555-555-5555", "message": "Order R12345 was shipped!"}}
GOOD = {"phone": "+14155552671", "message": "Order R12345 was shipped!"}


pytestmark = pytest.mark.usefixtures("bare_env")  # conftest: no TWILIO_*/SMSPIPE_* leaks in


def run(*args: str, input: str | bytes | None = None) -> Any:
    return CliRunner().invoke(app, ["validate", *args], input=input)


def reports(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def ndjson(*docs: Any) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


# --- shapes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "path_prefix"),
    [
        ({"sms": GOOD}, "sms."),
        (
            {
                "request_id": "r1",
                "parameters": {"twilio_account_sid": "AC" + "a" * 32, "twilio_auth_token": "x" * 32},
                "sms": GOOD,
            },
            "sms.",
        ),
        (GOOD, ""),
    ],
    ids=["wrapped", "hub-request", "bare"],
)
def test_every_shape_is_accepted(document: dict[str, Any], path_prefix: str) -> None:
    result = run("--json", input=json.dumps(document))
    assert result.exit_code == 0, result.stderr
    [report] = reports(result.stdout)
    assert report["valid"] is True
    assert report["phone"] == "+14155552671"
    bad = json.loads(json.dumps(document))
    target = bad.get("sms", bad)
    target["phone"] = "555-555-5555"
    result = run("--json", input=json.dumps(bad))
    assert result.exit_code == 1
    assert reports(result.stdout)[0]["errors"][0]["path"] == f"{path_prefix}phone"


def test_collection_yields_one_report_per_item() -> None:
    doc = {"request_id": "r9", "sms": [GOOD, {**GOOD, "phone": "nope"}, GOOD]}
    result = run("--json", input=json.dumps(doc))
    assert result.exit_code == 1
    rows = reports(result.stdout)
    assert [r["valid"] for r in rows] == [True, False, True]
    assert rows[1]["errors"][0]["path"] == "sms[1].phone"
    assert [r["request_id"] for r in rows] == ["r9[0]", "r9[1]", "r9[2]"]


def test_json_array_items_are_reported_with_index_and_line(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_text("[\n" + json.dumps(GOOD) + ",\n" + json.dumps({"phone": "x"}) + "\n]\n")
    result = run("--json", str(path))
    assert result.exit_code == 1
    rows = reports(result.stdout)
    assert [(r["line"], r["index"], r["valid"]) for r in rows] == [(2, 0, True), (3, 1, False)]


def test_pretty_printed_object_over_many_lines(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"sms": GOOD}, indent=4))
    result = run("--json", str(path))
    assert result.exit_code == 0
    assert reports(result.stdout)[0]["line"] == 1


def test_utf8_bom_is_accepted() -> None:
    result = run("--json", input=b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert result.exit_code == 0, result.stdout + result.stderr


def test_empty_input_is_zero_documents_and_exit_0() -> None:
    result = run("--json", input="")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "0 documents" in result.stderr


def test_stdin_dash_and_several_inputs(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(GOOD))
    result = run("--json", str(path), "-", input=json.dumps(GOOD))
    assert result.exit_code == 0
    assert [r["source"] for r in reports(result.stdout)] == [str(path), "-"]


# --- the hub sample and the rules --------------------------------------------


def test_hub_sample_is_invalid_on_sms_phone() -> None:
    result = run("--json", input=json.dumps(HUB_SMS))
    assert result.exit_code == 1
    [report] = reports(result.stdout)
    paths = [e["path"] for e in report["errors"]]
    assert "sms.phone" in paths
    assert "555-555-5555" in report["errors"][paths.index("sms.phone")]["message"]


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("+447911123456", "US", "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
    ],
)
def test_real_numbers_pass_normalised(raw: str, region: str, e164: str) -> None:
    result = run("--json", "--region", region, input=json.dumps({"phone": raw, "message": "hi"}))
    assert result.exit_code == 0
    assert reports(result.stdout)[0]["phone"] == e164


def test_default_region_from_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("default_region: GB\n")
    doc = json.dumps({"phone": "07911 123456", "message": "hi"})
    assert run("--json", input=doc).exit_code == 1
    result = run("--json", "--config", str(config), input=doc)
    assert result.exit_code == 0, result.stderr
    assert reports(result.stdout)[0]["phone"] == "+447911123456"


@pytest.mark.parametrize(
    ("sms", "path", "fragment"),
    [
        ({"phone": "+14155552671"}, "message", "required"),
        ({"message": "hi"}, "phone", "required"),
        ({**GOOD, "message": "   "}, "message", "blank"),
        ({**GOOD, "message": "a" * 1601}, "message", "1601 characters"),
        ({**GOOD, "phone": "+19005550123"}, "phone", "premium-rate"),
        ({**GOOD, "from": "ABCDEFGHIJKL"}, "from", "not a valid sender"),
        ({**GOOD, "media_url": ["ftp://x/y.png"]}, "media_url[0]", "http(s)"),
        ({**GOOD, "media_url": [f"https://e.com/{i}.png" for i in range(11)]}, "media_url", "at most 10"),
        ({**GOOD, "media_url": "https://e.com/a.png"}, "media_url", "must be an array"),
        ({**GOOD, "status_callback": "not a url"}, "status_callback", "http(s)"),
        ({**GOOD, "mesage": "x"}, "mesage", "did you mean 'message'"),
        ({**GOOD, "phone": 4155552671}, "phone", "must be a string"),
    ],
)
def test_rules_beyond_and_within_the_schema(sms: dict[str, Any], path: str, fragment: str) -> None:
    result = run("--json", input=json.dumps({"sms": sms}))
    assert result.exit_code == 1
    errors = reports(result.stdout)[0]["errors"]
    matching = [e for e in errors if e["path"] == f"sms.{path}"]
    assert matching, errors
    assert fragment in matching[0]["message"]


@pytest.mark.parametrize("sender", ["+15017122661", "12345", "ACME Shop", "whatsapp:+15017122661"])
def test_accepted_senders(sender: str) -> None:
    assert run("--json", input=json.dumps({**GOOD, "from": sender})).exit_code == 0


def test_whatsapp_recipient_and_media() -> None:
    doc = {
        **GOOD,
        "phone": "whatsapp:+14155552671",
        "media_url": ["https://e.com/a.png"],
        "status_callback": "https://e.com/status",
    }
    result = run("--json", input=json.dumps(doc))
    assert result.exit_code == 0
    assert reports(result.stdout)[0]["phone"] == "whatsapp:+14155552671"


def test_allowed_countries_from_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("allowed_countries: [US, CA]\n")
    result = run("--json", "--config", str(config), input=ndjson(GOOD, {**GOOD, "phone": "+447911123456"}))
    assert result.exit_code == 1
    rows = reports(result.stdout)
    assert [r["valid"] for r in rows] == [True, False]
    assert "allowed_countries" in rows[1]["errors"][0]["message"]


def test_ucs2_warning_names_the_characters() -> None:
    result = run("--json", input=json.dumps({**GOOD, "message": "It’s shipped 📦"}))
    assert result.exit_code == 0
    [report] = reports(result.stdout)
    assert report["encoding"] == "UCS-2"
    assert "’" in report["warnings"][0]["message"] and "📦" in report["warnings"][0]["message"]


def test_segments_reported() -> None:
    result = run("--json", input=ndjson({**GOOD, "message": "a" * 161}, {**GOOD, "message": "ł" * 71}))
    assert [(r["encoding"], r["segments"]) for r in reports(result.stdout)] == [("GSM-7", 2), ("UCS-2", 2)]


def test_max_segments_refuses_long_messages() -> None:
    result = run("--json", "--max-segments", "1", input=json.dumps({**GOOD, "message": "a" * 161}))
    assert result.exit_code == 1
    assert "2 segments" in reports(result.stdout)[0]["errors"][0]["message"]


def test_parameters_are_checked() -> None:
    doc = {"request_id": "r", "parameters": {"twilio_account_sid": "nope"}, "sms": GOOD}
    result = run("--json", input=json.dumps(doc))
    assert result.exit_code == 1
    assert reports(result.stdout)[0]["errors"][0]["path"] == "parameters.twilio_account_sid"


# --- --pass, output modes ------------------------------------------------------


def test_pass_writes_valid_documents_normalised_and_report_to_stderr() -> None:
    docs = ndjson(
        {"request_id": "a", "sms": {"phone": "(415) 555-2671", "message": "one"}},
        {"sms": {"phone": "bad", "message": "two"}},
        {"phone": "+447911123456", "message": "three", "from": "ACME"},
    )
    result = run("--pass", input=docs)
    assert result.exit_code == 1
    passed = reports(result.stdout)
    assert passed == [
        {"request_id": "a", "sms": {"phone": "+14155552671", "message": "one"}},
        {"sms": {"from": "ACME", "phone": "+447911123456", "message": "three"}},
    ]
    assert "-:2: sms.phone: 'bad'" in result.stderr.replace("<stdin>", "-")
    # what --pass writes validates again, unchanged
    again = run("--pass", input=result.stdout)
    assert again.exit_code == 0
    assert again.stdout == result.stdout


def test_pass_never_writes_secrets() -> None:
    token = "f" * 32
    doc = {
        "request_id": "r",
        "parameters": {"twilio_account_sid": "AC" + "a" * 32, "twilio_auth_token": token},
        "sms": GOOD,
    }
    result = run("--pass", input=json.dumps(doc))
    assert result.exit_code == 0
    assert token not in result.stdout and token not in result.stderr
    assert json.loads(result.stdout)["parameters"] == {"twilio_account_sid": "AC" + "a" * 32}


def test_pass_with_json_reports_ndjson_on_stderr() -> None:
    result = run("--pass", "--json", input=ndjson(GOOD, {"phone": "x", "message": "y"}))
    assert result.exit_code == 1
    report_lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [r["valid"] for r in report_lines] == [True, False]
    assert len(result.stdout.splitlines()) == 1


def test_piped_output_is_ndjson_without_json_flag() -> None:
    result = run(input=json.dumps(GOOD))
    assert result.exit_code == 0
    assert reports(result.stdout)[0]["valid"] is True


def test_summary_goes_to_stderr_and_quiet_silences_it() -> None:
    result = run(input=ndjson(GOOD, GOOD))
    assert "2 documents: 2 valid, 0 invalid" in result.stderr
    assert run("-q", input=ndjson(GOOD)).stderr == ""


# --- usage errors ------------------------------------------------------------


def test_missing_file_is_exit_2_with_one_line(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "nope.json: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_directory_is_exit_2(tmp_path: Path) -> None:
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


def test_bad_flag_is_exit_2() -> None:
    assert run("--no-such-flag", input="").exit_code == 2


def test_unknown_region_is_exit_2() -> None:
    result = run("--region", "XX", input=json.dumps(GOOD))
    assert result.exit_code == 2
    assert "unknown region" in result.stderr


# --- the bundled samples --------------------------------------------------------


def test_bundled_samples() -> None:
    for name in ("sms.json", "request.json"):
        assert run("--json", str(SAMPLES / name)).exit_code == 0, name
    result = run("--json", str(SAMPLES / "batch.ndjson"))
    assert result.exit_code == 1
    rows = reports(result.stdout)
    assert [r["valid"] for r in rows] == [True, True, False, True, True, True, False]
    assert rows[2]["line"] == 3
    assert "ends too early" in rows[2]["errors"][0]["message"]
    assert rows[5]["encoding"] == "UCS-2" and rows[5]["warnings"]
    assert (rows[6]["line"], rows[6]["request_id"]) == (7, "batch-7")
    assert "'555-555-5555' is not a valid phone number for US" in rows[6]["errors"][0]["message"]
