"""Malformed input of every kind: one clear line, an exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smspipe.cli.app import app

GOOD = '{"phone": "+14155552671", "message": "hello"}'


pytestmark = pytest.mark.usefixtures("bare_env")  # conftest: no TWILIO_*/SMSPIPE_* leaks in


def run(data: bytes | str, *args: str) -> Any:
    return CliRunner().invoke(app, ["validate", "--json", *args], input=data)


def assert_clean_failure(result: Any, fragment: str) -> dict[str, Any]:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    bad = [r for r in rows if not r["valid"]]
    assert bad, rows
    first: dict[str, Any] = bad[0]
    assert any(fragment in e["message"] for e in first["errors"]), first
    return first


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ('{"phone": "+14155552671", "message": "hel', "truncated"),
        ('{"phone": "+14155552671", "message": "hello",}', "invalid JSON"),
        ('[{"phone": "+14155552671", "message": "hello"},]', "invalid JSON"),
        ('{"phone": "+14155552671", "message": NaN}', "NaN is not valid JSON"),
        ('{"phone": "+14155552671", "message": Infinity}', "Infinity is not valid JSON"),
        ('{"phone": "+14155552671", "message": "x", "id": 1e999}', "out of range"),
        ('{"phone": "+14155552671", "message": "x", "id": ' + "9" * 5000 + "}", "too many digits"),
        ("42", "got a number"),
        ('"just a string"', "got a string"),
        ("null", "got null"),
        ("[1, 2]", "expected a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
        ("{'phone': '+14155552671'}", "invalid JSON"),
    ],
    ids=[
        "truncated",
        "trailing-comma",
        "array-trailing-comma",
        "nan",
        "infinity",
        "huge-float",
        "5000-digits",
        "scalar-number",
        "scalar-string",
        "null",
        "array-of-scalars",
        "deep-array",
        "deep-object",
        "single-quotes",
    ],
)
def test_malformed_json_gives_one_clear_error(data: str, fragment: str) -> None:
    bad = assert_clean_failure(run(data), fragment)
    assert bad["line"] == 1


def test_invalid_utf8_names_the_byte_and_line() -> None:
    data = GOOD.encode() + b"\n" + b'{"phone": "+14155552671", "message": "caf\xe9"}\n' + GOOD.encode()
    result = run(data)
    bad = assert_clean_failure(result, "not valid UTF-8")
    assert bad["line"] == 2
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["valid"] for r in rows] == [True, False, True]


def test_mixed_ndjson_stream_reports_bad_lines_by_number_and_keeps_going() -> None:
    lines = [GOOD, "{broken", GOOD, "", "[1]", GOOD, '{"phone": "+14155552671"}', GOOD]
    result = run("\n".join(lines) + "\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1
    assert [(r["line"], r["valid"]) for r in rows] == [
        (1, True),
        (2, False),
        (3, True),
        (5, False),
        (6, True),
        (7, False),
        (8, True),
    ]


def test_ndjson_whose_first_line_is_broken() -> None:
    result = run("{broken\n" + GOOD + "\n" + GOOD + "\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["valid"]) for r in rows] == [(1, False), (2, True), (3, True)]


def test_truncated_pretty_printed_document_is_one_error() -> None:
    text = json.dumps({"sms": {"phone": "+14155552671", "message": "hi"}}, indent=2)
    result = run(text[:-3])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1 and not rows[0]["valid"]


def test_error_inside_pretty_printed_document_names_its_line() -> None:
    text = '{\n  "sms": {\n    "phone": "+14155552671",\n    "message": "hi",\n  }\n}\n'
    bad = assert_clean_failure(run(text), "invalid JSON")
    assert bad["line"] == 5


def test_plain_report_is_source_line_message(tmp_path: Path) -> None:
    path = tmp_path / "batch.ndjson"
    path.write_text(GOOD + "\n{oops\n")
    result = CliRunner().invoke(app, ["validate", "--pass", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: invalid JSON" in result.stderr
    assert len(result.stdout.splitlines()) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    result = run(data)
    assert result.exit_code in (0, 1), (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr
    for line in result.stdout.splitlines():
        json.loads(line)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "sms",
                    "phone",
                    "message",
                    "from",
                    "media_url",
                    "request_id",
                    "parameters",
                    "id",
                    "status_callback",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_values, min_size=1, max_size=5))
def test_arbitrary_json_documents_never_crash(values: list[Any]) -> None:
    data = "\n".join(json.dumps(v) for v in values) + "\n"
    result = run(data)
    assert result.exit_code in (0, 1), (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(isinstance(r["valid"], bool) for r in rows)
