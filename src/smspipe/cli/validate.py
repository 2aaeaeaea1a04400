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
    json_report: Annotated[
        bool, typer.Option("--json", help="Report as NDJSON, one line per document (the default when piped).")
    ] = False,
    pass_valid: Annotated[
        bool,
        typer.Option(
            "--pass",
            help="Write the valid documents, normalised, to stdout and the report to "
            "stderr, for the next command in a pipe.",
        ),
    ] = False,
    region: options.Region = None,
    max_segments: options.MaxSegments = None,
    config_path: options.ConfigPath = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line on stderr.")] = False,
) -> None:
    """Check SMS documents against the schema, phone rules and encoding.

    Exit 0 when every document is valid, 1 when any is invalid or unreadable,
    2 on a usage error.

      smspipe validate samples/sms.json

      smspipe translate order orders.ndjson | smspipe validate --pass | smspipe send
    """
    with guarded():
        from smspipe import config, documents, sms
        from smspipe.cli._streams import never_fail_on_surrogates
        from smspipe.errors import ExitCode

        never_fail_on_surrogates()

        settings = config.load(config_path, flags={"default_region": region, "max_segments": max_segments})
        for warning in settings.warnings:
            output.err(f"smspipe: warning: {warning}")
        resolved = settings.resolved
        policy = sms.make_policy(resolved.default_region, resolved.allowed_countries, resolved.max_segments)
        sources = documents.input_sources(
            inputs, output.is_terminal(sys.stdin), "smspipe validate - < batch.ndjson"
        )

        to_terminal = output.is_terminal(sys.stdout)
        if pass_valid:
            report = _Report(json=json_report, stream=sys.stderr, rich=False)
        else:
            as_json = json_report or not to_terminal
            report = _Report(json=as_json, stream=sys.stdout, rich=not as_json)

        valid = invalid = 0
        settle_heap()
        add, check = report.add, sms.check
        for item in documents.read_values(sources):
            verdicts = (
                [sms.problem_verdict(item)] if isinstance(item, documents.Problem) else check(item, policy)
            )
            for verdict in verdicts:
                add(verdict)
                if verdict.errors or verdict.sms is None:  # not verdict.valid, without a property call
                    invalid += 1
                else:
                    valid += 1
                    if pass_valid:
                        output.write_json_line(verdict.normalised())
        sys.stdout.flush()
        if not quiet:
            summary = f"{output.plural(valid + invalid, 'document')}: {valid} valid, {invalid} invalid"
            if report.rich:
                report.console.print(summary, style="bold red" if invalid else "bold green")
            else:
                output.err(summary)
        if invalid:
            raise typer.Exit(int(ExitCode.INVALID))


class _Report:
    """Writes one verdict at a time: NDJSON, plain lines, or rich on a terminal."""

    def __init__(self, *, json: bool, stream: IO[str], rich: bool) -> None:
        self.json = json
        self.stream = stream
        self.rich = rich
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = output.console(stderr=self.stream is sys.stderr)
        return self._console

    def add(self, verdict: Verdict) -> None:
        if self.json:
            output.write_json_line(verdict.report(), self.stream)
        elif self.rich:
            self._rich(verdict)
        else:
            self._plain(verdict)

    def _plain(self, verdict: Verdict) -> None:
        for error in verdict.errors:
            output.err(f"{verdict.where}: {error}")
        for warning in verdict.warnings:
            output.err(f"{verdict.where}: warning: {warning}")

    def _rich(self, verdict: Verdict) -> None:
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
        self.console.print(line)
        for error in verdict.errors:
            self.console.print(Text("        ") + Text(str(error), style="red"))
        for warning in verdict.warnings:
            self.console.print(Text("        warning: ", style="yellow") + Text(str(warning)))
