"""The installed command: version, entry points, internal errors, tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smspipe import __version__
from smspipe.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
SMSPIPE = Path(sys.executable).parent / "smspipe"
TOKEN = "0123456789abcdef0123456789abcdef"


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"smspipe {__version__}\n"


COMMANDS = ("validate", "translate", "send", "schema", "status", "config", "optout", "ledger")


def command_names(help_text: str) -> list[str]:
    """The names in the Commands panel of Typer's help, in order."""
    panel = help_text.split("Commands", 1)[1]
    return [
        line.strip("│ ").split()[0]
        for line in panel.splitlines()[1:]
        if line.startswith("│ ") and not line.startswith("│  ")
    ]


def test_no_arguments_prints_help_and_exits_2() -> None:
    result = CliRunner().invoke(app, [], env={"COLUMNS": "120"})
    assert result.exit_code == 2
    assert command_names(result.stdout) == list(COMMANDS)


def test_help_lists_every_command_with_its_summary(bare_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [str(SMSPIPE), "--help"],
        capture_output=True,
        text=True,
        env={**bare_env, "COLUMNS": "120"},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert command_names(proc.stdout) == list(COMMANDS)
    assert "Render hub objects into SMS request documents" in proc.stdout


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["config", "--help"], ["init", "show", "path", "example", "check"]),
        (["ledger", "--help"], ["migrate", "copy"]),
    ],
)
def test_group_help_lists_its_commands(args: list[str], names: list[str]) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert command_names(result.stdout) == names


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_its_own_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert f"Usage: smspipe {command}" in result.stdout


@pytest.mark.parametrize(
    ("args", "wrong", "meant"),
    [
        (["valdate", "x.json"], "valdate", "validate"),
        (["config", "chek"], "chek", "check"),
    ],
)
def test_a_mistyped_command_is_exit_2_with_a_suggestion(args: list[str], wrong: str, meant: str) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"No such command '{wrong}'" in result.stderr
    assert f"Did you mean '{meant}'" in result.stderr


def test_installed_console_script_in_a_real_pipe(bare_env: dict[str, str]) -> None:
    assert SMSPIPE.exists(), "smspipe is not installed in this environment"
    sample = (ROOT / "samples" / "sms.json").read_text()
    proc = subprocess.run(
        [str(SMSPIPE), "validate", "-"],
        input=sample,
        capture_output=True,
        text=True,
        env=bare_env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["phone"] == "+14155552671"
    assert "1 valid" in proc.stderr


def test_python_dash_m(bare_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "smspipe", "--version"],
        capture_output=True,
        text=True,
        env=bare_env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"smspipe {__version__}"


def test_missing_file_exit_code_from_a_real_process(tmp_path: Path, bare_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [str(SMSPIPE), "validate", str(tmp_path / "missing.ndjson")],
        capture_output=True,
        text=True,
        env=bare_env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no such file" in proc.stderr


def _explode(*_: object, **__: object) -> None:
    raise RuntimeError(f"simulated bug while holding token {TOKEN}")


@pytest.fixture
def buggy_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Stand-in for a bug deep in the core: the only way to reach the bug path."""
    monkeypatch.setenv("SMSPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SMSPIPE_CONFIG", raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setattr("smspipe.sms.check", _explode)


@pytest.mark.usefixtures("buggy_check")
def test_internal_error_is_one_line_and_exit_70_without_secrets() -> None:
    result = CliRunner().invoke(app, ["validate"], input='{"phone": "+14155552671", "message": "x"}')
    assert result.exit_code == 70
    assert "internal error: RuntimeError" in result.stderr
    assert "--traceback" in result.stderr
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr + result.stdout


@pytest.mark.usefixtures("buggy_check")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_traceback_on_request_masks_secrets(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--traceback", "validate"] if how == "flag" else ["validate"]
    if how == "env":
        monkeypatch.setenv("SMSPIPE_DEBUG", "1")
    result = CliRunner().invoke(app, args, input='{"phone": "+14155552671", "message": "x"}')
    assert result.exit_code == 70
    assert "Traceback (most recent call last)" in result.stderr
    assert "simulated bug while holding token ****" in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_schema_command_prints_valid_json_schemas() -> None:
    for name in ("sms", "request", "config"):
        result = CliRunner().invoke(app, ["schema", name])
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["type"] == "object"
    result = CliRunner().invoke(app, ["schema", "nope"])
    assert result.exit_code == 2
    assert "choose one of" in result.stderr


def test_request_schema_accepts_the_hub_request_shape() -> None:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    from smspipe.sms import load_schema

    sms_schema = load_schema("sms")
    registry: Registry = Registry().with_resource(sms_schema["$id"], Resource.from_contents(sms_schema))
    validator = Draft202012Validator(load_schema("request"), registry=registry)
    request = json.loads((ROOT / "samples" / "request.json").read_text())
    assert validator.is_valid(request)
    request["sms"]["extra"] = 1
    assert not validator.is_valid(request)


# Besides libraries: the other commands' modules (each command is built only when run).
OTHER_COMMANDS = (
    "smspipe.cli.send",
    "smspipe.cli.config_cmd",
    "smspipe.cli.ledger_cmd",
    "smspipe.cli.check",
    "smspipe.cli.schema",
    "smspipe.delivery",
    "smspipe.gateway",
    "smspipe.ledger",
    "psycopg",
)


@pytest.mark.parametrize(
    ("args", "forbidden"),
    [
        (
            ["validate", "samples/sms.json"],
            (
                "twilio",
                "jinja2",
                "rich",
                "jsonschema",
                "requests",
                "smspipe.translate",
                "smspipe.cli.translate",
                *OTHER_COMMANDS,
            ),
        ),
        (
            ["translate", "order", "samples/order.json"],
            ("twilio", "rich", "jsonschema", "requests", "smspipe.cli.validate", *OTHER_COMMANDS),
        ),
    ],
)
def test_commands_load_only_what_they_use(
    bare_env: dict[str, str], args: list[str], forbidden: tuple[str, ...]
) -> None:
    """Start-up stays fast: heavy libraries load only in the commands that need them."""
    code = (
        "import sys, runpy; sys.argv = ['smspipe', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('smspipe', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=bare_env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    modules = proc.stderr.strip().splitlines()[-1].split()
    loaded = set(modules) | {m.split(".")[0] for m in modules}
    assert not loaded & set(forbidden), loaded & set(forbidden)


@pytest.mark.parametrize("args", [["validate"], ["translate", "order"], ["send", "--dry-run"]])
def test_no_input_and_a_terminal_on_stdin_is_a_usage_error(bare_env: dict[str, str], args: list[str]) -> None:
    """Nothing to read (no path, stdin a terminal): exit 2 and how to give input, not a hang."""
    import pty

    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [str(SMSPIPE), *args],
            stdin=terminal,
            capture_output=True,
            text=True,
            env=bare_env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "no input: give a file path, or pipe documents to stdin" in proc.stderr
    assert f"smspipe {args[0]}" in proc.stderr
