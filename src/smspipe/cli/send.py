"""`smspipe send`: validate SMS documents, then deliver them through Twilio."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, ClassVar

import typer

from smspipe.cli import one_message, options, output
from smspipe.cli.app import guarded, settle_heap

if TYPE_CHECKING:
    from rich.console import Console

    from smspipe.cli._progress import InputBytes
    from smspipe.delivery import Progress, Result, Totals


def send(
    inputs: options.Inputs = None,
    to: one_message.To = None,
    body: one_message.Body = None,
    media_urls: one_message.MediaUrl = None,
    request_id: one_message.RequestId = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Validate and show what would be sent; no HTTP, no credentials needed."
        ),
    ] = False,
    output_format: options.Format = None,
    json_output: options.JsonFlag = False,
    sender: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Default sender (E.164 number, short code or alphanumeric ID); "
            "else the document's from, SMSPIPE_FROM, config `from`.",
            show_default=False,
        ),
    ] = None,
    messaging_service_sid: Annotated[
        str | None,
        typer.Option(
            "--messaging-service-sid", help="Send through this Messaging Service (MG…).", show_default=False
        ),
    ] = None,
    status_callback: Annotated[
        str | None,
        typer.Option(
            "--status-callback", help="URL Twilio calls with delivery status updates.", show_default=False
        ),
    ] = None,
    account_sid: options.AccountSid = None,
    auth_token: options.AuthToken = None,
    auth_token_file: options.AuthTokenFile = None,
    api_key: options.ApiKey = None,
    api_secret: options.ApiSecret = None,
    api_secret_file: options.ApiSecretFile = None,
    api_url: options.ApiUrl = None,
    allow_insecure_http: options.AllowInsecureHttp = False,
    timeout: options.Timeout = None,
    region: options.Region = None,
    max_segments: options.MaxSegments = None,
    ledger_path: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="Ledger of what was sent: an SQLite file, or a postgresql:// URL shared by several hosts "
            "(default: the state dir; config `ledger`; SMSPIPE_LEDGER).",
            show_default=False,
        ),
    ] = None,
    no_ledger: Annotated[
        bool, typer.Option("--no-ledger", help="Neither skip what was sent before nor record what is sent.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Send even what an earlier run sent, or sent to another recipient under the same key.",
        ),
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", help="Requests in flight at once, 1-100 (default 4).", show_default=False
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", help="At most R messages started per second (default: no limit).", show_default=False
        ),
    ] = None,
    shared_rate: Annotated[
        bool,
        typer.Option(
            "--shared-rate",
            help="--rate holds for every run using the ledger together (per sender), not for this "
            "run alone; config `shared_rate`.",
        ),
    ] = False,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            help="Retries of a temporary fault (429, 5xx, network) per message (default 5).",
            show_default=False,
        ),
    ] = None,
    max_wait: Annotated[
        float | None,
        typer.Option(
            "--max-wait",
            help="Longest wait between two attempts, seconds (default 60); a longer "
            "Retry-After leaves the message for the next run.",
            show_default=False,
        ),
    ] = None,
    quiet_hours: Annotated[
        str | None,
        typer.Option(
            "--quiet-hours",
            help='HH:MM-HH:MM in the recipient\'s local time: documents not "category": '
            '"transactional" are deferred (exit 75) until it ends (config `quiet_hours`).',
            show_default=False,
        ),
    ] = None,
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule",
            help="In quiet hours, with a Messaging Service: have Twilio send it when they end (scheduled).",
        ),
    ] = False,
    wait: Annotated[
        str | None,
        typer.Option(
            "--wait",
            metavar="[SECONDS]",
            is_flag=False,
            flag_value="300",
            help="After sending, wait up to SECONDS (default 300) for each message's final status: "
            "exit 1 if any failed or was undelivered, 75 if any is still pending. Put it after the inputs "
            "or write --wait=SECONDS.",
            show_default=False,
        ),
    ] = None,
    failed_path: Annotated[
        Path | None,
        typer.Option(
            "--failed",
            help="Write the documents that were not delivered to this file (NDJSON), ready for a re-run.",
            show_default=False,
        ),
    ] = None,
    config_path: options.ConfigPath = None,
    verbose: options.Verbose = False,
    quiet: options.Quiet = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar on stderr (default: when stderr is a terminal).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate SMS documents and deliver them through Twilio.

    Every document is checked exactly as `smspipe validate` checks it; an
    invalid one is reported and not sent. A ledger remembers what was sent,
    so a re-run skips it (and refuses the same request_id for another
    recipient: conflict); 429, 5xx and network faults are retried, and a
    message whose fate is unknown is looked up in Twilio's message log, never
    sent again blindly.

    Exit 0 when all were sent (or skipped as already sent), 1 when some were
    invalid, in conflict or rejected by Twilio, 2 on a usage, credentials or
    ledger error (Twilio refusing the credentials stops the batch), 75 when
    some are undelivered or of unknown fate because of temporary faults (run
    again later), 130 / 143 when interrupted by SIGINT / SIGTERM.

      smspipe translate order orders.ndjson | smspipe send

      smspipe send --dry-run samples/sms.json

      smspipe send --to +14155552671 --body "Your order R1001 has shipped"
    """
    with guarded():
        single = one_message.document_from_flags(to, body, media_urls, request_id, inputs)
        secrets = options.read_secrets(
            {"auth_token": auth_token, "api_secret": api_secret},
            {"auth_token": auth_token_file, "api_secret": api_secret_file},
            stdin_holds_documents=single is None and options.stdin_holds_documents(inputs),
        )
        given = options.given(
            account_sid=account_sid,
            **secrets,
            api_key=api_key,
            sender=sender,
            messaging_service_sid=messaging_service_sid,
            status_callback=status_callback,
            api_url=api_url,
            allow_insecure_http=allow_insecure_http or None,
            timeout=timeout,
            default_region=region,
            max_segments=max_segments,
            concurrency=concurrency,
            rate=rate,
            shared_rate=shared_rate or None,
            retries=retries,
            max_wait=max_wait,
            quiet_hours=quiet_hours,
        )
        options.check_flags({**options.as_settings(given), "ledger": ledger_path or None})
        sources: list[Any] = (
            [single] if single is not None else options.sources(inputs, "smspipe send - < batch.ndjson")
        )
        view = _View(
            dry_run=dry_run,
            as_json=options.as_json(output_format, json_output),
            show_progress=(progress if progress is not None else output.is_terminal(sys.stderr))
            and not quiet,
            quiet=quiet,
            verbose=verbose,
        )
        from smspipe import api

        if view.show_progress:
            from smspipe.cli._progress import input_bytes

            view.reading = input_bytes(sources)
        settle_heap()
        with view.showing(failed_path):
            totals = api.send(
                view.reading.files() if view.reading is not None else sources,
                dry_run=dry_run,
                ledger=False if no_ledger else (ledger_path or None),
                force=force,
                schedule=schedule,
                wait=options.seconds("wait", wait),
                on_result=view.emit,
                on_line=view.log,
                on_warning=view.warn,
                progress=view.progress,
                http_log=view.log if verbose else None,
                config=config_path,
                **given,
            )
        options.note_empty_stdin(sources, totals.total, quiet=quiet)
        view.finish(totals)
        code = api.exit_code(totals)
        if code:
            raise typer.Exit(code)


