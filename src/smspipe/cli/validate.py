"""`smspipe validate`: check SMS documents; report, or pass the valid ones on."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Annotated

import typer

from smspipe.cli import options, output
from smspipe.cli.app import guarded, settle_heap

if TYPE_CHECKING:
    from rich.console import Console

    from smspipe.sms import Verdict


def validate(
    inputs: options.Inputs = None,
    output_format: options.Format = None,
    json_report: options.JsonFlag = False,
    pass_valid: Annotated[
        bool,
        typer.Option(
            "--pass",
            help="Write the valid documents, normalised, to stdout and the report to "
            "stderr (NDJSON with --json), for the next command in a pipe.",
        ),
    ] = False,
    region: options.Region = None,
    max_segments: options.MaxSegments = None,
    config_path: options.ConfigPath = None,
    quiet: options.Quiet = False,
    verbose: options.Verbose = False,
) -> None:
    """Check SMS documents against the schema, phone rules and encoding.

    Every problem is one line on stderr (source:line: what, how to fix),
    whatever stdout gets. Exit 0 when every document is valid (or there are
    none), 1 when any is invalid or unreadable, 2 on a usage error.

      smspipe validate samples/sms.json

      smspipe translate order orders.ndjson | smspipe validate --pass | smspipe send
    """
    with guarded():
        from smspipe import api
        from smspipe.cli._streams import never_fail_on_surrogates

        never_fail_on_surrogates()
        given = options.given(default_region=region, max_segments=max_segments)
        options.check_flags(options.as_settings(given))
        sources = options.sources(inputs, "smspipe validate - < batch.ndjson")
        report = _report_for(pass_valid, output_format, json_report)
        problems = output.ErrLines()
        settle_heap()
        validation = api.validate(
            sources, config=config_path, on_warning=output.warnings(quiet=quiet), **given
        )
        add = report.add
        for verdict in validation:
            add(verdict)
            if pass_valid and not verdict.errors and verdict.sms is not None:
                output.write_json_line(verdict.normalised())
            if verdict.errors or verdict.warnings or verbose:
                _problem_lines(verdict, problems, quiet=quiet, verbose=verbose)
        sys.stdout.flush()
        problems.flush()
        totals = validation.totals
        options.note_empty_stdin(sources, totals.total, quiet=quiet)
        if not quiet:
            output.err(totals.line())
        code = api.exit_code(totals)
        if code:
            raise typer.Exit(int(code))


def _report_for(pass_valid: bool, chosen: options.OutputFormat | None, json_flag: bool) -> _Report:
    """Where the per-document report goes: stdout, or stderr with --pass (stdout then
    carries the documents), where text adds nothing to the problem lines."""
    if pass_valid:
        as_json = json_flag or chosen is options.OutputFormat.json
        return _Report(json=as_json, stream=sys.stderr, text=False)
    return _Report(json=options.as_json(chosen, json_flag), stream=sys.stdout, text=True)


def _problem_lines(verdict: Verdict, lines: output.ErrLines, *, quiet: bool, verbose: bool) -> None:
    """One line on stderr per error (always) and per warning (unless -q); with -v, a line
    for a valid document too. Added as one text: a stream of invalid documents is
    the case this runs for, once per document."""
    where = verdict.where
    text = [f"{where}: {error}" for error in verdict.errors]
    if not quiet:
        text += [f"{where}: warning: {warning}" for warning in verdict.warnings]
        if verbose and not verdict.errors and verdict.sms is not None:
            text.append(
                f"{where}: ok: {verdict.sms.to}, {verdict.encoding}, "
                f"{output.plural(verdict.segments or 0, 'segment')}"
            )
    if text:
        lines.add("\n".join(text))


class _Report:
    """Writes one verdict at a time: NDJSON, or a line of text (styled on a terminal);
    the errors and warnings themselves are the problem lines on stderr."""

    def __init__(self, *, json: bool, stream: IO[str], text: bool) -> None:
        self.json = json
        self.stream = stream
        self.text = text and not json
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = output.console(stderr=self.stream is sys.stderr)
        return self._console

    def add(self, verdict: Verdict) -> None:
        if self.json:
            output.write_json_line(verdict.report(), self.stream)
        elif self.text:
            self._text(verdict)

    def _text(self, verdict: Verdict) -> None:
        from rich.text import Text

        line = Text()
        if verdict.valid:
            line.append("ok      ", style="green")
            line.append(verdict.where, style="bold")
            assert verdict.sms is not None
            line.append(
                f"  {verdict.sms.to}  {verdict.encoding}, {output.plural(verdict.segments or 0, 'segment')}"
            )
        else:
            line.append("invalid ", style="red")
            line.append(verdict.where, style="bold")
            line.append(f"  {output.plural(len(verdict.errors), 'error')}")
        if verdict.warnings:
            line.append(f"  {output.plural(len(verdict.warnings), 'warning')}", style="yellow")
        self.console.print(line)
        # The problem line that follows on stderr must come after this one on a terminal.
        self.console.file.flush()
