"""Messages from the core name settings, not flags: the command line is one caller among two.

The core writes ``setting("max_segments")`` (smspipe.spelling): ``max_segments``
from Python, ``--max-segments`` on the command line, through one mapping
(cli/options.FLAGS).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from smspipe import spelling
from smspipe.cli.options import FLAGS, SPELLING

CORE = Path(__file__).resolve().parent.parent / "src" / "smspipe"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings (they may show a command line)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def flags_in_strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    skip = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found += [f"{path.relative_to(CORE)}:{node.lineno}: {flag}" for flag in FLAG.findall(node.value)]
    return found


def test_no_string_of_the_core_spells_a_flag() -> None:
    modules = [path for path in CORE.rglob("*.py") if "cli" not in path.relative_to(CORE).parts]
    assert modules
    found = [line for path in modules for line in flags_in_strings(path)]
    assert found == []


def test_every_flag_of_the_mapping_is_a_flag_the_commands_take() -> None:
    import typer
    from typer.main import get_command

    from smspipe.cli.app import _COMMANDS, _implementation

    taken: set[str] = set()
    for name in _COMMANDS:
        target = _implementation(name)
        if not isinstance(target, typer.Typer):
            target = typer.Typer()
            target.command(name)(_implementation(name))
        group = get_command(target)
        for command in [group, *getattr(group, "commands", {}).values()]:
            for parameter in command.params:
                taken.update(parameter.opts)
    assert set(FLAGS.values()) - taken == set()


@pytest.mark.parametrize(
    ("name", "python", "command_line"),
    [
        ("max_segments", "max_segments", "--max-segments"),
        ("from", "sender", "--from"),
        ("force", "force=True", "--force"),
        ("no_ledger", "ledger=False", "--no-ledger"),
        ("reconcile_grace", "reconcile_grace", "reconcile_grace"),  # no flag: the config key
    ],
)
def test_a_setting_reads_as_each_caller_writes_it(name: str, python: str, command_line: str) -> None:
    assert spelling.setting(name) == python
    assert spelling.given(plural=True) == "arguments"
    with spelling.using(SPELLING):
        assert spelling.setting(name) == command_line
        assert spelling.given() == "flag"
    assert spelling.setting(name) == python