class _View:
    """What `send` shows: a result per document (NDJSON or a table), a progress bar, the
    documents to re-run (--failed), the count line."""

    def __init__(
        self, *, dry_run: bool, as_json: bool, show_progress: bool, quiet: bool, verbose: bool
    ) -> None:
        from smspipe.delivery import Progress

        self.dry_run = dry_run
        self.as_json = as_json
        self.show_progress = show_progress and not dry_run
        self.quiet = quiet
        self.verbose = verbose
        #: the input files' bytes read, for the bar's percentage and ETA (None: a pipe)
        self.reading: InputBytes | None = None
        self.progress = Progress()
        self._print_lock = threading.Lock()
        self._table: _Table | None = None
        self._display: _Display | None = None
        self._failed: IO[str] | None = None

    @contextmanager
    def showing(self, failed_path: Path | None) -> Iterator[None]:
        """The --failed file open and the progress bar up while the run lasts."""
        self._failed = _open_failed(failed_path) if failed_path is not None else None
        if self.show_progress:
            self._display = _Display(self.progress, shared=_same_terminal(), reading=self.reading)
            self._display.start()
        try:
            yield
        finally:
            if self._display is not None:
                self._display.stop()
            if self._failed is not None:
                self._failed.close()
                self._failed = None
            sys.stdout.flush()

    def log(self, line: str) -> None:
        with self._print_lock:
            output.err(line)
            sys.stderr.flush()

    def warn(self, line: str) -> None:
        if not self.quiet:
            self.log(f"smspipe: warning: {line}")

    def emit(self, result: Result) -> None:
        with self._print_lock:
            if self.as_json:
                output.write_json_line(result.record(), flush=True)
            else:
                self._row(result)
            if self.verbose or result.verdict.warnings or result.status not in _WITHOUT_PROBLEMS:
                for line in problem_lines(result, verbose=self.verbose, quiet=self.quiet):
                    output.err(line)
            if self._failed is not None and result.needs_rerun:
                document = result.failed_document()
                if document is not None:
                    output.write_document_line(document, self._failed, flush=True)

    def _row(self, result: Result) -> None:
        if self._table is None:
            display = self._display
            # On one terminal, rows go through the bar's console (above the bar).
            self._table = _Table(
                display.console if display is not None and display.shared else output.console(),
                dry_run=self.dry_run,
            )
        self._table.add(result)

    def finish(self, totals: Totals) -> None:
        from smspipe.delivery import no_sender_hint

        if not self.quiet:
            output.err(totals.line())
        if totals.no_sender and totals.fatal_message is None:
            output.err(f"smspipe: some documents have no sender: {no_sender_hint()}")
        if totals.fatal_message:
            output.err(f"smspipe: error: {totals.fatal_message}")
        elif totals.run_fault and not self.quiet:
            output.err(f"smspipe: {totals.run_fault}")


