"""README's promises: two set-up commands at the top, the same test command as CI."""

from __future__ import annotations

import re
from pathlib import Path

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
