"""Pipes, cron and CI (issue 13, items 4 and 5): every problem is one line on stderr
whatever stdout gets; --format forces what stdout gets; a pipe that fed nothing is said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, SENDER, invoke, ndjson, run_process

SAMPLES = ROOT / "samples"
GOOD = {"request_id": "good", "sms": {"phone": "+14155552671", "message": "Order R1 has shipped"}}
BAD_PHONE = {"request_id": "bad", "sms": {"phone": "555-555-5555", "message": "Order R2 has shipped"}}
UCS2 = {"request_id": "smart", "sms": {"phone": "+14155552672", "message": "Order R3 isn’t late"}}
PROBLEM = "<stdin>:2: sms.phone: '555-555-5555' is not a valid phone number for US"


@pytest.fixture(autouse=True)
def _clean(bare_env: dict[str, str]) -> None:
    """No TWILIO_*/SMSPIPE_* from the machine running the tests."""


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["validate", "--format", "json"],
        ["validate", "--format", "text"],
        ["validate", "--pass"],
        ["send", "--dry-run", "--from", SENDER, "--no-ledger"],
        ["send", "--dry-run", "--from", SENDER, "--no-ledger", "--format", "text"],
    ],
)
def test_each_problem_is_one_line_on_stderr_whatever_stdout_gets(args: list[str]) -> None:
    run = invoke(*args, input=ndjson([GOOD, BAD_PHONE, UCS2]))

    assert run.exit_code == 1
    problems = [line for line in run.stderr.splitlines() if line.startswith("<stdin>:")]
    assert len(problems) == 2, run.stderr
    assert problems[0].startswith(PROBLEM)
    assert problems[1].startswith("<stdin>:3: ") and "warning" in problems[1] and "’" in problems[1]
    assert not any(line.startswith(PROBLEM) for line in run.stdout.splitlines())


def test_quiet_keeps_the_errors_and_drops_warnings_and_summary() -> None:
    run = invoke("validate", "-q", input=ndjson([GOOD, BAD_PHONE, UCS2]))
    assert run.exit_code == 1
    assert [line.split(": ", 1)[0] for line in run.stderr.splitlines()] == ["<stdin>:2"]


def test_piped_validate_names_the_problem_even_with_stdout_thrown_away(tmp_path: Path) -> None:
    """The issue's `validate x.ndjson > /dev/null` that printed only the count."""
    path = tmp_path / "x.ndjson"
    path.write_text(ndjson([GOOD, BAD_PHONE]))
    run = run_process("validate", str(path), env={**_env(tmp_path)})
    assert run.exit_code == 1
    assert f"{path}:2: sms.phone: '555-555-5555' is not a valid phone number" in run.stderr
    assert run.stderr.splitlines()[-1] == "2 documents: 1 valid, 1 invalid"


@pytest.mark.parametrize(
    ("args", "json_out"),
    [
        (["validate", "--format", "json"], True),
        (["validate", "--json"], True),
        (["validate", "--format", "text"], False),
        (["translate", "order", "--format", "json"], True),
        (["translate", "order", "--format", "text"], False),
        (["send", "--dry-run", "--from", SENDER, "--no-ledger", "--format", "json"], True),
        (["send", "--dry-run", "--from", SENDER, "--no-ledger", "--format", "text"], False),
    ],
)
def test_format_forces_what_stdout_gets(args: list[str], json_out: bool) -> None:
    source = (SAMPLES / ("order.json" if "translate" in args else "sms.json")).read_text()
    run = invoke(*args, input=source)
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    parsed = [_is_json_line(line) for line in lines]
    assert all(parsed) if json_out else not all(parsed)


def test_format_text_and_json_flag_together_are_a_usage_error() -> None:
    run = invoke("validate", "--json", "--format", "text", input=json.dumps(GOOD))
    assert run.exit_code == 2
    assert run.stderr.startswith("smspipe: error: --json and --format text both given")


@pytest.mark.parametrize(
    ("args", "summary"),
    [
        (["validate"], "0 documents: 0 valid, 0 invalid"),
        (["translate", "order"], "0 orders: 0 translated, 0 failed"),
        (["send", "--dry-run", "--no-ledger"], "0 documents"),
    ],
)
def test_a_pipe_that_fed_nothing_is_said_and_exits_0(args: list[str], summary: str, tmp_path: Path) -> None:
    run = run_process(*args, env=_env(tmp_path), input="")
    assert run.exit_code == 0
    assert run.stdout == ""
    assert run.stderr.splitlines() == ["smspipe: warning: no documents read from stdin", summary]


def test_an_empty_file_is_not_called_an_empty_stdin(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    run = invoke("validate", str(empty))
    assert run.exit_code == 0
    assert "stdin" not in run.stderr


def test_quiet_silences_the_empty_stdin_note(tmp_path: Path) -> None:
    run = run_process("validate", "-q", env=_env(tmp_path), input="")
    assert (run.exit_code, run.stderr) == (0, "")


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "SMSPIPE_HOME": str(tmp_path / "home")}


def _is_json_line(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
