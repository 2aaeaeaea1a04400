"""Issue 13, items 9 and 10, and one-line usage errors: the same flags everywhere,
NO_COLOR, and messages a new user can act on."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, invoke, run_process

SAMPLES = ROOT / "samples"


@pytest.fixture(autouse=True)
def _clean(bare_env: dict[str, str]) -> None:
    """No TWILIO_*/SMSPIPE_* from the machine running the tests."""


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["validate", "--bogus"], "smspipe: error: No such option: --bogus"),
        (["translate", "nope", "x.json"], "smspipe: error: Invalid value for 'KIND': 'nope' is not a kind"),
        (["validate", "--max-segments", "0"], "smspipe: error: Invalid value for '--max-segments'"),
        (["schema", "nope"], "smspipe: error: no schema named 'nope'"),
        (["config", "bogus"], "smspipe: error: No such command 'bogus'"),
        (["bogus"], "smspipe: error: No such command 'bogus'"),
    ],
)
def test_a_usage_error_is_one_line_with_the_way_to_help(args: list[str], start: str) -> None:
    run = invoke(*args, input="")
    assert run.exit_code == 2
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith(start), line
    assert ".:" not in line and "╭" not in line


def test_usage_errors_are_one_line_in_a_real_process_too(tmp_path: Path) -> None:
    run = run_process("send", "--concurrency", "x", env={**os.environ})
    assert run.exit_code == 2
    assert run.stderr == (
        "smspipe: error: Invalid value for '--concurrency' / '-c': 'x' is not a valid int: "
        "run 'smspipe send -h' for help\n"
    )


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_has_a_short_flag(flag: str) -> None:
    run = invoke(flag)
    assert run.exit_code == 0
    assert run.stdout.startswith("smspipe ")


def test_quiet_and_verbose_are_the_same_flags_everywhere() -> None:
    """Every command that takes -q or -v takes the shared option (cli/options.py), not one of its own."""
    import typer.main

    from smspipe.cli import options
    from smspipe.cli.app import app

    def shared_help(option: Any) -> str:
        return str(typing.get_args(option)[1].help)

    expected = {"-q": shared_help(options.Quiet), "-v": shared_help(options.Verbose)}
    found: dict[str, list[str]] = {"-q": [], "-v": []}

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            for flag, names in found.items():
                if flag in param.opts:
                    assert param.help == expected[flag], path
                    names.append(path)
        for name in getattr(command, "list_commands", lambda ctx: [])(None):
            walk(command.get_command(None, name), f"{path} {name}")

    walk(typer.main.get_command(app), "smspipe")
    for names in found.values():
        assert {"smspipe validate", "smspipe translate", "smspipe send", "smspipe config check"} <= set(names)


def test_no_color_removes_every_style_bold_and_dim_too() -> None:
    env = {**os.environ, "FORCE_COLOR": "1"}  # rich styles as on a terminal
    args = ("send", "--dry-run", "--from", "+15017122661", "--format", "text", str(SAMPLES / "sms.json"))
    styled = run_process(*args, env=env)
    assert "\x1b[1m" in styled.stdout  # the header is bold
    plain = run_process(*args, env={**env, "NO_COLOR": "1"})
    assert plain.exit_code == 0
    assert "\x1b[" not in plain.stdout and "STATUS" in plain.stdout


# --- wording and small things (item 10) ------------------------------------------------


def test_region_uk_suggests_gb() -> None:
    run = invoke("validate", "--region", "UK", str(SAMPLES / "sms.json"))
    assert run.exit_code == 2
    assert "unknown region 'UK': did you mean 'GB'?" in run.stderr


def test_concurrency_out_of_range_states_the_range() -> None:
    run = invoke("send", "--dry-run", "--concurrency", "0", str(SAMPLES / "sms.json"))
    assert run.exit_code == 2
    assert "--concurrency: must be from 1 to 100, got 0" in run.stderr


def test_schema_without_a_name_lists_the_names() -> None:
    run = invoke("schema")
    assert run.exit_code == 0
    assert run.stdout.split() == ["config", "customer", "order", "request", "result", "shipment", "sms"]


@pytest.mark.parametrize("kind", ["orders", "Order", "ORDERS"])
def test_translate_takes_the_plural_as_the_hub_writes_it(kind: str) -> None:
    run = invoke("translate", kind, "--format", "json", str(SAMPLES / "order.json"))
    assert run.exit_code == 0, run.stderr
    assert run.records[0]["request_id"] == "order:R154085346:complete"


def test_a_jinja_syntax_error_reads_cleanly() -> None:
    run = invoke("translate", "order", "-t", "{{ order.id ", str(SAMPLES / "order.json"))
    assert run.exit_code == 2
    assert run.stderr == (
        "smspipe: error: --template: line 1: unexpected end of template, expected "
        "'end of print statement': fix the Jinja2 syntax\n"
    )


def test_config_checks_hint_names_no_document_parameters() -> None:
    run = invoke("config", "check")
    assert run.exit_code == 2
    assert "no Twilio credentials" in run.stderr
    assert "document" not in run.stderr


def test_sends_hint_names_the_document_parameters() -> None:
    run = invoke("send", "--from", "+15017122661", str(SAMPLES / "sms.json"))
    assert run.exit_code == 2
    assert "twilio_account_sid/twilio_auth_token in the document's parameters" in run.stderr


def test_the_result_schema_is_valid_and_describes_every_status() -> None:
    import jsonschema

    from smspipe.delivery import Status

    schema = json.loads(invoke("schema", "result").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]["status"]["enum"]) == {status.value for status in Status}


@pytest.mark.parametrize(
    "args",
    [
        ("validate", str(SAMPLES / "sms.json")),
        ("translate", "order", str(SAMPLES / "order.json")),
        ("send", "--dry-run", "--from", "+15017122661", str(SAMPLES / "sms.json")),
    ],
)
def test_quiet_silences_the_config_files_warnings_too(
    bare_env: dict[str, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A config file that draws a warning (a secret readable by others): said without
    -q, nothing on stderr with it (the library's fallback is a log record, and an
    unconfigured logging module prints those to stderr)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        'account_sid: "AC0123456789abcdef0123456789abcdef"\nauth_token: "abcdefghijklmnop1234"\n'
    )
    config.chmod(0o644)
    env = {**bare_env, "SMSPIPE_CONFIG": str(config)}
    loud = run_process(*args, env=env)
    quiet = run_process(*args, "-q", env=env)
    assert loud.exit_code == quiet.exit_code == 0, (loud.stderr, quiet.stderr)
    assert "accessible to group or others" in loud.stderr
    assert quiet.stderr == ""
