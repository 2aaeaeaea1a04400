"""`smspipe config check`: verify the Twilio credentials by fetching the account."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from smspipe.cli import options, output
from smspipe.cli.app import guarded


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
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log the HTTP request to stderr (secrets masked).")
    ] = False,
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
        flags = {
            "account_sid": account_sid,
            **secrets,
            "api_key": api_key,
            "api_url": api_url,
            "allow_insecure_http": allow_insecure_http or None,
            "timeout": timeout,
        }
        options.check_flags(flags)
        verdict = verify(config_path, flags, http_log=output.err if verbose else None)
        if json_output or not output.is_terminal(sys.stdout):
            output.write_json_line(verdict)
        else:
            line = (
                f"credentials OK: account {verdict['account_sid']} "
                f"({verdict['friendly_name']}), status {verdict['status']}, "
                f"{verdict['credentials']} from {verdict['source']}"
            )
            output.console().print(line, style="green" if verdict["ok"] else "yellow")
        if not verdict["ok"]:
            output.err(
                f"smspipe: account {verdict['account_sid']} is {verdict['status']}: "
                "Twilio will not send from it; see https://console.twilio.com"
            )
            raise typer.Exit(1)


def verify(config_path: Path | None, flags: dict[str, Any], http_log: Any = None) -> dict[str, Any]:
    """Fetch the account the credentials belong to; raise the error that explains why not.

    Returns ``{ok, account_sid, friendly_name, status, type, credentials, source, api_url}``
    and never the account's auth token (Twilio returns it with the account).
    """
    from smspipe import config
    from smspipe.errors import AuthenticationError, TemporaryFailure, UsageError
    from smspipe.gateway import (
        TWILIO_BASE_URL,
        AuthRefused,
        Gateway,
        GatewayError,
        TemporaryFault,
    )

    settings = config.load(config_path, flags=flags)
    for warning in settings.warnings:
        output.err(f"smspipe: warning: {warning}")
    credentials = config.resolve_credentials(settings)
    api_url = settings.resolved.api_url_for_sending()
    gateway = Gateway(credentials, api_url=api_url, timeout=settings.resolved.timeout, http_log=http_log)
    try:
        account = gateway.fetch_account()
    except AuthRefused as exc:
        raise AuthenticationError(
            f"{exc.message}",
            hint=f"check the {credentials.method} for account "
            f"{credentials.account_sid} (from {credentials.source})",
        ) from None
    except TemporaryFault as exc:
        raise TemporaryFailure(
            exc.message, hint="check the network (or --api-url) and try again later"
        ) from None
    except GatewayError as exc:
        code = f" (error {exc.code}, {exc.more_info})" if exc.code else ""
        raise UsageError(
            f"Twilio did not return the account {credentials.account_sid}: {exc.message}{code}",
            hint="check the account SID",
        ) from None
    finally:
        gateway.close()
    status = str(account.get("status") or "unknown")
    return {
        "ok": status == "active",
        "account_sid": account.get("sid") or credentials.account_sid,
        "friendly_name": account.get("friendly_name"),
        "status": status,
        "type": account.get("type"),
        "credentials": credentials.method,
        "source": credentials.source,
        "api_url": api_url or TWILIO_BASE_URL,
    }
