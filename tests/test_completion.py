"""Shell completion (issue 13, item 7): Typer's --install-completion and
--show-completion, completing the lazily built commands and their flags."""

from __future__ import annotations

import os

import pytest

from conftest import invoke, run_process


@pytest.fixture
def env(bare_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


def test_help_offers_completion() -> None:
    run = invoke("--help")
    assert "--install-completion" in run.stdout and "--show-completion" in run.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_the_script_for_the_shell(shell: str, env: dict[str, str]) -> None:
    run = run_process("--show-completion", shell, env=env)
    assert run.exit_code == 0, run.stderr
    assert "_SMSPIPE_COMPLETE" in run.stdout


@pytest.mark.parametrize(
    ("words", "word", "expected"),
    [
        ("smspipe va", "1", "validate"),
        ("smspipe tr", "1", "translate"),
        ("smspipe send --dry", "2", "--dry-run"),
        ("smspipe send --form", "2", "--format"),
        ("smspipe config ch", "2", "check"),
    ],
)
def test_bash_completes_commands_and_flags(words: str, word: str, expected: str, env: dict[str, str]) -> None:
    completing = {**env, "_SMSPIPE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": word}
    run = run_process(env=completing)
    assert run.exit_code == 0, run.stderr
    assert run.stdout.split() == [expected]
