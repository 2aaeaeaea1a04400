"""`smspipe config check`: verify the Twilio credentials by fetching the account."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from smspipe.cli import options, output
from smspipe.cli.app import guarded

if TYPE_CHECKING:
    from smspipe.api import Account


def check(
    config_path: options.ConfigPath = None,
    account_sid: options.AccountSid = None,
    auth_token: options.AuthToken = None,
    auth_token_file: options.AuthTokenFile = None,
    api_key: options.ApiKey = None,
    api_secret: options.ApiSecret = None,
    api_secret_file: options.ApiSecretFile = None,
    api_url: options.ApiUrl = None,
    allow_insecure_http: options.AllowInsecureHttp = False,
    timeout: options.Timeout = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print the result as JSON (the default when stdout is not a terminal)."),
    ] = False,
    verbose: options.Verbose = False,
    quiet: options.Quiet = False,
) -> None:
    """Verify the Twilio credentials by fetching the account they belong to.

    Exit 0 when Twilio accepts them and the account is active, 1 when the
    account is not active, 2 when credentials are missing, half a pair, refused,
    or would go over plain HTTP to another machine, 75 when Twilio cannot be
    reached.

      smspipe config check

      smspipe config check --account-sid AC… --auth-token-file ~/.twilio-token
    """
    with guarded():
        secrets = options.read_secrets(
            {"auth_token": auth_token, "api_secret": api_secret},
            {"auth_token": auth_token_file, "api_secret": api_secret_file},
            stdin_holds_documents=False,
        )
        given = options.given(
            account_sid=account_sid,
            **secrets,
            api_key=api_key,
            api_url=api_url,
            allow_insecure_http=allow_insecure_http or None,
            timeout=timeout,
        )
        options.check_flags(options.as_settings(given))
        from smspipe import api

        account = api.verify_account(
            config=config_path,
            http_log=output.err if verbose else None,
            on_warning=output.warnings(quiet=quiet),
            **given,
        )
        _render(account, as_json=json_output or not output.is_terminal(sys.stdout))
        code = api.exit_code(account)
        if code:
            raise typer.Exit(code)


def _render(account: Account, *, as_json: bool) -> None:
    if as_json:
        output.write_json_line(account.record())
    else:
        line = (
            f"credentials OK: account {account.sid} ({account.friendly_name}), status {account.status}, "
            f"{account.credentials} from {account.source}"
        )
        output.console().print(line, style="green" if account.active else "yellow")
    if not account.active:
        output.err(
            f"smspipe: account {account.sid} is {account.status}: "
            "Twilio will not send from it; see https://console.twilio.com"
        )
