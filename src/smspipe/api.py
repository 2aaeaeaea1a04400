"""smspipe as a library: validate, translate, send and verify, typed.

Every command of the ``smspipe`` CLI is one call here; the CLI parses its
flags, calls it, and renders what it returns. ::

    import smspipe

    validation = smspipe.validate([{"phone": "+14155552671", "message": "Order R1 shipped"}])
    for verdict in validation:
        print(verdict.valid, verdict.sms.to if verdict.sms else verdict.errors)
    smspipe.exit_code(validation.totals)          # ExitCode.OK

**Inputs** (every function that reads documents): a path (``"-"`` is stdin), a
file object, a Python object (a dict, a list of dicts), or an iterable of any
of these (a generator streams). Python objects are read as their JSON text,
named ``<python>:N`` in messages (:mod:`smspipe.inputs`).

**Settings** are keyword arguments named as the settings are (see
:class:`SettingValues`: ``default_region``, ``max_segments``, ``concurrency``…;
``sender`` for the ``from`` setting). They come first; then a document's own
``parameters``, then the environment (``TWILIO_ACCOUNT_SID``…), then the
config file (*config*, else ``SMSPIPE_CONFIG``, else the default path), then
the defaults, as on the command line. ``env={}`` leaves the environment out.

**Errors** the caller can act on are :class:`smspipe.errors.SmspipeError`
subclasses, each with the ``exit_code`` the CLI would exit with; every other
outcome is in the records returned, and :func:`exit_code` turns totals into
the exit code.

Nothing here imports Typer or rich; twilio and aiohttp are loaded only when
something is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Unpack

from smspipe.errors import ExitCode, SmspipeError, UsageError
from smspipe.spelling import setting

if TYPE_CHECKING:
    from datetime import datetime

    from smspipe.arguments import SettingValues
    from smspipe.config import Credentials, Settings
    from smspipe.delivery import Progress, Result, Totals
    from smspipe.gateway import GatewayError
    from smspipe.inputs import Inputs
    from smspipe.ledger import Ledger, OptOut
    from smspipe.sms import Policy, Verdict
    from smspipe.tracking import Line as StatusLine
    from smspipe.tracking import Report as StatusReport

__all__ = [
    "Account",
    "OptOutImport",
    "Validation",
    "ValidationTotals",
    "exit_code",
    "optout_add",
    "optout_import",
    "optout_remove",
    "optouts",
    "send",
    "send_async",
    "status",
    "update_message_status",
    "validate",
    "verify_account",
    "verify_account_async",
]


#: keyword arguments whose setting has another name
_SETTING_NAMES = {"sender": "from"}

ConfigPath = str | os.PathLike[str] | None
Lines = Callable[[str], None]


def load_settings(
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    *,
    on_warning: Lines | None = None,
) -> Settings:
    """The settings a call works with: *values* over the environment and the config file.

    Raises ConfigError (exit 2) for a broken config file or an ill-formed value,
    every problem at once. ::

        >>> settings = load_settings(env={}, values={"concurrency": 8, "sender": "+15017122661"})
        >>> settings.resolved.concurrency, settings.resolved.sender
        (8, '+15017122661')
    """
    from smspipe import config as config_package

    flags = {_SETTING_NAMES.get(name, name): _plain(value) for name, value in (values or {}).items()}
    settings = config_package.load(config, env=env, flags=flags)
    warn = on_warning or _log_warning
    for warning in settings.warnings:
        warn(warning)
    return settings


def _plain(value: Any) -> Any:
    """A value as the config file would hold it (a tuple or a set of countries: a list)."""
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return value


def policy_for(settings: Settings) -> Policy:
    """The checks beyond the schema, as *settings* configure them (an unknown region: exit 2)."""
    from smspipe import sms

    resolved = settings.resolved
    return sms.make_policy(resolved.default_region, resolved.allowed_countries, resolved.max_segments)


def _read(inputs: Inputs) -> Iterator[Any]:
    from smspipe import inputs as reader

    items = reader.as_list(inputs)
    reader.check(items)  # a missing file: exit 2 before any work
    return reader.read(items)


# --- validate ------------------------------------------------------------------------------


class ValidationTotals(NamedTuple):
    """How many SMS documents were valid and invalid (an unreadable one is invalid)."""

    valid: int = 0
    invalid: int = 0

    @property
    def total(self) -> int:
        return self.valid + self.invalid

    def line(self) -> str:
        """``3 documents: 2 valid, 1 invalid``."""
        noun = "document" if self.total == 1 else "documents"
        return f"{self.total} {noun}: {self.valid} valid, {self.invalid} invalid"


class Validation:
    """The verdicts of :func:`validate`, one per SMS, as the documents are read.

    Iterate it once; :attr:`totals` counts what has been iterated so far (all
    of it, at the end).
    """

    def __init__(self, items: Iterator[Any], policy: Policy) -> None:
        self._valid = self._invalid = 0
        self._verdicts = self._judge(items, policy)

    def __iter__(self) -> Iterator[Verdict]:
        return self._verdicts

    @property
    def totals(self) -> ValidationTotals:
        return ValidationTotals(self._valid, self._invalid)

    def _judge(self, items: Iterator[Any], policy: Policy) -> Iterator[Verdict]:
        from smspipe import documents, sms

        problem, check, problem_verdict = documents.Problem, sms.check, sms.problem_verdict
        for item in items:
            verdicts = [problem_verdict(item)] if isinstance(item, problem) else check(item, policy)
            for verdict in verdicts:
                if verdict.errors or verdict.sms is None:  # not verdict.valid, without a property call
                    self._invalid += 1
                else:
                    self._valid += 1
                yield verdict


def validate(
    inputs: Inputs,
    *,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> Validation:
    """Check SMS documents: the schema, the phone rules, the encoding and its segments.

    Returns the verdicts, one per SMS (a collection ``{"sms": [...]}`` gives one
    each), as they are read: ``verdict.valid``, ``.errors`` and ``.warnings``
    (each with a JSON path), ``.sms`` (the message, phone in E.164),
    ``.encoding``, ``.segments``; ``.report()`` is the record ``validate --json``
    prints, ``.normalised()`` the document ``validate --pass`` passes on. The
    settings used: ``default_region``, ``allowed_countries``, ``max_segments``. ::

        >>> import smspipe
        >>> validation = smspipe.validate(
        ...     [{"phone": "+14155552671", "message": "Order R1 shipped"}, {"phone": "12"}], env={}
        ... )
        >>> [verdict.valid for verdict in validation]
        [True, False]
        >>> validation.totals.line(), smspipe.exit_code(validation.totals)
        ('2 documents: 1 valid, 1 invalid', <ExitCode.INVALID: 1>)
    """
    loaded = load_settings(config, env, settings, on_warning=on_warning)
    return Validation(_read(inputs), policy_for(loaded))


# --- send --------------------------------------------------------------------------------


def _send_request(
    inputs: Inputs,
    *,
    dry_run: bool,
    ledger: str | os.PathLike[str] | Literal[False] | None,
    force: bool,
    http_log: Lines | None,
    config: ConfigPath,
    env: Mapping[str, str] | None,
    on_warning: Lines | None,
    settings: Mapping[str, Any],
    handle_signals: bool,
    schedule: bool = False,
    wait: float | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Any:
    from smspipe import delivery
    from smspipe.delivery.gates import Rules

    values = dict(settings)
    if ledger is not None and ledger is not False:
        values["ledger"] = os.fspath(ledger)
    loaded = load_settings(config, env, values, on_warning=on_warning)
    policy = policy_for(loaded)
    return delivery.SendRequest(
        settings=loaded,
        policy=policy,
        documents=_read(inputs),
        options=delivery.options_from(loaded, force=force, handle_signals=handle_signals),
        dry_run=dry_run,
        use_ledger=ledger is not False,
        http_log=http_log,
        rules=Rules.from_settings(loaded.resolved, schedule=schedule, clock=clock),
        wait=_wait_seconds(wait),
    )


def _wait_seconds(wait: float | None) -> float | None:
    if wait is None:
        return None
    if not wait >= 0:
        raise UsageError(f"wait: {wait!r} is not a number of seconds", hint="give 0 or more seconds")
    return float(wait)


def send(
    inputs: Inputs,
    *,
    dry_run: bool = False,
    ledger: str | os.PathLike[str] | Literal[False] | None = None,
    force: bool = False,
    schedule: bool = False,
    wait: float | None = None,
    clock: Callable[[], datetime] | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_line: Lines | None = None,
    progress: Progress | None = None,
    http_log: Lines | None = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> Totals:
    """Validate SMS documents, then deliver each valid one through Twilio, exactly once.

    Every document is judged as :func:`validate` judges it. A ledger (SQLite:
    *ledger* is its path, else the ``ledger`` setting, else the state dir;
    ``ledger=False`` for none) remembers what was sent: a re-run skips it, the
    same key for another recipient is a ``conflict`` (*force* sends anyway). 429,
    5xx and network faults are retried (``retries``, ``max_wait``), at most
    ``concurrency`` requests in flight and ``rate`` started per second; a message
    whose fate is unknown is looked up in Twilio's log, never sent again blindly.
    *dry_run* does everything but the HTTP call and needs no credentials.

    Before any request (and in a dry run): a recipient on the suppression list
    is ``suppressed`` (not a failure); in ``quiet_hours`` (the recipient's local
    time) a document not ``"category": "transactional"`` is ``deferred`` with
    ``not_before`` (exit 75: the next run sends it), or with *schedule* and a
    Messaging Service created ``scheduled`` for Twilio to send then; beyond
    ``max_per_recipient`` it is ``deferred``. *clock* (a function returning an
    aware datetime) replaces the system clock for these rules. *wait*: after
    sending, poll the messages this run created for up to that many seconds
    until each is final; each result then carries ``delivery`` (Twilio's
    status, error code and what it means) and is handed to *on_result* when
    its wait ends; exit 1 if any failed or was undelivered, 75 if any is still
    pending.

    Each document's :class:`~smspipe.delivery.Result` goes to *on_result* as it
    completes (``.status``, ``.sid``, ``.to``, ``.error``, ``.record()``: the
    NDJSON line ``smspipe send`` prints), from another thread; lines for a human
    (a reconciliation, an interruption) go to *on_line* (default: the
    ``smspipe`` logger), each HTTP request to *http_log*; *progress* holds live
    counters. Returns the totals: :func:`exit_code` of them is the CLI's exit
    code, ``.fatal_message`` says why the batch stopped (refused credentials).
    SIGINT and SIGTERM stop the run gracefully: nothing new starts, what is in
    flight settles (``totals.signal``).

    It runs an event loop of its own; inside a running one (a web server,
    Jupyter) ``await`` :func:`send_async`. ::

        >>> import smspipe
        >>> results = []
        >>> totals = smspipe.send(
        ...     [{"phone": "+14155552671", "message": "Order R1 shipped", "from": "+15017122661"}],
        ...     dry_run=True, ledger=False, on_result=results.append, env={},
        ... )
        >>> [(r.status.value, r.to) for r in results], smspipe.exit_code(totals)
        ([('dry-run', '+14155552671')], <ExitCode.OK: 0>)
    """
    _refuse_inside_a_loop("send", "send_async")
    from smspipe import delivery

    request = _send_request(
        inputs,
        dry_run=dry_run,
        ledger=ledger,
        force=force,
        http_log=http_log,
        config=config,
        env=env,
        on_warning=on_warning,
        settings=settings,
        handle_signals=True,
        schedule=schedule,
        wait=wait,
        clock=clock,
    )
    return delivery.send(
        request,
        on_result=on_result or _ignore,
        on_line=on_line or _log_line,
        progress=progress,
    )


async def send_async(
    inputs: Inputs,
    *,
    dry_run: bool = False,
    ledger: str | os.PathLike[str] | Literal[False] | None = None,
    force: bool = False,
    schedule: bool = False,
    wait: float | None = None,
    clock: Callable[[], datetime] | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_line: Lines | None = None,
    progress: Progress | None = None,
    http_log: Lines | None = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> Totals:
    """:func:`send`, in the running event loop (a web server, Jupyter, an asyncio program).

    The same arguments and results. The documents are read, and the ledger
    written, in threads: the loop is never blocked. Signals stay the caller's:
    cancelling the task abandons what is in flight (the next run reconciles it
    against Twilio's log, nothing is sent twice). ::

        >>> import asyncio, smspipe
        >>> async def main() -> smspipe.SendTotals:
        ...     return await smspipe.send_async(
        ...         {"phone": "+14155552671", "message": "Hi", "from": "+15017122661"},
        ...         dry_run=True, ledger=False, env={},
        ...     )
        >>> asyncio.run(main()).counts[smspipe.Status.DRY_RUN]
        1
    """
    from smspipe import delivery

    request = _send_request(
        inputs,
        dry_run=dry_run,
        ledger=ledger,
        force=force,
        http_log=http_log,
        config=config,
        env=env,
        on_warning=on_warning,
        settings=settings,
        handle_signals=False,
        schedule=schedule,
        wait=wait,
        clock=clock,
    )
    return await delivery.send_async(
        request,
        on_result=on_result or _ignore,
        on_line=on_line or _log_line,
        progress=progress,
    )


# --- verify an account ---------------------------------------------------------------------


class Account(NamedTuple):
    """The account a set of credentials belongs to, as Twilio reports it (never its token)."""

    sid: str
    friendly_name: str | None
    #: "active", "suspended", "closed"…
    status: str
    #: "Full" or "Trial"
    type: str | None
    #: how the credentials authenticate: "auth token" or "api key"
    credentials: str
    #: where the credentials came from: "environment", "config file (PATH)"…
    source: str
    #: the API the account was fetched from
    api_url: str

    @property
    def active(self) -> bool:
        """Twilio sends from an active account only."""
        return self.status == "active"

    def record(self) -> dict[str, Any]:
        """The JSON ``smspipe config check`` prints."""
        return {
            "ok": self.active,
            "account_sid": self.sid,
            "friendly_name": self.friendly_name,
            "status": self.status,
            "type": self.type,
            "credentials": self.credentials,
            "source": self.source,
            "api_url": self.api_url,
        }


class _Target:
    """What an account check sends: the credentials, where, how long it may take."""

    def __init__(self, credentials: Credentials, api_url: str | None, timeout: float) -> None:
        self.credentials = credentials
        self.api_url = api_url
        self.timeout = timeout

    def account(self, found: Mapping[str, Any]) -> Account:
        from smspipe.gateway import TWILIO_BASE_URL

        return Account(
            sid=str(found.get("sid") or self.credentials.account_sid),
            friendly_name=found.get("friendly_name"),
            status=str(found.get("status") or "unknown"),
            type=found.get("type"),
            credentials=self.credentials.method,
            source=self.credentials.source,
            api_url=self.api_url or TWILIO_BASE_URL,
        )

    def error(self, exc: GatewayError) -> SmspipeError:
        """The error the user can act on, for a fetch that failed."""
        from smspipe.errors import AuthenticationError, TemporaryFailure
        from smspipe.gateway import AuthRefused, EndpointMisconfigured, TemporaryFault

        credentials = self.credentials
        if isinstance(exc, AuthRefused):
            return AuthenticationError(
                exc.message,
                hint=f"check the {credentials.method} for account {credentials.account_sid} "
                f"(from {credentials.source})",
            )
        if isinstance(exc, TemporaryFault):
            return TemporaryFailure(
                exc.message, hint=f"check the network (or {setting('api_url')}) and try again later"
            )
        if isinstance(exc, EndpointMisconfigured):  # api_url leads elsewhere: nothing about the account
            return UsageError(exc.message)
        code = f" (error {exc.code}, {exc.more_info})" if exc.code else ""
        return UsageError(
            f"Twilio did not return the account {credentials.account_sid}: {exc.message}{code}",
            hint="check the account SID",
        )


def _target(
    config: ConfigPath, env: Mapping[str, str] | None, on_warning: Lines | None, settings: Mapping[str, Any]
) -> _Target:
    """The credentials resolved, and where they may go (never plain HTTP to another machine)."""
    from smspipe import config as config_package

    loaded = load_settings(config, env, settings, on_warning=on_warning)
    credentials = config_package.resolve_credentials(loaded)
    return _Target(credentials, loaded.resolved.api_url_for_sending(), loaded.resolved.timeout)


def verify_account(
    *,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    http_log: Lines | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> Account:
    """Prove the credentials work: fetch the account they belong to.

    The credentials are resolved as :func:`send` resolves them (a pair taken
    whole from the strongest source). Returns the :class:`Account`
    (``.active``: Twilio sends from it); raises AuthenticationError (refused,
    exit 2), CredentialsError (none, half a pair, plain HTTP to another
    machine: exit 2), UsageError (``api_url`` leads elsewhere, or no such
    account: exit 2), TemporaryFailure (Twilio unreachable: exit 75). Inside a
    running event loop, ``await`` :func:`verify_account_async`. ::

        >>> import smspipe
        >>> account = smspipe.verify_account()   # doctest: +SKIP
        >>> account.active, account.source       # doctest: +SKIP
        (True, 'environment')
    """
    _refuse_inside_a_loop("verify_account", "verify_account_async")
    from smspipe.gateway import GatewayError
    from smspipe.gateway import verify_account as fetch

    target = _target(config, env, on_warning, settings)
    try:
        found = fetch(target.credentials, api_url=target.api_url, timeout=target.timeout, http_log=http_log)
    except GatewayError as exc:
        raise target.error(exc) from None
    return target.account(found)


async def verify_account_async(
    *,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    http_log: Lines | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> Account:
    """:func:`verify_account` in the running event loop. ::

    >>> account = await smspipe.verify_account_async()   # doctest: +SKIP
    """
    from smspipe.gateway import GatewayError
    from smspipe.gateway import verify_account_async as fetch

    target = _target(config, env, on_warning, settings)
    try:
        found = await fetch(
            target.credentials, api_url=target.api_url, timeout=target.timeout, http_log=http_log
        )
    except GatewayError as exc:
        raise target.error(exc) from None
    return target.account(found)


# --- the ledger: delivery status and the suppression list (issue 14) ---------------------


LedgerPath = str | os.PathLike[str] | None


def _ledger_settings(
    ledger: LedgerPath,
    config: ConfigPath,
    env: Mapping[str, str] | None,
    on_warning: Lines | None,
    settings: Mapping[str, Any],
) -> Settings:
    values = dict(settings)
    if ledger is not None:
        values["ledger"] = os.fspath(ledger)
    return load_settings(config, env, values, on_warning=on_warning)


def _open_ledger(loaded: Settings, *, read_only: bool, verify: bool = True) -> Ledger | None:
    """The configured ledger; None when *read_only* and there is none yet. *verify* False:
    without the whole file's integrity check (one-row writes, as a server makes per request)."""
    from smspipe.ledger import open_ledger

    return open_ledger(loaded.resolved.ledger, read_only=read_only, verify=verify)


def update_message_status(
    sid: str,
    status: str,
    *,
    error_code: int | None = None,
    error_message: str | None = None,
    ledger: LedgerPath = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> bool:
    """Store a delivery status Twilio reported for message *sid* (a status callback, say).

    Only a step forward is stored (:mod:`smspipe.lifecycle`: ``sent`` never
    replaces ``delivered``, a final status is never replaced); returns whether
    the ledger changed. An error code that means the recipient opted out
    (21610, 63014) puts the recipient on the suppression list. A SID the
    ledger does not know changes nothing (False). ::

        >>> smspipe.update_message_status("SM…", "delivered", ledger="ledger.sqlite3")  # doctest: +SKIP
        True
    """
    from smspipe.delivery import suppression
    from smspipe.ledger import Delivery, SentQuery

    loaded = _ledger_settings(ledger, config, env, on_warning, settings)
    book = _open_ledger(loaded, read_only=False, verify=False)
    assert book is not None
    with book:
        changed = book.update_delivery(
            sid, Delivery(status, error_code=error_code, error_message=error_message)
        )
        if error_code in suppression.OPT_OUT_CODES:
            for record in book.sent(SentQuery(sid=sid)):
                book.add_optouts([suppression.bare(record.recipient)], suppression.source_for(error_code))
    return changed


def _numbers(phones: Iterable[str], loaded: Settings) -> list[str]:
    """*phones* in E.164 (the configured region for national forms); a UsageError naming the bad ones."""
    from smspipe.delivery import suppression

    if isinstance(phones, str):  # one number, not its characters
        phones = [phones]
    good, bad = suppression.normalise_all(phones, loaded.resolved.default_region)
    if bad:
        raise UsageError(
            "not a phone number: "
            + "; ".join(bad[:5])
            + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""),
            hint="give numbers in E.164 form (+14155552671) or national form for `default_region`",
        )
    return good


def optout_add(
    phones: Iterable[str],
    *,
    source: str,
    ledger: LedgerPath = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> int:
    """Put *phones* on the suppression list: ``send`` never texts them (status ``suppressed``).

    Numbers are normalised to E.164 (national forms read for ``default_region``;
    a ``whatsapp:`` prefix is dropped: the person opted out, not the channel).
    *source* says why (``inbound`` for a STOP, ``manual``…). All or nothing: a
    number that is not one raises UsageError (exit 2) and nothing is added.
    Returns how many were not on the list yet. ::

        >>> smspipe.optout_add(["+14155552671"], source="inbound")  # doctest: +SKIP
        1
    """
    loaded = _ledger_settings(ledger, config, env, on_warning, settings)
    numbers = _numbers(phones, loaded)
    book = _open_ledger(loaded, read_only=False, verify=False)
    assert book is not None
    with book:
        return book.add_optouts(numbers, source)


def optout_remove(
    phones: Iterable[str],
    *,
    ledger: LedgerPath = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> int:
    """Take *phones* off the suppression list (a START); how many were on it. ::

    >>> smspipe.optout_remove(["+14155552671"])  # doctest: +SKIP
    1
    """
    loaded = _ledger_settings(ledger, config, env, on_warning, settings)
    numbers = _numbers(phones, loaded)
    book = _open_ledger(loaded, read_only=True, verify=False)
    if book is None:
        return 0
    book.close()
    book = _open_ledger(loaded, read_only=False, verify=False)
    assert book is not None
    with book:
        return book.remove_optouts(numbers)


class StatusView(NamedTuple):
    """What :func:`status` found: one line per message, the report over them, what a refresh did."""

    #: ``line.as_dict()`` is the NDJSON ``smspipe status --json`` prints
    lines: list[StatusLine]
    report: StatusReport
    #: messages fetched from Twilio (a refresh), rows it moved forward, fetches that failed
    fetched: int = 0
    changed: int = 0
    #: ``SM…: why`` for each message a refresh could not fetch
    faults: list[str] = []  # noqa: RUF012 - a NamedTuple default, never mutated

    @property
    def exit_code(self) -> ExitCode:
        """75 when some message is pending, else 1 when some failed or was undelivered, else 0."""
        return self.report.exit_code()


def status(
    *,
    since: str | float | datetime | None = None,
    statuses: list[str] | None = None,
    to: str | None = None,
    request_id: str | None = None,
    refresh: bool = False,
    limit: int | None = None,
    ledger: LedgerPath = None,
    on_line: Lines | None = None,
    http_log: Lines | None = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> StatusView:
    """What the ledger knows of the messages Twilio created: status, error, price.

    Filters (all optional, all apply): *since* (``"24h"``, ``"7d"``,
    ``"2026-12-01"``, an ISO 8601 moment, Unix seconds or a datetime),
    *statuses* (Twilio's, or ``"pending"`` for every one not final), *to* (a
    number, normalised), *request_id*; *limit*: the newest N. *refresh* first
    fetches every selected message that is not final from Twilio (``GET`` by
    SID, with send's concurrency, pacing and retries) and stores its state,
    never moving a final status back. No ledger yet: nothing to show. ::

        >>> view = smspipe.status(since="24h", refresh=True)  # doctest: +SKIP
        >>> view.report.delivery_rate, view.exit_code         # doctest: +SKIP
        (0.98, <ExitCode.OK: 0>)
    """
    from datetime import UTC
    from datetime import datetime as moment_type

    from smspipe import tracking as status_core
    from smspipe.ledger import SentQuery

    loaded = _ledger_settings(ledger, config, env, on_warning, settings)
    now = moment_type.now(UTC)
    if isinstance(since, moment_type):
        since = since.timestamp()
    query = SentQuery(
        since=status_core.parse_since(since, now) if isinstance(since, str) else since,
        statuses=status_core.statuses_filter(statuses),
        to=_numbers([to], loaded)[0] if to else None,
        key=request_id,
        limit=limit,
    )
    book = _open_ledger(loaded, read_only=not refresh)
    if book is None:
        return StatusView([], status_core.Report())
    fetched = changed = 0
    faults: list[str] = []
    with book:
        records = book.sent(query)
        if refresh:
            from smspipe.delivery import follow
            from smspipe.lifecycle import is_final

            pending = [record.sid for record in records if not is_final(record.status)]
            if pending:
                found = follow.refresh(loaded, book, pending, on_line=on_line or _log_line, http_log=http_log)
                fetched, changed = len(found.states), found.changed
                faults = [f"{sid}: {fault.message}" for sid, fault in found.faults.items()]
                records = book.sent(query)
    lines = [status_core.Line(record) for record in records]
    return StatusView(lines, status_core.Report.of(records), fetched, changed, faults)


class OptOutImport(NamedTuple):
    """What :func:`optout_import` did: numbers read, newly added, and the lines it could not read."""

    read: int
    added: int
    #: ``opt-outs.csv:7: '12' is not a valid phone number…; fix or remove the line``
    problems: list[str]


def optout_import(
    path: str | os.PathLike[str],
    *,
    source: str = "import",
    ledger: LedgerPath = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> OptOutImport:
    """Add the numbers of a file to the suppression list (``-``: stdin).

    The file holds one number per line (``#`` comments and blank lines
    skipped), or is a CSV with a header row: the number is the column named
    ``contact_id`` (Twilio's consent exports), ``phone_number``, ``phone``,
    ``number``… (else the first), and where a ``status`` column exists only
    the rows that say opted out count. Numbers are normalised to E.164
    (``default_region`` for national forms). A line that is not a number is
    reported (``problems``) and the others are added all the same. ::

        >>> smspipe.optout_import("stop-list.csv").added  # doctest: +SKIP
        41
    """
    import sys

    from smspipe.delivery import suppression
    from smspipe.errors import InputError

    name = os.fspath(path)
    try:
        if name == "-":
            text, where = sys.stdin.read(), "<stdin>"
        else:
            with open(name, encoding="utf-8-sig", errors="replace") as handle:
                text, where = handle.read(), name
    except OSError as exc:
        raise InputError(
            f"{name}: cannot read it ({exc.strerror})", hint="give the path of a readable file"
        ) from None
    loaded = _ledger_settings(ledger, config, env, on_warning, settings)
    numbers, problems = suppression.read_optout_file(text, where, loaded.resolved.default_region)
    added = 0
    if numbers:
        book = _open_ledger(loaded, read_only=False)
        assert book is not None
        with book:
            added = book.add_optouts(numbers, source)
    return OptOutImport(len(numbers), added, [str(problem) for problem in problems])


def optouts(
    *,
    ledger: LedgerPath = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> list[OptOut]:
    """The suppression list, oldest first: :class:`~smspipe.ledger.OptOut` (``phone``, ``source``,
    ``added_at`` in Unix seconds). Empty when there is no ledger yet. ::

    >>> [o.phone for o in smspipe.optouts()]  # doctest: +SKIP
    ['+14155552671']
    """
    loaded = _ledger_settings(ledger, config, env, on_warning, settings)
    book = _open_ledger(loaded, read_only=True)
    if book is None:
        return []
    with book:
        return book.optouts()


# --- the exit code ------------------------------------------------------------------------


def exit_code(totals: Totals | ValidationTotals | Account) -> ExitCode:
    """The exit code the CLI would exit with, a pure function of what a call returned.

    ``send``'s totals: the most serious outcome wins (2 > 130/143 > 75 > 1 > 0);
    ``validate``'s: 1 when any document was invalid; an :class:`Account`: 1 when
    it is not active. ::

        >>> import smspipe
        >>> smspipe.exit_code(smspipe.ValidationTotals(valid=3, invalid=0))
        <ExitCode.OK: 0>
    """
    if isinstance(totals, ValidationTotals):
        return ExitCode.INVALID if totals.invalid else ExitCode.OK
    if isinstance(totals, Account):
        return ExitCode.OK if totals.active else ExitCode.INVALID
    from smspipe.delivery import exit_code as delivery_exit_code

    return delivery_exit_code(totals)


# --- helpers ------------------------------------------------------------------------------


def _refuse_inside_a_loop(name: str, instead: str) -> None:
    """A clear error, not asyncio's, when called where an event loop already runs."""
    import sys

    if "asyncio" not in sys.modules:  # no loop can be running: keep asyncio unloaded
        return
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(
        f"smspipe.{name}() was called inside a running event loop",
        hint=f"use `await smspipe.{instead}(...)` there (same arguments)",
    )


def _ignore(result: Any) -> None:
    return None


def _log_line(line: str) -> None:
    import logging

    logging.getLogger("smspipe").info(line)


def _log_warning(line: str) -> None:
    import logging

    logging.getLogger("smspipe").warning(line)
