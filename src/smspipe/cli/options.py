"""Options several commands share, declared once so that they read the same everywhere;
secrets from outside the command line; flag values checked before anything runs."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from smspipe.spelling import Spelling

#: setting -> the flag that sets it: the one mapping from the core's words to the
#: command line's (the core's messages name settings; see smspipe.spelling)
FLAGS = {
    "account_sid": "--account-sid",
    "auth_token": "--auth-token",
    "api_key": "--api-key",
    "api_secret": "--api-secret",
    "from": "--from",
    "messaging_service_sid": "--messaging-service-sid",
    "status_callback": "--status-callback",
    "api_url": "--api-url",
    "allow_insecure_http": "--allow-insecure-http",
    "default_region": "--region",
    "max_segments": "--max-segments",
    "shop_name": "--shop-name",
    "address": "--address",
    "ledger": "--ledger",
    "no_ledger": "--no-ledger",
    "concurrency": "--concurrency",
    "rate": "--rate",
    "shared_rate": "--shared-rate",
    "retries": "--retries",
    "max_wait": "--max-wait",
    "timeout": "--timeout",
    "force": "--force",
    "config": "--config",
    "template": "--template",
    "template_file": "--template-file",
    "dry_run": "--dry-run",
    "quiet_hours": "--quiet-hours",
    "schedule": "--schedule",
    "wait": "--wait",
}
SPELLING = Spelling("flag", "flags", FLAGS)

Inputs = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[INPUT]...",
        help="Files of SMS documents (one object, an array, or NDJSON); - for "
        "stdin (the default when stdin is piped).",
        show_default=False,
    ),
]
ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (else SMSPIPE_CONFIG, else SMSPIPE_HOME/config.yaml, else the user config dir).",
        show_default=False,
    ),
]
Region = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="Region for numbers in national form (config default_region; US).",
        show_default=False,
    ),
]
MaxSegments = Annotated[
    int | None,
    typer.Option(
        "--max-segments",
        min=1,
        help="Refuse messages longer than N segments (config max_segments).",
        show_default=False,
    ),
]
AccountSid = Annotated[
    str | None,
    typer.Option(
        "--account-sid",
        help="Twilio Account SID (AC…); else TWILIO_ACCOUNT_SID or config.",
        show_default=False,
    ),
]
AuthToken = Annotated[
    str | None,
    typer.Option(
        "--auth-token",
        help="Twilio auth token; - reads one line of stdin (where stdin holds no documents). "
        "A value given here shows in `ps`: prefer --auth-token-file or TWILIO_AUTH_TOKEN.",
        show_default=False,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", help="Twilio API key SID (SK…), with --api-secret.", show_default=False),
]
ApiSecret = Annotated[
    str | None,
    typer.Option(
        "--api-secret",
        help="Twilio API key secret; - reads one line of stdin (where stdin holds no documents). "
        "Prefer --api-secret-file or TWILIO_API_SECRET.",
        show_default=False,
    ),
]
ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="Twilio-compatible base URL (a mock, a proxy); also SMSPIPE_API_URL.",
        show_default=False,
    ),
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0.001, help="HTTP timeout per request, seconds (default 30).", show_default=False
    ),
]
AllowInsecureHttp = Annotated[
    bool,
    typer.Option(
        "--allow-insecure-http",
        help="Allow an http:// --api-url on another machine: the credentials then cross the "
        "network in clear (config allow_insecure_http). Loopback needs no permission.",
    ),
]
AuthTokenFile = Annotated[
    Path | None,
    typer.Option(
        "--auth-token-file",
        metavar="PATH",
        help="Read the auth token from this file (mode 600 advised; a trailing newline is stripped).",
        show_default=False,
    ),
]
ApiSecretFile = Annotated[
    Path | None,
    typer.Option(
        "--api-secret-file",
        metavar="PATH",
        help="Read the API key secret from this file (mode 600 advised; a trailing newline is stripped).",
        show_default=False,
    ),
]


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


Format = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        help="What stdout gets: text (a readable report) or json (NDJSON, one record a line). "
        "Default: text on a terminal, json otherwise. Problems go to stderr either way.",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Same as --format json.")]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Errors only on stderr: no warnings, no summary line, no progress."),
]
Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="More on stderr: a line for every document, not only problems; each HTTP request "
        "where one is made (secrets masked).",
    ),
]


def as_json(chosen: OutputFormat | None, json_flag: bool) -> bool:
    """Whether stdout gets NDJSON: --format, else --json, else NDJSON unless stdout is a terminal."""
    from smspipe.cli.output import is_terminal
    from smspipe.errors import UsageError

    if chosen is not None:
        if json_flag and chosen is not OutputFormat.json:
            raise UsageError("--json and --format text both given", hint="give one of them")
        return chosen is OutputFormat.json
    return json_flag or not is_terminal(sys.stdout)


def note_empty_stdin(sources: list[str], count: int, *, quiet: bool) -> None:
    """Say so when stdin was the only input and held no document (a pipe fed nothing).

    Not an error (a cron job with no new orders exits 0), but a CI step piping
    nothing by mistake should be told.
    """
    from smspipe.cli.output import err
    from smspipe.documents import STDIN

    if count == 0 and not quiet and sources == [STDIN]:
        err("smspipe: warning: no documents read from stdin")


# --- secrets from outside the command line ------------------------------------------

#: config key -> (its value flag, its file flag, what it is)
_SECRET_FLAGS = {
    "auth_token": ("--auth-token", "--auth-token-file", "auth token"),
    "api_secret": ("--api-secret", "--api-secret-file", "API key secret"),
}


def stdin_holds_documents(inputs: list[str] | None) -> bool:
    """True when a command reading *inputs* reads its documents from stdin."""
    from smspipe.cli.output import is_terminal

    return "-" in (inputs or []) or (not inputs and not is_terminal(sys.stdin))


def read_secrets(
    given: dict[str, str | None], files: dict[str, Path | None], *, stdin_holds_documents: bool
) -> dict[str, str | None]:
    """The secret flags' values: a value, ``-`` (one line of stdin), or a file.

    *given* and *files* map auth_token/api_secret to the value and file flags.
    ``-`` is refused where stdin carries the documents: the token would be read
    as a document, or a document as the token. Every secret is registered for
    redaction before anything can print it.
    """
    from smspipe.config import read_secret_file
    from smspipe.errors import UsageError, register_secret

    found: dict[str, str | None] = {}
    for name, (value_flag, file_flag, what) in _SECRET_FLAGS.items():
        value, path = given.get(name), files.get(name)
        register_secret(value)
        if value is not None and path is not None:
            raise UsageError(f"{value_flag} and {file_flag} both given", hint="give the secret one way")
        if path is not None:
            value, warnings = read_secret_file(path, what=what)
            for warning in warnings:
                _warn(warning)
        elif value == "-":
            value = _secret_from_stdin(value_flag, file_flag, what, stdin_holds_documents)
        found[name] = value
    return found


def _secret_from_stdin(value_flag: str, file_flag: str, what: str, stdin_holds_documents: bool) -> str:
    from smspipe.cli.output import is_terminal
    from smspipe.config import read_secret_line
    from smspipe.errors import UsageError, register_secret

    if stdin_holds_documents:
        raise UsageError(
            f"{value_flag} -: stdin holds the documents here, not the {what}",
            hint=f"use {file_flag} PATH (or the environment), or give the documents as a file",
        )
    if is_terminal(sys.stdin):
        import getpass

        secret = getpass.getpass(f"{what[:1].upper()}{what[1:]} (not shown): ", stream=sys.stderr)
        register_secret(secret)
        if not secret:
            raise UsageError(f"no {what} typed", hint=f"type the {what}, or use {file_flag} PATH")
        return secret
    return read_secret_line(sys.stdin, what=what)


def _warn(line: str) -> None:
    from smspipe.cli.output import warn

    warn(line)


# --- flag values -----------------------------------------------------------------------


def given(**values: Any) -> dict[str, Any]:
    """The settings the flags give, as the API's keyword arguments (flags not given left out)."""
    return {name: value for name, value in values.items() if value is not None}


