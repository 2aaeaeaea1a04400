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

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Unpack

from smspipe.errors import ExitCode, SmspipeError, UsageError
from smspipe.spelling import setting

if TYPE_CHECKING:
    from smspipe.arguments import SettingValues
    from smspipe.config import Credentials, Settings
    from smspipe.delivery import Progress, Result, Totals
    from smspipe.gateway import GatewayError
    from smspipe.inputs import Inputs
    from smspipe.sms import Policy, Verdict
    from smspipe.translate import Outcome

__all__ = [
    "Account",
    "Validation",
    "ValidationTotals",
    "exit_code",
    "send",
    "send_async",
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


# --- translate ---------------------------------------------------------------------------


def translate(
    inputs: Inputs,
    kind: Literal["order", "customer", "shipment"],
    *,
    template: str | None = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> Iterator[Outcome]:
    """Render hub objects (orders, customers, shipments) into SMS request documents.

    One :class:`~smspipe.translate.Outcome` per object, as they are read:
    ``.request`` (the document ``smspipe translate`` prints) or ``.error``
    (``.error_line()`` says where), ``.warnings``. *template* wins over the
    configured templates. The settings used: ``sender``, ``address``,
    ``shop_name``, ``default_region``, ``allowed_countries``, ``max_segments``. ::

        >>> import smspipe.api
        >>> order = {"order": {"id": "R1", "status": "complete",
        ...                    "shipping_address": {"phone": "+14155552671"}}}
        >>> [o.request["request_id"] for o in smspipe.api.translate(order, "order", env={})]
        ['order:R1:complete']
    """
    from smspipe import translate as core

    loaded = load_settings(config, env, settings, on_warning=on_warning)
    resolved = loaded.resolved
    translator = core.Translator(
        core.Options(
            kind=kind,
            template=(template, "template") if template is not None else None,
            config_templates=resolved.templates.get(kind),
            address=resolved.address,
            default_region=resolved.default_region,
            allowed_countries=resolved.allowed_countries,
            sender=resolved.sender,
            max_segments=resolved.max_segments,
            shop_name=resolved.shop_name,
        )
    )
    return translator.run(_read(inputs))


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
) -> Any:
    from smspipe import delivery

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
    )


def send(
    inputs: Inputs,
    *,
    dry_run: bool = False,
    ledger: str | os.PathLike[str] | Literal[False] | None = None,
    force: bool = False,
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
    )
    return await delivery.send_async(
        request,
        on_result=on_result or _ignore,
        on_line=on_line or _log_line,
        progress=progress,
    )


# --- an outbox: sending from a long-lived program ------------------------------------------


class Outbox:
    """Documents sent as they come, one :meth:`send` at a time, under one ledger run (:func:`outbox`)."""

    def __init__(self, core: Any) -> None:
        self._core = core

    async def send(self, inputs: Inputs) -> list[Result]:
        """Deliver every SMS of *inputs*, exactly once; their results, in order."""
        return await self._core.send(_read(inputs))  # type: ignore[no-any-return]

    def signed_by_twilio(
        self, url: str, form: Mapping[str, list[str]], signature: str, settings_header: str | None = None
    ) -> bool | None:
        """Whether a callback to *url* (the URL Twilio called) with form fields *form* carries
        Twilio's ``X-Twilio-Signature`` for the configured account; None when only an API key
        is configured (Twilio signs with the auth token)."""
        return self._core.signed_by_twilio(url, form, signature, settings_header)  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def outbox(
    *,
    ledger: str | os.PathLike[str] | None = None,
    http_log: Lines | None = None,
    on_line: Lines | None = None,
    config: ConfigPath = None,
    env: Mapping[str, str] | None = None,
    on_warning: Lines | None = None,
    **settings: Unpack[SettingValues],
) -> AsyncIterator[Outbox]:
    """:func:`send_async` for a program that sends as requests come (a web server).

    The settings are read, the ledger opened, its run registered and what dead
    runs left reconciled once, on entry; each ``await box.send(inputs)`` then
    delivers its documents as :func:`send` would (validated, skipped when sent
    before, a conflict for another recipient, retried, exactly once), sharing
    one pool of connections to Twilio and at most ``concurrency`` requests in
    flight. Refused credentials fail the documents that carried them, not the
    outbox. On exit the run ends and the ledger is closed. ::

        async with smspipe.api.outbox() as box:              # doctest: +SKIP
            [result] = await box.send({"phone": "+14155552671", "message": "Hi"})
    """
    from smspipe import delivery
    from smspipe.delivery.service import Outbox as CoreOutbox

    values = dict(settings)
    if ledger is not None:
        values["ledger"] = os.fspath(ledger)
    loaded = load_settings(config, env, values, on_warning=on_warning)
    request = delivery.SendRequest(
        settings=loaded,
        policy=policy_for(loaded),
        documents=(),
        options=delivery.options_from(loaded, handle_signals=False),
        http_log=http_log,
    )
    core = CoreOutbox(request, on_line or _log_line)
    try:
        await core.open()
        yield Outbox(core)
    finally:
        await core.close()


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
