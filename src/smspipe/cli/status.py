"""`smspipe status`: what the ledger knows of the messages sent, refreshed from Twilio on demand."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from smspipe.cli import options, output
from smspipe.cli.app import guarded


def status(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only messages since: 24h, 30m, 7d, 2026-12-01, an ISO 8601 moment."),
    ] = None,
    status_names: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only these statuses (delivered, undelivered, failed, sent, queued…, or pending: "
            "not final); repeat or separate with commas.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Only messages to this number.")] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Only the messages of this request_id.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the newest N.", min=1)] = None,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="First fetch every shown message that is not final from Twilio (concurrency, rate and "
            "retries as send) and store its status.",
        ),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="One NDJSON line per message (the default when stdout is not a terminal)."
        ),
    ] = False,
    ledger_path: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="The ledger (default: the state dir; config `ledger`; SMSPIPE_LEDGER).",
            show_default=False,
        ),
    ] = None,
    region: options.Region = None,
    account_sid: options.AccountSid = None,
    auth_token: options.AuthToken = None,
    auth_token_file: options.AuthTokenFile = None,
    api_key: options.ApiKey = None,
    api_secret: options.ApiSecret = None,
    api_secret_file: options.ApiSecretFile = None,
    api_url: options.ApiUrl = None,
    allow_insecure_http: options.AllowInsecureHttp = False,
    timeout: options.Timeout = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Fetches in flight at once (default 4).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="At most R fetches started per second.")
    ] = None,
    config_path: options.ConfigPath = None,
    verbose: options.Verbose = False,
    quiet: options.Quiet = False,
) -> None:
    """Show what was sent, with its delivery status, error and price.

    On a terminal, a table, then a report on stderr: counts per status,
    delivery rate, median time to delivered, failures by error code (what
    it means, what to do) and by country, total price per currency.

    Exit 0 when every message shown is delivered (or sent, where the carrier
    gives no receipt), 1 when some failed or were undelivered, 75 when some
    are still pending (queued, sending…: --refresh later), 2 on a usage,
    credentials or ledger error.

      smspipe status --since 24h --refresh

      smspipe status --status failed,undelivered --json
    """
    with guarded():
        secrets: dict[str, Any] = {}
        if refresh:
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
            default_region=region,
            concurrency=concurrency,
            rate=rate,
        )
        options.check_flags({**options.as_settings(given), "ledger": ledger_path or None})
        from smspipe import api

        view = api.status(
            since=since,
            statuses=status_names,
            to=to,
            request_id=request_id,
            refresh=refresh,
            limit=limit,
            ledger=ledger_path,
            on_line=output.err,
            on_warning=output.warnings(quiet=quiet),
            http_log=output.err if verbose else None,
            config=config_path,
            **given,
        )
        if json_output or not output.is_terminal(sys.stdout):
            for line in view.lines:
                output.write_json_line(line.as_dict())
        else:
            _table(view.lines)
        for fault in view.faults:
            output.err(f"smspipe: could not refresh {fault}")
        if not quiet:
            if refresh:
                output.err(f"refreshed {output.plural(view.fetched, 'message')} ({view.changed} changed)")
            for text in view.report.lines():
                output.err(text)
        code = view.exit_code
        if code:
            raise typer.Exit(int(code))


def _table(lines: list[Any]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("TIME", "REQUEST_ID", "TO", "STATUS", "SID", "SEG", "ERROR", "PRICE"):
        table.add_column(column)
    for line in lines:
        row = line.as_dict()
        error = (
            f"{row['error_code']} {row['meaning'] or row['error_message'] or ''}" if row["error_code"] else ""
        )
        price = f"{row['price']} {row['price_unit']}" if row["price"] else ""
        table.add_row(
            (row["time"] or "")[:19].replace("T", " "),
            str(row["request_id"]),
            str(row["to"]),
            str(row["status"] or "-"),
            str(row["sid"]),
            str(row["segments"] or ""),
            error.strip(),
            price,
        )
    output.console().print(table)