#: statuses that need no line on stderr (unless -v): the common case, checked first
_WITHOUT_PROBLEMS = frozenset({"sent", "skipped", "dry-run"})


def problem_lines(result: Result, *, verbose: bool = False, quiet: bool = False) -> list[str]:
    """The lines stderr gets for one result, whatever stdout gets: one per problem
    (an invalid document's errors, a refusal, a conflict, an unknown fate) and, unless
    *quiet*, per warning; with *verbose*, one for every other result too. A fault
    that stops the batch (credentials, sender) is said once, at the end."""
    verdict = result.verdict
    lines = _outcome_lines(result, verbose=verbose and not quiet)
    if not quiet and verdict.warnings:
        lines += [f"{verdict.where}: warning: {warning}" for warning in verdict.warnings]
    return lines


def _outcome_lines(result: Result, *, verbose: bool) -> list[str]:
    from smspipe.delivery import Status

    verdict, status, error = result.verdict, result.status, result.error
    where = verdict.where
    if status in (Status.SENT, Status.SKIPPED, Status.DRY_RUN):
        return [f"{where}: {status.value}: {result.summary}"] if verbose else []
    if error is not None and error.fatal:
        return []
    if status == Status.INVALID and verdict.errors:
        return [f"{where}: {issue}" for issue in verdict.errors]
    detail = (error.message if error is not None else None) or result.note or status.value
    detail = detail.removeprefix(f"{where}: ")
    if status == Status.INVALID:
        return [f"{where}: {detail}"]
    return [f"{where}: {status.value}: {result.to}: {detail}"]


def _open_failed(path: Path) -> IO[str]:
    from smspipe.errors import UsageError

    try:
        # Documents may carry credentials in their parameters: owner-only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise UsageError(
            f"--failed {path}: cannot write it ({exc.strerror})", hint="give a path in a writable directory"
        ) from None
    return os.fdopen(fd, "w", encoding="utf-8")


