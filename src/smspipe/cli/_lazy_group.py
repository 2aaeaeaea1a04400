"""app's fast path: a root command group that builds only the subcommand that runs.

Typer builds a click command from every command function's signature, for
all of smspipe's, on every run; a run uses one. Here the root group's
``commands`` mapping is replaced by one that builds each subcommand when it is
first looked up (help lists them all, and so builds them all).

That leans on Typer internals: a :class:`typer.core.TyperGroup` subclass whose
``commands`` attribute (click's ``Group.commands`` dict, which Typer's
``list_commands``/``get_command`` read) is swapped for a mapping, and
``typer.main.get_command`` to build one subcommand alone. Hence the
``typer`` range in pyproject.toml. tests/test_fast_paths.py compares help,
suggestions and exit codes with a plain Typer app that registers every command
(``pytest -m differential``); ``SMSPIPE_REFERENCE=typer`` builds that one
instead (:mod:`smspipe._fastpaths`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import typer
import typer.main
from typer.core import TyperGroup

if TYPE_CHECKING:
    # Typer vendors click: the type of a built command is only named there.
    from typer._click import Command

#: a subcommand's name -> the command function or Typer group that implements it
Loader = Callable[[str], Any]


def build_command(name: str, target: Any) -> Command:
    """The click command for *target*, a command function or a Typer group, named *name*."""
    if isinstance(target, typer.Typer):  # a group of its own (config)
        command = typer.main.get_command(target)
        command.name = name
        return command
    single = typer.Typer(add_completion=False)
    single.command(name)(target)
    return typer.main.get_command(single)


class LazyCommands(MutableMapping[str, "Command"]):
    """The root group's subcommands by name, each built when first looked up."""

    def __init__(self, names: Iterable[str], load: Loader) -> None:
        self._names = tuple(names)
        self._load = load
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            self._built[name] = build_command(name, self._load(name))
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._names), **self._built})

    def __len__(self) -> int:
        return len({**dict.fromkeys(self._names), **self._built})


def lazy_group(names: Iterable[str], load: Loader, base: type[TyperGroup] = TyperGroup) -> type[TyperGroup]:
    """A *base* subclass whose subcommands *names* are built by ``load(name)`` on first use."""
    listed = tuple(names)

    class LazyGroup(base):  # type: ignore[valid-type,misc]
        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            self.commands = LazyCommands(listed, load)

    return LazyGroup