def as_settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """API keyword arguments as setting names (``sender`` is the ``from`` setting)."""
    return {("from" if name == "sender" else name): value for name, value in arguments.items()}


def sources(inputs: list[str] | None, example: str) -> list[str]:
    """The inputs to read: the paths given, else stdin when it is piped; refused (exit 2)
    when there is none or a file cannot be opened, before any work is done."""
    from smspipe import documents
    from smspipe.cli.output import is_terminal

    return documents.input_sources(inputs, is_terminal(sys.stdin), example)


def check_flags(flags: dict[str, Any], spelling: dict[str, str] | None = None) -> None:
    """Refuse ill-formed flag values (exit 2) before anything is read or sent.

    The message names the flag (:data:`FLAGS`, or *spelling* where a command
    spells one otherwise) and never repeats the value: it may be a secret given
    to the wrong flag.
    """
    from smspipe import config
    from smspipe.errors import UsageError

    for name, value in flags.items():
        if value is None or name not in config.KEYS:
            continue
        problem = config.check_value(name, value)
        if problem is not None:
            option = (spelling or {}).get(name) or FLAGS.get(name) or "--" + name.replace("_", "-")
            raise UsageError(f"{option}: {problem.removeprefix(name + ': ')}")


def seconds(name: str, text: str | None) -> float | None:
    """A flag's number of seconds (``--wait 60``), or None when not given; UsageError (exit 2) if not one."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        from smspipe.errors import UsageError

        raise UsageError(
            f"{FLAGS[name]} {text!r} is not a number of seconds",
            hint=f"give 0 or more seconds ({FLAGS[name]}=SECONDS, or put {FLAGS[name]} after the inputs)",
        )
    return value
