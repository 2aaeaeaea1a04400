"""`smspipe config init|show|path|example`: write, inspect and locate the config file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from smspipe.cli import check, options, output
from smspipe.cli.app import guarded
from smspipe.cli.options import (
    AccountSid,
    AllowInsecureHttp,
    ApiKey,
    ApiSecret,
    ApiSecretFile,
    ApiUrl,
    AuthToken,
    AuthTokenFile,
    ConfigPath,
)

app = typer.Typer(
    help="Write, inspect and locate the config file (YAML; see `smspipe config example`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The options `init` writes and `show` lays over the environment and the file.
Sender = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Default sender: E.164 number, short code or alphanumeric sender ID.",
        show_default=False,
    ),
]
MessagingService = Annotated[
    str | None,
    typer.Option(
        "--messaging-service-sid",
        help="Messaging Service SID (MG…), used when no sender is given.",
        show_default=False,
    ),
]
Region = Annotated[
    str | None,
    typer.Option(
        "--default-region",
        "--region",
        help="Region for numbers in national form (e.g. US, GB).",
        show_default=False,
    ),
]
ShopName = Annotated[
    str | None,
    typer.Option("--shop-name", help="Shop name the built-in templates sign with.", show_default=False),
]

#: where these commands spell a setting otherwise than options.FLAGS
FLAG_NAMES = {"default_region": "--default-region"}


def _flag_values(**given: str | None) -> dict[str, str]:
    values = {("from" if name == "sender" else name): value for name, value in given.items()}
    return {name: value for name, value in values.items() if value is not None}


def _secrets(
    auth_token: str | None, auth_token_file: Path | None, api_secret: str | None, api_secret_file: Path | None
) -> dict[str, str]:
    """The secrets the flags give (`-`: one line of stdin; a file), registered for redaction."""
    found = options.read_secrets(
        {"auth_token": auth_token, "api_secret": api_secret},
        {"auth_token": auth_token_file, "api_secret": api_secret_file},
        stdin_holds_documents=False,  # config commands read no documents
    )
    return {name: value for name, value in found.items() if value is not None}


# --- init --------------------------------------------------------------------


@app.command("init")
def init(
    config_path: ConfigPath = None,
    account_sid: AccountSid = None,
    auth_token: AuthToken = None,
    auth_token_file: AuthTokenFile = None,
    api_key: ApiKey = None,
    api_secret: ApiSecret = None,
    api_secret_file: ApiSecretFile = None,
    sender: Sender = None,
    messaging_service_sid: MessagingService = None,
    default_region: Region = None,
    api_url: ApiUrl = None,
    allow_insecure_http: AllowInsecureHttp = False,
    shop_name: ShopName = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config file.")] = False,
    no_input: Annotated[
        bool, typer.Option("--no-input", help="Never ask, even on a terminal: write what the flags give.")
    ] = False,
) -> None:
    """Write a commented config file, readable by you only (mode 600).

    On a terminal it asks for what the flags do not give (the token without
    echo); otherwise it writes what the flags give, every other key commented
    out with an example. The path is --config, else SMSPIPE_CONFIG, else
    SMSPIPE_HOME/config.yaml, else the user config dir.

      smspipe config init

      smspipe config init --account-sid AC… --auth-token-file ~/.twilio-token --from +15017122661

      printf '%s' "$TOKEN" | smspipe config init --account-sid AC… --auth-token - --from +15017122661
    """
    with guarded():
        from smspipe import config
        from smspipe.errors import UsageError

        path, _ = config.locate(config_path, os.environ)
        if (path.exists() or path.is_symlink()) and not force:
            raise UsageError(
                f"{path} already exists",
                hint="use --force to overwrite it, or --config PATH to write another file",
            )
        values: dict[str, Any] = _flag_values(
            account_sid=account_sid,
            api_key=api_key,
            sender=sender,
            messaging_service_sid=messaging_service_sid,
            default_region=default_region,
            api_url=api_url,
            shop_name=shop_name,
        )
        values.update(_secrets(auth_token, auth_token_file, api_secret, api_secret_file))
        if allow_insecure_http:
            values["allow_insecure_http"] = True
        options.check_flags(values, FLAG_NAMES)
        config.check_api_url(values.get("api_url"), allow_insecure_http=allow_insecure_http)
        if not no_input and output.is_terminal(sys.stdin):
            _ask(values)

        text = config.render(
            values, name=str(path), origin="smspipe configuration, written by `smspipe config init`."
        )
        config.parse(text, path)  # what we are about to write must load
        config.write_file(path, text, force=force)
        settings = config.load(path, env=os.environ)  # read back, as every command will
        for warning in settings.warnings:
            output.warn(warning)
        output.err(f"smspipe: wrote {path} (mode 600)")
        if not (values.get("auth_token") or values.get("api_secret")):
            output.err(
                "smspipe: no credentials written: add them to the file, pass them as "
                "flags or set TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN"
            )


def _ask(values: dict[str, Any]) -> None:
    """Ask on the terminal for what the flags did not give."""
    from smspipe.errors import Interrupted

    try:
        if "account_sid" not in values:
            _prompt(values, "account_sid", "Twilio Account SID (AC…)")
        if not ({"auth_token", "api_key", "api_secret"} & values.keys()):
            _prompt(
                values, "auth_token", "Auth token (not shown; Enter to use an API key instead)", hide=True
            )
            if "auth_token" not in values:
                _prompt(values, "api_key", "API key SID (SK…; Enter for none)")
                if "api_key" in values:
                    _prompt(values, "api_secret", "API key secret (not shown)", hide=True, required=True)
        if not ({"from", "messaging_service_sid"} & values.keys()):
            _prompt(
                values,
                "from",
                "Default sender: +E.164 number, short code or alphanumeric ID (Enter for none)",
            )
            if "from" not in values:
                _prompt(values, "messaging_service_sid", "Messaging Service SID (MG…; Enter for none)")
        if "default_region" not in values:
            _prompt(values, "default_region", "Region for numbers in national form", default="US")
        if "shop_name" not in values:
            _prompt(values, "shop_name", "Shop name for the built-in templates (Enter for none)")
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("\n")
        raise Interrupted("stopped: nothing written") from None


def _prompt(
    values: dict[str, Any],
    name: str,
    text: str,
    *,
    hide: bool = False,
    default: str = "",
    required: bool = False,
) -> None:
    from smspipe import config
    from smspipe.errors import register_secret

    question = f"{text} [{default}]: " if default else f"{text}: "
    while True:
        answer = _read_answer(question, hide=hide).strip() or default
        if hide:
            register_secret(answer)
        if not answer:
            if required:
                output.err("  a value is needed here")
                continue
            return
        problem = config.check_value(name, answer)
        if problem is None:
            values[name] = answer
            return
        output.err(f"  {problem.removeprefix(name + ': ')}; try again (Ctrl-C to stop)")


def _read_answer(question: str, *, hide: bool) -> str:
    """One answer; the question goes to stderr (or the terminal), never to stdout.

    (typer.prompt writes part of the question to stdout, which holds only data.)
    """
    if hide:
        import getpass

        return getpass.getpass(question, stream=sys.stderr)
    sys.stderr.write(question)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\r\n")


# --- show --------------------------------------------------------------------


@app.command("show")
def show(
    config_path: ConfigPath = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object (the default when stdout is not a terminal).")
    ] = False,
    account_sid: AccountSid = None,
    auth_token: AuthToken = None,
    auth_token_file: AuthTokenFile = None,
    api_key: ApiKey = None,
    api_secret: ApiSecret = None,
    api_secret_file: ApiSecretFile = None,
    sender: Sender = None,
    messaging_service_sid: MessagingService = None,
    default_region: Region = None,
    api_url: ApiUrl = None,
    allow_insecure_http: AllowInsecureHttp = False,
    shop_name: ShopName = None,
) -> None:
    """Print the effective settings and where each comes from; secrets only as "(set)".

    Sources, strongest first: flag, environment (NAME), config file (PATH),
    default. The flags are those `send` takes, to see what a command line
    would use. Also the config file, the state dir, the ledger and which
    credentials `send` would use.

      smspipe config show

      smspipe config show --json | jq .settings.from
    """
    with guarded():
        from smspipe import config

        flags: dict[str, Any] = _flag_values(
            account_sid=account_sid,
            api_key=api_key,
            sender=sender,
            messaging_service_sid=messaging_service_sid,
            default_region=default_region,
            api_url=api_url,
            shop_name=shop_name,
        )
        flags.update(_secrets(auth_token, auth_token_file, api_secret, api_secret_file))
        if allow_insecure_http:
            flags["allow_insecure_http"] = True
        options.check_flags(flags, FLAG_NAMES)
        settings = config.load(config_path, flags=flags)
        for warning in settings.warnings:
            output.warn(warning)
        report = config.effective(settings)
        if json_output or not output.is_terminal(sys.stdout):
            from smspipe.errors import redact

            # Secrets are never in the report; redact() also catches one pasted into a wrong key.
            sys.stdout.write(redact(output.dumps(report)) + "\n")
        else:
            _render(report)


def _shown(value: Any) -> str:
    if value is None:
        return "(not set)"
    if value == "":
        return "(empty)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return output.dumps(value) if value else "(none)"
    return str(value)


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from smspipe.errors import redact

    console = output.console()
    exists = "" if report["config_file_exists"] else "  (does not exist)"
    credentials = report["credentials"]
    if "error" in credentials:
        using = Text(credentials["error"], style="yellow")
    else:
        who = credentials.get("api_key") or credentials["account_sid"]
        using = Text(f"{credentials['method']} for {who}, from {credentials['source']}")
    head = Table.grid(padding=(0, 2))
    head.add_row(
        Text("Config file", style="bold"),
        Text(f"{report['config_file']}{exists}"),
        Text(report["config_file_source"], style="dim"),
    )
    head.add_row(Text("State dir", style="bold"), Text(report["state_dir"]), Text(""))
    head.add_row(
        Text("Ledger", style="bold"), Text(report["ledger"]), Text(report["ledger_source"], style="dim")
    )
    head.add_row(Text("Credentials", style="bold"), using, Text(""))
    console.print(head)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Setting", style="bold")
    table.add_column("Value", overflow="fold")
    table.add_column("Source")
    for name, entry in report["settings"].items():
        default = entry["source"] == "default"
        table.add_row(
            name,
            Text(redact(_shown(entry["value"])), style="dim" if entry["value"] is None else ""),
            Text(entry["source"], style="dim" if default else "cyan"),
        )
    console.print(table)


# --- path, example -----------------------------------------------------------


@app.command("path")
def path(config_path: ConfigPath = None) -> None:
    """Print the config file's path, whether or not the file exists.

    $EDITOR "$(smspipe config path)"
    """
    with guarded():
        from smspipe import config

        found, _ = config.locate(config_path, os.environ)
        sys.stdout.write(f"{found}\n")


@app.command("example")
def example() -> None:
    """Print a commented config file with every key (what config.example.yaml holds).

    smspipe config example > config.example.yaml
    """
    with guarded():
        from smspipe import config

        sys.stdout.write(config.render())


app.command("check")(check.check)
