"""The Typer application, its global options, and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from smspipe import __version__
from smspipe.errors import ExitCode, SmspipeError, redact

app = typer.Typer(
    name="smspipe",
    help="Turn e-commerce events into text messages and deliver them through Twilio.\n\n"
    "  smspipe translate order orders.ndjson | smspipe validate --pass | smspipe send",
    no_args_is_help=True,
    add_completion=False,
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
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    show_traceback: Annotated[bool, typer.Option(
        "--traceback", help="On an internal error, print the traceback (secrets masked); "
                            "also SMSPIPE_DEBUG=1.")] = False,
) -> None:
    _options["traceback"] = show_traceback


def error_line(message: str) -> None:
    """One line on stderr, secrets masked, no markup."""
    sys.stderr.write(redact(message) + "\n")
    sys.stderr.flush()


@contextmanager
def guarded() -> Iterator[None]:
    """Run a command body: errors become one line on stderr and an exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except SmspipeError as exc:
        error_line(f"smspipe: error: {exc}")
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
            error_line("this is a bug in smspipe: rerun with --traceback (or SMSPIPE_DEBUG=1) "
                       "and report the output")
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _register_commands() -> None:
    from smspipe.cli import check, config_cmd, schema, send, translate, validate

    app.command("validate", no_args_is_help=False)(validate.validate)
    app.command("translate")(translate.translate)
    app.command("send", no_args_is_help=False)(send.send)
    app.command("schema")(schema.schema)
    config_cmd.app.command("check")(check.check)
    app.add_typer(config_cmd.app, name="config")

_register_commands()


def main() -> None:
    app(prog_name="smspipe")
