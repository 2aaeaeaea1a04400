"""The effective settings: loaded once, checked once, resolved once into typed values."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smspipe.config import precedence
from smspipe.config.keys import KEYS, SECRET_KEYS, key_validator
from smspipe.config.loading import ConfigProblems, read_file
from smspipe.config.paths import default_ledger_path, is_named, locate, state_dir
from smspipe.config.precedence import Layer
from smspipe.errors import ConfigError, register_secret

#: Keys whose environment variable is checked when settings load. The
#: credentials are checked when they are resolved, by the commands that use them.
_CHECKED_ENV = ("from", "messaging_service_sid", "api_url", "default_region", "ledger")


@dataclass(frozen=True, slots=True)
class Resolved:
    """Every setting but the credentials, typed and resolved by precedence
    (argument or flag > environment > config file > default).

    Credentials are not here: they are a pair taken whole, per document
    (:func:`smspipe.config.resolve_credentials`). ``sender`` and
    ``messaging_service_sid`` are the run's defaults; a document's own ``from``
    comes first, and the pair is taken whole: :func:`smspipe.config.resolve_sender`.
    """

    sender: str | None
    messaging_service_sid: str | None
    status_callback: str | None
    api_url: str | None
    allow_insecure_http: bool
    default_region: str
    allowed_countries: frozenset[str]
    max_segments: int | None
    shop_name: str
    address: str
    templates: Mapping[str, Any]
    #: the ledger: a file's path, or a URL as given (a Path would fold its //)
    ledger: Path | str
    concurrency: int
    rate: float | None
    #: the rate holds for every run using the ledger together (per sender), not for this one
    shared_rate: bool
    retries: int
    max_wait: float
    timeout: float
    #: seconds after an unanswered attempt before absence from Twilio's log counts
    reconcile_grace: float
    #: seconds a run's claims on the ledger stay valid without a heartbeat
    run_lease: float
    #: where the state (the default ledger) lives
    state_dir: Path
    #: "21:00-08:00" (smspipe.delivery.quiet), or None
    quiet_hours: str | None = None
    quiet_hours_timezone: str | None = None
    #: "3/24h", or None
    max_per_recipient: str | None = None

    def api_url_for_sending(self) -> str | None:
        """The api_url to send credentials to (None: Twilio's own); InsecureTransport
        (exit 2) for plain HTTP to another machine, unless allow_insecure_http."""
        from smspipe.config.transport import check_api_url

        check_api_url(self.api_url, allow_insecure_http=self.allow_insecure_http)
        return self.api_url


class Settings:
    """The settings of one run: the caller's values (arguments, flags), the
    environment and the config file, as loaded.

    Read them through :attr:`resolved` (typed), :meth:`lookup` (a value and
    where it came from), :meth:`layers` and :meth:`for_document` (precedence
    with a document's own values). (A plain class: a dataclass costs every run
    its start-up to build.)
    """

    __slots__ = (
        "_layers",
        "_resolved",
        "env",
        "explicit",
        "file_loaded",
        "file_values",
        "flags",
        "path",
        "path_source",
        "warnings",
    )

    def __init__(
        self,
        env: Mapping[str, str],
        path: Path,
        explicit: bool,
        *,
        flags: dict[str, Any] | None = None,
        path_source: str = "default",
    ) -> None:
        self.env = env
        self.path = path
        #: True when the path was named (by the caller, or SMSPIPE_CONFIG), not defaulted
        self.explicit = explicit
        self.file_values: dict[str, Any] = {}
        #: the caller's own values: keyword arguments, or the command line's flags
        self.flags: dict[str, Any] = flags if flags is not None else {}
        self.warnings: list[str] = []
        #: how the path was chosen, e.g. "environment (SMSPIPE_CONFIG)"
        self.path_source = path_source
        #: True when a config file was found and read
        self.file_loaded = False
        self._resolved: Resolved | None = None
        self._layers: list[Layer] | None = None

    def __repr__(self) -> str:
        return (
            f"Settings(path={str(self.path)!r}, flags={sorted(self.flags)!r})"  # names: values may be secrets
        )

    def layers(self, parameters: Mapping[str, Any] | None = None, sender: str | None = None) -> list[Layer]:
        """The sources of settings, strongest first; a document's only when it is given."""
        if self._layers is None:
            self._layers = [
                precedence.flag_layer(self.flags),
                precedence.environment_layer(self.env),
                precedence.file_layer(self.file_values, self.path),
                precedence.default_layer(),
            ]
        if parameters is None and sender is None:
            return list(self._layers)
        caller, *weaker = self._layers
        return [caller, precedence.document_layer(parameters, sender), *weaker]

    def lookup(self, name: str) -> tuple[Any, str]:
        """The value of *name* and where it came from."""
        found = precedence.first(self.layers(), name)
        assert found is not None  # the default layer holds every key
        value, layer = found
        return value, layer.origin(name)

    def for_document(self, name: str, document_value: Any) -> Any:
        """The value of *name* for a document that gives *document_value* (None: gives none).

        Same precedence as everything: the caller's > the document's > environment >
        config file > default.
        """
        layers = self.layers()
        if document_value is not None:
            layers.insert(1, Layer(precedence.DOCUMENT, {name: document_value}, "document"))
        found = precedence.first(layers, name)
        return found[0] if found is not None else None

    @property
    def resolved(self) -> Resolved:
        """The typed settings, resolved once."""
        if self._resolved is None:
            self._resolved = resolve(self)
        return self._resolved


def resolve(settings: Settings) -> Resolved:
    """The typed settings of *settings* (values already checked against :data:`KEYS`)."""
    layers = settings.layers()

    def value(name: str) -> Any:
        found = precedence.first(layers, name)
        assert found is not None
        return found[0]

    rate, max_segments = value("rate"), value("max_segments")
    return Resolved(
        sender=value("from"),
        messaging_service_sid=value("messaging_service_sid"),
        status_callback=value("status_callback"),
        api_url=value("api_url"),
        allow_insecure_http=bool(value("allow_insecure_http")),
        default_region=str(value("default_region")),
        allowed_countries=frozenset(str(code).upper() for code in value("allowed_countries") or ()),
        max_segments=int(max_segments) if max_segments is not None else None,
        shop_name=str(value("shop_name") or ""),
        address=str(value("address")),
        templates=dict(value("templates") or {}),
        ledger=_ledger(value("ledger"), settings.env),
        concurrency=int(value("concurrency")),
        rate=float(rate) if rate is not None else None,
        shared_rate=bool(value("shared_rate")),
        retries=int(value("retries")),
        max_wait=float(value("max_wait")),
        timeout=float(value("timeout")),
        reconcile_grace=_seconds(settings, "reconcile_grace", positive=False),
        run_lease=_seconds(settings, "run_lease", positive=True),
        state_dir=state_dir(settings.env),
        quiet_hours=value("quiet_hours") or None,
        quiet_hours_timezone=value("quiet_hours_timezone") or None,
        max_per_recipient=value("max_per_recipient") or None,
    )


def _ledger(value: Any, env: Mapping[str, str]) -> Path | str:
    if not value:
        return default_ledger_path(env)
    text = str(value)
    return text if "://" in text else Path(text).expanduser()


def _seconds(settings: Settings, name: str, *, positive: bool) -> float:
    """A number of seconds (the environment gives text); ConfigError naming its source if not."""
    value, source = settings.lookup(name)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds >= 0 or (positive and seconds == 0):
        raise ConfigError(
            f"{name} from the {source}: {value!r} is not a number of seconds", hint=KEYS[name].doc
        )
    return seconds


def load(
    config_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the config file (if any) and the environment, lay the flags on top, check
    everything and resolve it; raise ConfigError (every problem at once) if broken.

    A named file (*config_path*, SMSPIPE_CONFIG) must exist; the default one may not.
    """
    env = os.environ if env is None else env
    path, path_source = locate(config_path, env)
    settings = Settings(
        env=env,
        path=path,
        explicit=is_named(config_path, env),
        path_source=path_source,
        flags={k: v for k, v in (flags or {}).items() if v is not None},
    )
    _register_secrets(settings)
    if path.exists() or settings.explicit:
        settings.file_values = read_file(path)
        settings.file_loaded = True
        settings._layers = None  # laid again, with the file
        _register_secrets(settings)
        _check_permissions(path, settings)
    _check_flags_and_environment(settings)
    settings._resolved = resolve(settings)
    return settings


def _register_secrets(settings: Settings) -> None:
    for layer in settings.layers()[:-1]:
        for name in SECRET_KEYS:
            value = layer.get(name)
            if isinstance(value, str):
                register_secret(value)


def _check_flags_and_environment(settings: Settings) -> None:
    """Flag and environment values are checked as the file's are, every problem at once."""
    from smspipe.spelling import given as caller_word

    word = caller_word()
    article = "an" if word[:1] in "aeiou" else "a"
    origin = f"given as {article} {word}"
    given = [(name, value, origin) for name, value in settings.flags.items() if name in KEYS]
    for name in _CHECKED_ENV:
        variable = KEYS[name].env or ""
        if settings.env.get(variable):
            given.append((name, settings.env[variable], f"environment {variable}"))
    lines: list[str] = []
    for name, value, origin in given:
        if not key_validator(name).is_valid(value):  # one key's check, not the whole file's
            from smspipe.config.wording import problems_in

            lines.extend(f"{message} ({origin}): {hint}" for _, message, hint in problems_in({name: value}))
    if len(lines) == 1:
        raise ConfigError(lines[0])
    if lines:
        raise ConfigProblems(lines)


def _check_permissions(path: Path, settings: Settings) -> None:
    if os.name == "nt":  # POSIX modes mean nothing there
        return
    if not any(settings.file_values.get(name) for name in SECRET_KEYS):
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        settings.warnings.append(
            f"{path} holds a secret and is accessible to group or others "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )
