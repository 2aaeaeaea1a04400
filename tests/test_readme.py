"""README's promises: two set-up commands at the top, the same test command as CI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", head)


def test_readme_opens_with_exactly_two_single_line_commands() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    install_and_run, install_and_test = commands
    assert "--dry-run" in install_and_run and "samples/" in install_and_run
    assert "[test]" in install_and_test and "pytest" in install_and_test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"^TEST_COMMAND='(.+)'$", ci, re.MULTILINE)
    assert match, "TEST_COMMAND not found in .ci/run"
    assert match.group(1) == setup_commands()[1]


# --- every example README shows is run -------------------------------------------------
#
# In the spirit of sqlite-utils' documentation tests: a ```console block is a shell
# session: `$ ` lines are commands, the lines after each are what it prints (stdout and
# stderr as a terminal shows them, in the order written). The whole block runs as one
# bash script (`set -o pipefail`; `echo $?` shows an exit code) in a fresh directory
# holding a copy of samples/, with Twilio credentials in the environment and
# SMSPIPE_API_URL pointing at the loopback server. Only what must vary is normalised:
# message SIDs. A ```bash block is a script (a CI step) that must exit 0 there; a
# ```crontab line's command (the schedule dropped) must too.

FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
#: block languages README may use: commands to read (sh, python, yaml), or run (the rest)
LANGUAGES = {"sh", "python", "yaml", "console", "bash", "crontab"}
MARKER = "\x1e README COMMAND \x1e"
MESSAGE_SID = re.compile(r"\b((?:SM|MM)[0-9a-f]{32})\b( *)")


def _any_sid(match: re.Match[str]) -> str:
    """A SID as README writes it (SM…); in a table, padded to its width to keep the columns."""
    sid, spaces = match.groups()
    short = sid[:2] + "…"
    return short.ljust(len(sid)) + spaces if spaces else short


def readme_blocks(language: str) -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text()
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(2))
        for match in FENCE.finditer(text)
        if match.group(1) == language
    ]


def session(block: str) -> list[tuple[str, list[str]]]:
    """A console block as (command, the lines it prints) pairs; `\\` continues a command."""
    steps: list[tuple[str, list[str]]] = []
    lines = block.splitlines()
    position = 0
    while position < len(lines):
        line = lines[position]
        assert line.startswith("$ "), f"output before any command: {line!r}"
        command = line[2:]
        while command.endswith("\\"):
            position += 1
            command = command[:-1] + "\n" + lines[position]
        position += 1
        shown: list[str] = []
        while position < len(lines) and not lines[position].startswith("$ "):
            shown.append(lines[position])
            position += 1
        steps.append((command, shown))
    return steps


@pytest.fixture
def sandbox(tmp_path: Path, twilio_server: TwilioServer) -> tuple[Path, dict[str, str]]:
    """A working directory holding samples/, and an environment with only what README assumes."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "samples", work / "samples")
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "user"),
        "SMSPIPE_HOME": str(tmp_path / "smspipe-home"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",  # the order of stdout and stderr lines is the order written
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "SMSPIPE_API_URL": twilio_server.url,
    }
    return work, env


