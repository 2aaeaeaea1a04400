"""`smspipe ledger migrate|copy`: make or migrate a ledger's schema, move history between ledgers."""

from __future__ import annotations

from typing import Annotated

import typer

from smspipe.cli import options, output
from smspipe.cli.app import guarded

app = typer.Typer(
    help="Look after the ledger of sent messages: make or migrate its schema, copy its history "
    "between SQLite and PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: conflicts listed one a line at most; the rest are counted
SHOWN_CONFLICTS = 20

LedgerTarget = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="The ledger: an SQLite file's path or a postgresql:// URL (default: config `ledger`, "
        "SMSPIPE_LEDGER, else the state dir's SQLite file).",
        show_default=False,
    ),
]


@app.command()
def migrate(ledger: LedgerTarget = None, config_path: options.ConfigPath = None) -> None:
    """Make the ledger, or migrate its schema to this smspipe's.

    `send` does it too when it can. For PostgreSQL, run it once as a role that
    may create the schema `smspipe` (the database's owner); the hosts may then
    send as a role that may only read and write its tables.

      smspipe ledger migrate --ledger postgresql://smspipe@db.internal/shop
    """
    with guarded():
        from smspipe import config
        from smspipe.ledger import admin

        flags = {"ledger": ledger}
        options.check_flags(flags)
        settings = config.load(config_path, flags=flags)
        done = admin.migrate(settings.resolved.ledger)
        output.err(f"smspipe: {done.summary()}")


@app.command()
def copy(
    source: Annotated[
        str,
        typer.Argument(metavar="SRC", help="The ledger to copy from: an SQLite file or a postgresql:// URL."),
    ],
    target: Annotated[str, typer.Argument(metavar="DST", help="The ledger to copy into (made if need be).")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Also write what was copied to stdout, as one JSON object.")
    ] = False,
) -> None:
    """Copy the history of one ledger into another: SQLite into PostgreSQL, or back.

    Keys the target lacks are added, with their messages; keys it holds with
    the same history are left be, so copying again adds nothing; keys it holds
    with another history are never overwritten: each is reported, and the exit
    status is 1. Copy when no run is using the source.

      smspipe ledger copy ~/.local/state/smspipe/ledger.sqlite3 postgresql://smspipe@db.internal/shop
    """
    with guarded():
        from smspipe.ledger import admin

        copied = admin.copy(source, target)
        conflicts = copied.merged.conflicts
        for key, why in conflicts[:SHOWN_CONFLICTS]:
            output.err(f"smspipe: conflict: {key}: {why}: left as it is in the target")
        if len(conflicts) > SHOWN_CONFLICTS:
            output.err(
                f"smspipe: … and {len(conflicts) - SHOWN_CONFLICTS} more conflicts (--json lists them all)"
            )
        output.err(f"smspipe: {copied.summary()}")
        if json_output:
            output.write_json_line(copied.as_dict())
        if copied.exit_code:
            raise typer.Exit(int(copied.exit_code))
