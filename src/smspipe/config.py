"""Settings, where each comes from, secrets, and the config and state paths.

Precedence: flag > per-document ``parameters`` > environment > config file >
default. Every key is described once, in :data:`KEYS`; the config file's JSON
Schema, ``config show`` and ``config.example.yaml`` all follow it.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smspipe.errors import ConfigError, CredentialsError, register_secret

APP_NAME = "smspipe"
CONFIG_FILENAME = "config.yaml"
LEDGER_FILENAME = "ledger.sqlite3"


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    schema: dict[str, Any]
    doc: str
    env: str | None = None
    default: Any = None
    secret: bool = False


_URL = {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/]+"}
_TEMPLATE_SET = {"oneOf": [{"type": "string"},
                           {"type": "object", "additionalProperties": {"type": "string"}}]}

KEYS: dict[str, Key] = {k.name: k for k in (
    Key("account_sid", {"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$"},
        "Twilio Account SID (AC…)", env="TWILIO_ACCOUNT_SID"),
    Key("auth_token", {"type": "string", "minLength": 1},
        "Twilio auth token", env="TWILIO_AUTH_TOKEN", secret=True),
    Key("api_key", {"type": "string", "pattern": "^SK[0-9a-fA-F]{32}$"},
        "Twilio API key SID (SK…), used with api_secret instead of the auth token",
        env="TWILIO_API_KEY"),
    Key("api_secret", {"type": "string", "minLength": 1},
        "Twilio API key secret", env="TWILIO_API_SECRET", secret=True),
    Key("from", {"type": "string", "minLength": 1},
        "default sender: E.164 number, short code or alphanumeric sender ID",
        env="SMSPIPE_FROM"),
    Key("messaging_service_sid", {"type": "string", "pattern": "^MG[0-9a-fA-F]{32}$"},
        "Messaging Service SID (MG…), used when no sender is given",
        env="SMSPIPE_MESSAGING_SERVICE_SID"),
    Key("status_callback", _URL,
        "URL Twilio calls with delivery status updates, when a document names none"),
    Key("api_url", _URL,
        "Twilio-compatible base URL (a local mock, a proxy) instead of https://api.twilio.com",
        env="SMSPIPE_API_URL"),
    Key("default_region", {"type": "string", "pattern": "^[A-Za-z]{2}$"},
        "region for numbers written in national form (ISO 3166 code)",
        env="SMSPIPE_DEFAULT_REGION", default="US"),
    Key("allowed_countries", {"type": "array", "items": {"type": "string",
                                                         "pattern": "^[A-Za-z]{2}$"}},
        "if not empty, only numbers of these countries are accepted", default=[]),
    Key("shop_name", {"type": "string"}, "shop name the built-in templates sign with",
        default=""),
    Key("address", {"enum": ["shipping", "billing"]},
        "which address's phone translate tries first", default="shipping"),
    Key("templates", {"type": "object", "additionalProperties": False,
                      "properties": {"order": _TEMPLATE_SET, "customer": _TEMPLATE_SET,
                                     "shipment": _TEMPLATE_SET}},
        "Jinja2 templates per kind, or per kind and status", default={}),
    Key("max_segments", {"type": ["integer", "null"], "minimum": 1},
        "refuse messages longer than this many segments", default=None),
    Key("ledger", {"type": "string", "minLength": 1},
        "path of the SQLite ledger of sent messages", env="SMSPIPE_LEDGER"),
    Key("concurrency", {"type": "integer", "minimum": 1, "maximum": 100},
        "requests to Twilio in flight at once", default=4),
    Key("rate", {"type": ["number", "null"], "exclusiveMinimum": 0},
        "at most this many messages started per second", default=None),
    Key("retries", {"type": "integer", "minimum": 0, "maximum": 100},
        "retries of a temporary fault (429, 5xx, network) per message", default=5),
    Key("max_wait", {"type": "number", "minimum": 0},
        "longest wait between two retries, in seconds", default=60),
    Key("timeout", {"type": "number", "exclusiveMinimum": 0},
        "HTTP timeout of one request to Twilio, in seconds", default=30),
)}


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, built from :data:`KEYS`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "smspipe config",
        "type": "object",
        "additionalProperties": False,
        "properties": {k.name: {**k.schema, "description": k.doc} for k in KEYS.values()},
    }


# --- paths -------------------------------------------------------------------

def home_dir(env: Mapping[str, str]) -> Path | None:
    home = env.get("SMSPIPE_HOME")
    return Path(home).expanduser() if home else None


def default_config_path(env: Mapping[str, str]) -> Path:
    home = home_dir(env)
    if home is not None:
        return home / CONFIG_FILENAME
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_FILENAME


def state_dir(env: Mapping[str, str]) -> Path:
    home = home_dir(env)
    if home is not None:
        return home / "state"
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME))


# --- loading -----------------------------------------------------------------

@dataclass(slots=True)
class Settings:
    """The effective settings: file and environment, with flags laid on top."""

    env: Mapping[str, str]
    path: Path
    #: True when the path was named (--config or SMSPIPE_CONFIG), not defaulted
    explicit: bool
    file_values: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def get(self, name: str) -> Any:
        return self.lookup(name)[0]

    def source(self, name: str) -> str:
        return self.lookup(name)[1]

    def lookup(self, name: str) -> tuple[Any, str]:
        """The value of *name* and where it came from."""
        key = KEYS[name]
        if self.flags.get(name) is not None:
            return self.flags[name], "flag"
        if key.env and self.env.get(key.env):
            return self.env[key.env], f"environment ({key.env})"
        if name in self.file_values and self.file_values[name] is not None:
            return self.file_values[name], f"config file ({self.path})"
        return key.default, "default"

    @property
    def policy_region(self) -> str:
        return str(self.get("default_region")).upper()

    @property
    def ledger_path(self) -> Path:
        value = self.get("ledger")
        return Path(value).expanduser() if value else state_dir(self.env) / LEDGER_FILENAME


def load(
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the config file (if any) and the environment; raise ConfigError if broken."""
    env = os.environ if env is None else env
    explicit = config_path is not None or bool(env.get("SMSPIPE_CONFIG"))
    if config_path is not None:
        path = Path(config_path).expanduser()
    elif env.get("SMSPIPE_CONFIG"):
        path = Path(env["SMSPIPE_CONFIG"]).expanduser()
    else:
        path = default_config_path(env)
    settings = Settings(env=env, path=path, explicit=explicit,
                        flags={k: v for k, v in (flags or {}).items() if v is not None})
    if path.exists() or explicit:
        settings.file_values = _read_file(path)
        _check_permissions(path, settings)
    for key in KEYS.values():
        if key.secret:
            register_secret(settings.get(key.name))
    return settings


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist",
                          hint="create it with `smspipe config init`, or fix --config / "
                               "SMSPIPE_CONFIG") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc})") from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{where}: {problem}", hint="fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of keys to values",
                          hint="see config.example.yaml")
    _validate_file(path, data)
    return data