def run_script(script: str, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -o pipefail\nexec 2>&1\nstatus=0\n" + script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


CONSOLE = readme_blocks("console")


@pytest.mark.parametrize("block", [block for _, block in CONSOLE], ids=[f"line-{n}" for n, _ in CONSOLE])
def test_every_console_example_prints_what_readme_shows(
    block: str, sandbox: tuple[Path, dict[str, str]]
) -> None:
    work, env = sandbox
    steps = session(block)
    # the marker between commands keeps $? for `echo $?`
    script = "".join(
        f"printf '%s\\n' '{MARKER}'; (exit $status)\n{command}\nstatus=$?\n" for command, _ in steps
    )
    printed = run_script(script, work, env).stdout
    outputs = printed.split(MARKER + "\n")[1:]
    assert len(outputs) == len(steps), printed
    for (command, shown), output in zip(steps, outputs, strict=True):
        actual = MESSAGE_SID.sub(_any_sid, output).replace(str(work) + "/", "").splitlines()
        assert actual == shown, f"$ {command}"


def test_readme_shows_output_only_in_blocks_the_tests_run() -> None:
    text = (ROOT / "README.md").read_text()
    languages = {match.group(1) for match in FENCE.finditer(text)}
    assert languages <= LANGUAGES, languages - LANGUAGES
    assert len(CONSOLE) >= 8
    assert SCRIPTS and CRON_LINES


SCRIPTS = [block for _, block in readme_blocks("bash")]
CRON_LINES = [
    line.split(None, 5)[5]  # the schedule dropped
    for _, block in readme_blocks("crontab")
    for line in block.splitlines()
    if line.strip() and not line.startswith("#")
]
#: an order whose phone no one can text: the recipes must fail on it
UNTEXTABLE = '{"order": {"id": "R9", "status": "complete", "shipping_address": {"phone": "12"}}}\n'


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_example_succeeds_and_fails_when_it_should(
    script: str, sandbox: tuple[Path, dict[str, str]], twilio_server: TwilioServer
) -> None:
    work, env = sandbox
    completed = run_script(script, work, env)
    assert completed.returncode == 0, completed.stdout
    again = run_script(script, work, env)  # a re-run (the ledger kept): nothing sent twice
    assert again.returncode == 0, again.stdout
    assert len(twilio_server.creates()) == 1

    with (work / "samples" / "orders.ndjson").open("a") as export:
        export.write(UNTEXTABLE)
    broken = run_script(script, work, env)
    assert broken.returncode == 1, broken.stdout
    assert "order R9: no usable phone" in broken.stdout
    assert len(twilio_server.creates()) == 1


@pytest.mark.parametrize("command", CRON_LINES)
def test_every_cron_line_is_silent_when_all_is_well_and_says_when_not(
    command: str, sandbox: tuple[Path, dict[str, str]], twilio_server: TwilioServer
) -> None:
    """cron mails what a job prints: nothing on success, the failure otherwise."""
    work, env = sandbox
    (work / "export").mkdir()
    shutil.copy(work / "samples" / "orders.ndjson", work / "export" / "orders.ndjson")
    command = command.replace("/srv/shop", str(work))
    for _ in range(2):  # the second run skips what the first sent
        completed = run_script(command, work, env)
        assert (completed.returncode, completed.stdout) == (0, "")
    assert len(twilio_server.creates()) == 6

    with (work / "export" / "orders.ndjson").open("a") as export:
        export.write(UNTEXTABLE)
    printed = run_script(command, work, env).stdout
    assert "order R9: no usable phone" in printed
    assert printed.splitlines()[-1] == "smspipe exited 1 (75: will retry next run)"
    assert len(twilio_server.creates()) == 6


def built_in_text_rows() -> list[tuple[str, str, str]]:
    """(kind, status, text) for each row of README's table of built-in texts."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| kind and status | text |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        label, shown = (cell.strip() for cell in line.strip("|").split("|"))
        if "other status" in label:
            continue  # shown by a console example, with its warning
        kind, _, statuses = label.partition(" ")
        for status in statuses.split(" / ") if statuses else [""]:
            rows.append((kind, status, shown.strip("`")))
    return rows


@pytest.mark.parametrize(("kind", "status", "text"), built_in_text_rows())
def test_each_built_in_text_readme_shows_is_the_one_translate_writes(
    kind: str, status: str, text: str, bare_env: dict[str, str]
) -> None:
    import json

    from conftest import invoke

    sample = json.loads((ROOT / "samples" / f"{kind}.json").read_text())
    if status:
        sample[kind]["status"] = status
    run = invoke("translate", kind, "--format", "json", input=json.dumps(sample))
    assert run.exit_code == 0, run.stderr
    assert run.records[0]["sms"]["message"] == text


def readme_invocations() -> list[list[str]]:
    """Every `smspipe …` invocation README shows, from any block, as argument lists."""
    import shlex

    found = []
    for language in ("sh", "console", "bash", "crontab"):
        for _, block in readme_blocks(language):
            text = block.replace("\\\n", " ")
            for line in text.splitlines():
                line = line.removeprefix("$ ")
                for part in re.split(r"\|\||&&|\||;|'", line):
                    words = shlex.split(part.split("#")[0], posix=True) if part.count('"') % 2 == 0 else []
                    if "smspipe" in words and words[0] != "pip":
                        found.append(words[words.index("smspipe") + 1 :])
    return found


#: flags README mistypes on purpose, to show the error
DELIBERATE_TYPOS = {"--max-segment"}


def test_every_flag_readme_shows_is_one_the_command_takes() -> None:
    import typer.main

    from smspipe.cli.app import app

    root = typer.main.get_command(app)
    checked = 0
    for arguments in readme_invocations():
        command: Any = root
        words = list(arguments)
        while words and hasattr(command, "commands") and words[0] in command.list_commands(None):
            command = command.get_command(None, words.pop(0))
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        known |= {"-h", "--help"}
        flags = [word.split("=")[0] for word in words if word.startswith("-") and word != "-"]
        unknown = [flag for flag in flags if flag not in known | DELIBERATE_TYPOS]
        assert not unknown, (arguments, unknown)
        checked += 1
    assert checked >= 40
