"""`smspipe optout add|remove|list|import`: the suppression list, by hand."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from smspipe.cli import options, output
from smspipe.cli.app import guarded

app = typer.Typer(
    help="The suppression list: numbers `send` never texts (status suppressed). Twilio's 21610 "
    "answers add to it; so does `smspipe serve` on an inbound STOP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Phones = Annotated[
    list[str],
    typer.Argument(
        metavar="PHONE...", help="Numbers in E.164 (+14155552671), or national form for --region."
    ),
]
LedgerPath = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="The ledger holding the list (default: the state dir; config `ledger`; SMSPIPE_LEDGER).",
        show_default=False,
    ),
]
JsonOutput = Annotated[
    bool, typer.Option("--json", help="NDJSON (the default when stdout is not a terminal).")
]


def _common(region: str | None, ledger_path: str | None) -> dict[str, Any]:
    given = options.given(default_region=region)
    options.check_flags({**options.as_settings(given), "ledger": ledger_path or None})
    return given


@app.command("add")
def add(
    phones: Phones,
    source: Annotated[
        str, typer.Option("--source", help="Why they are on it (kept with each number).")
    ] = "manual",
    region: options.Region = None,
    ledger_path: LedgerPath = None,
    config_path: options.ConfigPath = None,
) -> None:
    """Put numbers on the suppression list.

    smspipe optout add +14155552671 "(415) 555-2672"
    """
    with guarded():
        given = _common(region, ledger_path)
        from smspipe import api

        added = api.optout_add(
            phones, source=source, ledger=ledger_path, config=config_path, on_warning=output.warn, **given
        )
        output.err(f"{output.plural(added, 'number')} added ({len(phones) - added} already on the list)")


@app.command("remove")
def remove(
    phones: Phones,
    region: options.Region = None,
    ledger_path: LedgerPath = None,
    config_path: options.ConfigPath = None,
) -> None:
    """Take numbers off the suppression list (they opted in again: START).

    smspipe optout remove +14155552671
    """
    with guarded():
        given = _common(region, ledger_path)
        from smspipe import api

        removed = api.optout_remove(
            phones, ledger=ledger_path, config=config_path, on_warning=output.warn, **given
        )
        output.err(
            f"{output.plural(removed, 'number')} removed ({len(phones) - removed} were not on the list)"
        )


@app.command("list")
def list_(
    json_output: JsonOutput = False,
    ledger_path: LedgerPath = None,
    config_path: options.ConfigPath = None,
) -> None:
    """Print the suppression list: phone, source, when it was added.

    smspipe optout list --json
    """
    with guarded():
        _common(None, ledger_path)
        from smspipe import api

        entries = api.optouts(ledger=ledger_path, config=config_path, on_warning=output.warn)
        as_json = json_output or not output.is_terminal(sys.stdout)
        for entry in entries:
            added = datetime.fromtimestamp(entry.added_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if as_json:
                output.write_json_line({"phone": entry.phone, "source": entry.source, "added_at": added})
            else:
                sys.stdout.write(f"{entry.phone:<16} {added}  {entry.source}\n")
        if not as_json:
            output.err(f"{output.plural(len(entries), 'number')} on the suppression list")


@app.command("import")
def import_(
    path: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="One number per line, or a CSV with a header (Twilio's consent export: contact_id, "
            "status); - for stdin.",
        ),
    ],
    source: Annotated[str, typer.Option("--source", help="Why they are on it.")] = "import",
    region: options.Region = None,
    ledger_path: LedgerPath = None,
    config_path: options.ConfigPath = None,
) -> None:
    """Add every number of a file to the suppression list.

    A line that is not a number is reported (FILE:LINE: what, how to fix) and
    the others are added all the same; exit 1 when there was such a line.

      smspipe optout import stop-list.csv
    """
    with guarded():
        given = _common(region, ledger_path)
        from smspipe import api

        done = api.optout_import(
            path, source=source, ledger=ledger_path, config=config_path, on_warning=output.warn, **given
        )
        for problem in done.problems:
            output.err(problem)
        output.err(
            f"{output.plural(done.read, 'number')} read, {done.added} added "
            f"({done.read - done.added} already on the list), {output.plural(len(done.problems), 'bad line')}"
        )
        if done.problems:
            raise typer.Exit(1)