def _validate_file(path: Path, data: dict[str, Any]) -> None:
    for name in data:
        if name not in KEYS:
            close = difflib.get_close_matches(str(name), list(KEYS), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{path}: unknown key {name!r}", hint=hint)
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(config_schema())
    for error in validator.iter_errors(data):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message
        if KEYS.get(str(error.absolute_path[0]) if error.absolute_path else "", None) and \
                KEYS[str(error.absolute_path[0])].secret:
            message = f"{where} is not valid"  # never echo a secret's value
        raise ConfigError(f"{path}: {where}: {message}", hint="see config.example.yaml")


def _check_permissions(path: Path, settings: Settings) -> None:
    if not any(settings.file_values.get(k.name) for k in KEYS.values() if k.secret):
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        settings.warnings.append(
            f"{path} holds a secret and is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}")


# --- credentials -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Credentials:
    """What the Twilio client authenticates with. ``repr`` never shows a secret."""

    account_sid: str
    username: str  # the account SID, or the API key SID
    password: str = field(repr=False)
    source: str = ""

    @property
    def method(self) -> str:
        return "api key" if self.username.startswith("SK") else "auth token"


NO_CREDENTIALS_HINT = (
    "pass --account-sid/--auth-token (or --api-key/--api-secret with --account-sid), "
    "set TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN (or TWILIO_API_KEY/TWILIO_API_SECRET), "
    "put twilio_account_sid/twilio_auth_token in the document's parameters, "
    "or run `smspipe config init`"
)

_PARAM_NAMES = {"account_sid": "twilio_account_sid", "auth_token": "twilio_auth_token",
                "api_key": "twilio_api_key", "api_secret": "twilio_api_secret"}


def resolve_credentials(settings: Settings, parameters: Mapping[str, Any] | None = None
                        ) -> Credentials:
    """Credentials by precedence: flags > document parameters > environment > config.

    The first source that holds a complete pair (API key and secret, or
    account SID and token) decides the method; a missing account SID is then
    taken from the next source that has one.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    layers.append(("flags", {k: settings.flags.get(k) for k in _PARAM_NAMES}))
    if parameters:
        layers.append(("document parameters",
                       {k: parameters.get(p) for k, p in _PARAM_NAMES.items()}))
    layers.append(("environment", {k: settings.env.get(KEYS[k].env or "") for k in _PARAM_NAMES}))
    layers.append((f"config file ({settings.path})",
                   {k: settings.file_values.get(k) for k in _PARAM_NAMES}))
    for _, values in layers:
        for name in ("auth_token", "api_secret"):
            if isinstance(values.get(name), str):
                register_secret(values[name])

    def first(name: str) -> tuple[str | None, str]:
        for label, values in layers:
            value = values.get(name)
            if isinstance(value, str) and value:
                return value, label
        return None, ""

    for label, values in layers:
        if values.get("api_key") and values.get("api_secret"):
            sid = values.get("account_sid") or first("account_sid")[0]
            if not sid:
                raise CredentialsError("an API key needs the account SID it belongs to",
                                       hint="pass --account-sid or set TWILIO_ACCOUNT_SID")
            return Credentials(str(sid), str(values["api_key"]), str(values["api_secret"]), label)
        if values.get("account_sid") and values.get("auth_token"):
            return Credentials(str(values["account_sid"]), str(values["account_sid"]),
                               str(values["auth_token"]), label)
    sid, sid_from = first("account_sid")
    token, token_from = first("auth_token")
    if sid and token:
        return Credentials(sid, sid, token, f"{sid_from} + {token_from}")
    missing = "no Twilio credentials" if not (sid or token) else \
        ("no auth token for account " + sid if sid else "an auth token but no account SID")
    raise CredentialsError(missing, hint=NO_CREDENTIALS_HINT)