class _Table:
    """Results on a terminal, one aligned row each, as they complete."""

    STYLES: ClassVar[dict[str, str]] = {
        "sent": "green",
        "skipped": "cyan",
        "conflict": "red",
        "unknown": "yellow",
        "failed": "red",
        "invalid": "red",
        "dry-run": "yellow",
        "suppressed": "magenta",
        "deferred": "yellow",
        "scheduled": "cyan",
    }

    #: request IDs longer than this are cut (sha256 keys), so that the columns stay aligned
    KEY_WIDTH = 26

    def __init__(self, console: Console, *, dry_run: bool) -> None:
        self.console = console
        # A dry run has no SIDs: no column of dashes.
        self.show_sid = not dry_run
        self._header = False

    def add(self, result: Result) -> None:
        from rich.text import Text

        if not self._header:
            sid = f"{'SID':<34} " if self.show_sid else ""
            self.console.print(
                Text(f"{'STATUS':<8} {'REQUEST_ID':<{self.KEY_WIDTH}} {'TO':<16} {sid}MESSAGE", style="bold")
            )
            self._header = True
        line = Text()
        line.append(f"{result.status.value:<8} ", style=self.STYLES.get(result.status.value, ""))
        line.append(f"{_cut(result.key, self.KEY_WIDTH):<{self.KEY_WIDTH}} ")
        line.append(f"{result.to or '-':<16} ")
        if self.show_sid:
            line.append(f"{result.sid or '-':<34} ", style="dim")
        line.append(_message_column(result))
        self.console.print(line)
        if result.error is not None and result.error.more_info:
            self.console.print(Text(f"{'':<8} {result.error.more_info}", style="dim"))
        if result.status.value == "dry-run" and result.job is not None:
            job = result.job
            via = job.sender.sender or "-"
            if job.sender.messaging_service_sid:
                via += f" (messaging service {job.sender.messaging_service_sid})"
            self.console.print(
                Text(
                    f"{'':<8} from {via}, {result.verdict.encoding}, "
                    f"{output.plural(result.verdict.segments or 0, 'segment')}",
                    style="dim",
                )
            )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _message_column(result: Result) -> str:
    """The text sent (the recipient has its column), and why it was not sent."""
    from smspipe.delivery import Status
    from smspipe.delivery.results import quote_body

    message = result.verdict.sms
    if message is None:  # unreadable: the reader's words, without the place (its own column)
        detail = result.error.message if result.error is not None else "invalid document"
        return detail.removeprefix(f"{result.verdict.where}: ")
    text = quote_body(message.body)
    if result.status in (Status.SENT, Status.SKIPPED):
        return text + (f" ({result.note})" if result.note else "")
    if result.status == Status.DRY_RUN:
        return text
    reason = result.note or (result.error.message if result.error is not None else "")
    return f"{text}: {reason}" if reason else text


def _same_terminal() -> bool:
    """True when stdout and stderr are one and the same terminal."""
    if not (output.is_terminal(sys.stdout) and output.is_terminal(sys.stderr)):
        return False
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError):
        return False


class _Display:
    """A progress bar on stderr (a terminal): sent, skipped, failed, retrying, rate."""

    def __init__(self, progress: Progress, *, shared: bool, reading: InputBytes | None = None) -> None:
        self.counters = progress
        #: bytes read of the input files: a total, a percentage, an ETA (None: a pipe, the bar pulses)
        self.reading = reading
        #: stdout is the terminal the bar is drawn on
        self.shared = shared
        self.console = output.console(stderr=True)
        self._live: Any = None

    def start(self) -> None:
        import time

        from rich.progress import Progress

        describe, reading = self._describe, self.reading

        class Bar(Progress):
            def get_renderables(self) -> Any:
                for task in self.tasks:  # counters change between results too
                    task.description = describe()
                    if reading is not None:
                        self.update(task.id, completed=reading.read)
                yield from super().get_renderables()

        self.counters.started = time.monotonic()
        self._live = Bar(
            *self._columns(),
            console=self.console,
            transient=True,
            # Lines written meanwhile go above the bar; stdout only when it
            # is the same terminal (NDJSON piped elsewhere is left alone).
            redirect_stdout=self.shared,
            redirect_stderr=True,
        )
        total = reading.total if reading is not None and reading.total > 0 else None
        self._live.add_task(describe(), total=total)
        self._live.start()

    def _columns(self) -> list[Any]:
        """Spinner, bar, counters, elapsed; with the input's size, the percentage read and an ETA."""
        from rich.progress import (
            BarColumn,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self.reading is None:
            return [
                SpinnerColumn(),
                TextColumn("sending"),
                BarColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
            ]
        return [
            SpinnerColumn(),
            TextColumn("sending"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        ]

    def _describe(self) -> str:
        import time

        c = self.counters
        elapsed = max(time.monotonic() - c.started, 1e-6)
        rate = (c.sent + c.failed) / elapsed
        return (
            f"{c.sent} sent · {c.skipped} skipped · {c.failed} failed · {c.unknown} unknown · "
            f"{c.retrying} retrying · {rate:.1f}/s"
        )

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
