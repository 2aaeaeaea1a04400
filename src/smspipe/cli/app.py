"""The Typer application, its global options, and the one place errors become exit codes."""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from smspipe import __version__
from smspipe._fastpaths import use_reference
from smspipe.cli._lazy_group import lazy_group
from smspipe.cli._one_line import OneLineErrors
from smspipe.errors import ExitCode, SmspipeError, redact

# name -> (module of smspipe.cli, the command function or Typer in it).
_COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "validate"),
    "translate": ("translate", "translate"),
    "send": ("send", "send"),
    "schema": ("schema", "schema"),
    "status": ("status", "status"),
    # Groups last: Typer lists plain commands before groups (SMSPIPE_REFERENCE=typer lists the same)
    "config": ("config_cmd", "app"),
    "optout": ("optout", "app"),
    "ledger": ("ledger_cmd", "app"),
}


def _implementation(name: str) -> Any:
    module_name, attribute = _COMMANDS[name]
    return getattr(importlib.import_module(f"smspipe.cli.{module_name}"), attribute)


# Only the subcommand that runs is built (smspipe.cli._lazy_group), unless
# SMSPIPE_REFERENCE=typer asks for a plain Typer app with every command registered.
_EAGER = use_reference("typer")
_GROUP: dict[str, Any] = {
    "cls": OneLineErrors if _EAGER else lazy_group(_COMMANDS, _implementation, OneLineErrors)
}

app = typer.Typer(
    name="smspipe",
    **_GROUP,
    help="Turn e-commerce events into text messages and deliver them through Twilio.\n\n"
    "  smspipe translate order orders.ndjson | smspipe validate --pass | smspipe send",
    no_args_is_help=True,
    add_completion=True,
    # Locals hold tokens: never show them, and keep tracebacks for --traceback.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_options = {"traceback": False}


def show_tracebacks() -> bool:
    return _options["traceback"] or os.environ.get("SMSPIPE_DEBUG", "") not in ("", "0")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"smspipe {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    show_traceback: Annotated[
        bool,
        typer.Option(
            "--traceback",
            help="On an internal error, print the traceback (secrets masked); also SMSPIPE_DEBUG=1.",
        ),
    ] = False,
) -> None:
    _options["traceback"] = show_traceback


def error_line(message: str) -> None:
    """One line on stderr, secrets masked, no markup."""
    sys.stderr.write(redact(message) + "\n")
    sys.stderr.flush()


@contextmanager
def guarded() -> Iterator[None]:
    """Run a command body: errors become one line on stderr and an exit code; the
    core's messages name settings as flags (smspipe.spelling)."""
    from smspipe.cli.options import SPELLING
    from smspipe.cli.output import guard_streams
    from smspipe.spelling import using

    guard_streams()
    try:
        with using(SPELLING):
            yield
    except typer.Exit:
        raise
    except SmspipeError as exc:
        for line in str(exc).splitlines():  # several problems: one line each
            error_line(f"smspipe: error: {line}")
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        error_line("smspipe: interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as Unix tools do.
        _silence_stdout()
        raise typer.Exit(int(ExitCode.INVALID)) from None
    except Exception as exc:
        if show_tracebacks():
            import traceback

            error_line("".join(traceback.format_exception(exc)).rstrip())
        error_line(f"smspipe: internal error: {type(exc).__name__}: {exc}")
        if not show_tracebacks():
            error_line(
                "this is a bug in smspipe: rerun with --traceback (or SMSPIPE_DEBUG=1) and report the output"
            )
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


def settle_heap() -> None:
    """Call before streaming documents: what is loaded so far (modules, compiled
    templates and schemas) lives as long as the process, so the garbage
    collector's full passes need not walk it again and again (~5% of translate)."""
    gc.freeze()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main() -> None:
    app(prog_name="smspipe")


def _register_every_command() -> None:
    """The reference: every command registered with Typer, as Typer documents it."""
    for name in _COMMANDS:
        target = _implementation(name)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


if _EAGER:
    _register_every_command()
