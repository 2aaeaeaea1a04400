"""`smspipe translate order|customer|shipment`: hub objects into SMS request documents."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smspipe.cli import options, output
from smspipe.cli.app import guarded, settle_heap

if TYPE_CHECKING:
    from smspipe import translate as core


class Kind(StrEnum):
    order = "order"
    customer = "customer"
    shipment = "shipment"


def _kind(value: str) -> Kind:
    """A kind as the user may say it: ``orders`` is ``order`` (the hub's plural key)."""
    word = value.strip().lower()
    for kind in Kind:
        if word in (kind.value, kind.value + "s"):
            return kind
    raise typer.BadParameter(f"{value!r} is not a kind: choose order, customer or shipment")


class AddressChoice(StrEnum):
    shipping = "shipping"
    billing = "billing"


def translate(
    kind: Annotated[
        Kind,
        typer.Argument(
            help="What the inputs hold: order, customer or shipment (orders, customers, shipments too).",
            metavar="KIND",
            show_default=False,
            parser=_kind,
        ),
    ],
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[INPUT]...",
            help='Files of hub objects (JSON, array or NDJSON; {"order": …}, '
            '{"orders": […]} or bare); - for stdin (the default when '
            "stdin is piped).",
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            "-t",
            help="Jinja2 template for every object (wins over everything).",
            show_default=False,
        ),
    ] = None,
    template_file: Annotated[
        Path | None,
        typer.Option("--template-file", "-T", help="Read the template from a file.", show_default=False),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Sender written into every document (config from; else left out for send to fill in).",
            show_default=False,
        ),
    ] = None,
    address: Annotated[
        AddressChoice | None,
        typer.Option(
            "--address",
            help="Whose phone to try first (config address; shipping). The other address is the fallback.",
            show_default=False,
        ),
    ] = None,
    shop_name: Annotated[
        str | None,
        typer.Option(
            "--shop-name",
            help="Shop name the built-in texts start with (config shop_name).",
            show_default=False,
        ),
    ] = None,
    max_segments: options.MaxSegments = None,
    region: options.Region = None,
    config_path: options.ConfigPath = None,
    output_format: options.Format = None,
    json_output: options.JsonFlag = False,
    quiet: options.Quiet = False,
    verbose: options.Verbose = False,
) -> None:
    """Render hub objects into SMS request documents, one per object.

    Exit 0 when every object was translated, 1 when some could not be (a line
    on stderr says which and why), 2 on a usage error (bad flag, missing file,
    template that does not compile).

      smspipe translate order orders.ndjson | smspipe validate --pass | smspipe send

      smspipe translate shipment -t 'Order {{ shipment.order_id }} is on its way' shipments.json
    """
    with guarded():
        from smspipe import api
        from smspipe.cli._streams import never_fail_on_surrogates
        from smspipe.errors import ExitCode

        never_fail_on_surrogates()
        given = options.given(
            sender=sender,
            address=address.value if address else None,
            shop_name=shop_name,
            max_segments=max_segments,
            default_region=region,
        )
        options.check_flags(options.as_settings(given))
        sources = options.sources(inputs, f"smspipe translate {kind.value} - < {kind.value}s.ndjson")
        outcomes = api.translate(
            sources,
            kind.value,
            template=template,
            template_file=template_file,
            config=config_path,
            on_warning=output.warnings(quiet=quiet),
            **given,
        )
        pretty = not options.as_json(output_format, json_output)
        settle_heap()
        translated, failed = _write(outcomes, pretty=pretty, quiet=quiet, verbose=verbose)
        sys.stdout.flush()
        options.note_empty_stdin(sources, translated + failed, quiet=quiet)
        if not quiet:
            output.err(
                f"{output.plural(translated + failed, kind.value)}: {translated} translated, {failed} failed"
            )
        if failed:
            raise typer.Exit(int(ExitCode.INVALID))


def _write(outcomes: Iterable[core.Outcome], *, pretty: bool, quiet: bool, verbose: bool) -> tuple[int, int]:
    """Each request to stdout, each problem (and with -v each translation) to stderr; the counts."""
    write = output.write_json_pretty if pretty else output.write_json_line
    translated = failed = 0
    with output.ErrLines() as err_lines:
        for outcome in outcomes:
            if outcome.request is not None:
                write(outcome.request)
                translated += 1
                if verbose:
                    err_lines.add(_translated_line(outcome))
            else:
                err_lines.add(outcome.error_line())
                failed += 1
            if outcome.warnings and not quiet:
                for line in outcome.warning_lines():
                    err_lines.add(line)
    return translated, failed


def _translated_line(outcome: core.Outcome) -> str:
    request = outcome.request or {}
    sms = request.get("sms") or {}
    prefix = f"{outcome.where}: {outcome.label}" if outcome.label else outcome.where
    return f"{prefix}: ok: {request.get('request_id')} to {sms.get('phone')}"
