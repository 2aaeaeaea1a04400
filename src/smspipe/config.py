"""Settings, where each comes from, secrets, and the config and state paths.

Precedence: flag > per-document ``parameters`` > environment > config file >
default. Every key is described once, in :data:`KEYS`; the config file's JSON
Schema, ``config show`` and ``config.example.yaml`` all follow it.
"""

from __future__ import annotations

import os
import re
import stat
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from smspipe.errors import ConfigError, CredentialsError, register_secret
from smspipe.schemacheck import Schema

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
_TEMPLATE_SET = {
    "oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}]
}

KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key(
            "account_sid",
            {"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$"},
            "Twilio Account SID (AC…)",
            env="TWILIO_ACCOUNT_SID",
        ),
        Key(
            "auth_token",
            {"type": "string", "minLength": 1},
            "Twilio auth token",
            env="TWILIO_AUTH_TOKEN",
            secret=True,
        ),
        Key(
            "api_key",
            {"type": "string", "pattern": "^SK[0-9a-fA-F]{32}$"},
            "Twilio API key SID (SK…), used with api_secret instead of the auth token",
            env="TWILIO_API_KEY",
        ),
        Key(
            "api_secret",
            {"type": "string", "minLength": 1},
            "Twilio API key secret",
            env="TWILIO_API_SECRET",
            secret=True,
        ),
        Key(
            "from",
            {"type": "string", "minLength": 1},
            "default sender: E.164 number, short code or alphanumeric sender ID",
            env="SMSPIPE_FROM",
        ),
        Key(
            "messaging_service_sid",
            {"type": "string", "pattern": "^MG[0-9a-fA-F]{32}$"},
            "Messaging Service SID (MG…), used when no sender is given",
            env="SMSPIPE_MESSAGING_SERVICE_SID",
        ),
        Key(
            "status_callback",
            _URL,
            "URL Twilio calls with delivery status updates, when a document names none",
        ),
        Key(
            "api_url",
            _URL,
            "Twilio-compatible base URL (a local mock, a proxy) instead of https://api.twilio.com",
            env="SMSPIPE_API_URL",
        ),
        Key(
            "default_region",
            {"type": "string", "pattern": "^[A-Za-z]{2}$"},
            "region for numbers written in national form (ISO 3166 code)",
            env="SMSPIPE_DEFAULT_REGION",
            default="US",
        ),
        Key(
            "allowed_countries",
            {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z]{2}$"}},
            "if not empty, only numbers of these countries are accepted",
            default=[],
        ),
        Key("shop_name", {"type": "string"}, "shop name the built-in templates sign with", default=""),
        Key(
            "address",
            {"enum": ["shipping", "billing"]},
            "which address's phone translate tries first",
            default="shipping",
        ),
        Key(
            "templates",
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"order": _TEMPLATE_SET, "customer": _TEMPLATE_SET, "shipment": _TEMPLATE_SET},
            },
            "Jinja2 templates per kind (order, customer, shipment): one text, or one per status "
            "with `default` for the other statuses",
            default={},
        ),
        Key(
            "max_segments",
            {"type": ["integer", "null"], "minimum": 1},
            "refuse messages longer than this many segments",
            default=None,
        ),
        Key(
            "ledger",
            {"type": "string", "minLength": 1},
            "path of the SQLite ledger of sent messages",
            env="SMSPIPE_LEDGER",
        ),
        Key(
            "concurrency",
            {"type": "integer", "minimum": 1, "maximum": 100},
            "requests to Twilio in flight at once",
            default=4,
        ),
        Key(
            "rate",
            {"type": ["number", "null"], "exclusiveMinimum": 0},
            "at most this many messages started per second",
            default=None,
        ),
        Key(
            "retries",
            {"type": "integer", "minimum": 0, "maximum": 100},
            "retries of a temporary fault (429, 5xx, network) per message",
            default=5,
        ),
        Key(
            "max_wait",
            {"type": "number", "minimum": 0},
            "longest wait between two retries, in seconds",
            default=60,
        ),
        Key(
            "timeout",
            {"type": "number", "exclusiveMinimum": 0},
            "HTTP timeout of one request to Twilio, in seconds",
            default=30,
        ),
        Key(
            "reconcile_grace",
            {"type": "number", "minimum": 0},
            "seconds after an unanswered attempt before a message missing from Twilio's message "
            "log is taken as not created (and sent by a later run)",
            env="SMSPIPE_RECONCILE_GRACE",
            default=300,
        ),
        Key(
            "run_lease",
            {"type": "number", "exclusiveMinimum": 0},
            "seconds a run's claims on the ledger stay valid without a heartbeat; a run stopped "
            "longer loses them and sends nothing more",
            env="SMSPIPE_RUN_LEASE",
            default=60,
        ),
    )
}


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


def locate(config_path: str | Path | None, env: Mapping[str, str]) -> tuple[Path, str]:
    """The config file's path and why: --config, else SMSPIPE_CONFIG, else the default."""
    if config_path is not None:
        return Path(config_path).expanduser(), "flag (--config)"
    if env.get("SMSPIPE_CONFIG"):
        return Path(env["SMSPIPE_CONFIG"]).expanduser(), "environment (SMSPIPE_CONFIG)"
    if home_dir(env) is not None:
        return default_config_path(env), "environment (SMSPIPE_HOME)"
    return default_config_path(env), "default (user config dir)"


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
    #: how the path was chosen, e.g. "environment (SMSPIPE_CONFIG)"
    path_source: str = "default"
    #: True when a config file was found and read
    file_loaded: bool = False

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
    def ledger_path(self) -> Path:
        value = self.get("ledger")
        return Path(value).expanduser() if value else state_dir(self.env) / LEDGER_FILENAME


def load(
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the config file (if any) and the environment; raise ConfigError if broken.

    A named file (--config, SMSPIPE_CONFIG) must exist; the default one may not.
    """
    env = os.environ if env is None else env
    path, path_source = locate(config_path, env)
    explicit = config_path is not None or bool(env.get("SMSPIPE_CONFIG"))
    settings = Settings(
        env=env,
        path=path,
        explicit=explicit,
        path_source=path_source,
        flags={k: v for k, v in (flags or {}).items() if v is not None},
    )
    if path.exists() or explicit:
        settings.file_values = read_file(path)
        settings.file_loaded = True
        _check_permissions(path, settings)
    for key in KEYS.values():
        if key.secret:
            register_secret(settings.get(key.name))
    return settings


def read_file(path: Path) -> dict[str, Any]:
    """The validated contents of a config file; ConfigError (with file:line) if broken."""
    try:
        text = path.read_text("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist",
            hint="create it with `smspipe config init`, or fix --config / SMSPIPE_CONFIG",
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"config file {path} is a directory", hint="point --config / SMSPIPE_CONFIG at a YAML file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        # The path is in the message already: the reason alone (not str(exc)).
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"config file {path}: cannot read it ({reason})") from None
    return parse(text, path)


def parse(text: str, path: Path | str) -> dict[str, Any]:
    """Parse and validate the text of a config file named *path* (used in messages)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.SafeLoader("").construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        context_mark = getattr(exc, "context_mark", None)
        if mark is not None and context_mark is not None and mark.index >= len(text.rstrip()):
            mark = context_mark  # the end came first: point at the unclosed quote or bracket
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        context = getattr(exc, "context", None)
        if context:
            problem = f"{context}, {problem}"
        if mark is not None and _is_secret_line(_line_text(text, mark.line)):
            # The scanner quotes what it tripped on (an alias, a tag): maybe part of a secret.
            problem = re.sub(r"'[^']{4,}'", "'…'", problem)
        raise ConfigError(
            f"{where}: {problem}",
            hint="fix the YAML syntax (quote values that hold ': ' or start with a special character)",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the config file must be a mapping of keys to values",
            hint="write one `key: value` per line; see `smspipe config example`",
        )
    _check_duplicates(node, path)
    problems = problems_in(data)
    if problems:
        key_path, message, hint = problems[0]
        line = _line_of(node, key_path)
        where = f"{path}:{line}" if line else str(path)
        more = len(problems) - 1
        if more:
            hint = f"{hint} ({more} more problem{'s' if more > 1 else ''} in this file)"
        raise ConfigError(f"{where}: {message}", hint=hint)
    return data


def _is_secret_line(line: str) -> bool:
    name = line.split(":", 1)[0].strip().strip("\"'")
    return name in KEYS and KEYS[name].secret


def _line_text(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


# Names people reach for that difflib does not find (hub parameter names, synonyms).
_ALIASES = {
    "sender": "from",
    "from_number": "from",
    "phone_number": "from",
    "region": "default_region",
    "token": "auth_token",
    "twilio_account_sid": "account_sid",
    "twilio_auth_token": "auth_token",
    "twilio_api_key": "api_key",
    "twilio_api_secret": "api_secret",
    "messaging_service": "messaging_service_sid",
    "base_url": "api_url",
    "url": "api_url",
}


def suggest(name: str, known: list[str]) -> str | None:
    """The known key closest to a misspelt *name*, if any is close."""
    alias = _ALIASES.get(name.lower().replace("-", "_"))
    if alias in known:
        return alias
    import difflib  # only when something is misspelt

    close = difflib.get_close_matches(name.lower().replace("-", "_"), known, n=1, cutoff=0.6)
    return close[0] if close else None


ConfigProblem = tuple[list[str | int], str, str]


@cache
def _config_validator() -> Schema:
    return Schema(config_schema())


@cache
def key_validator(name: str) -> Schema:
    """The compiled check of one key's value (flags are checked with it too)."""
    return Schema(KEYS[name].schema)


def problems_in(data: Mapping[Any, Any]) -> list[ConfigProblem]:
    """Every problem of a config mapping: (key path, message, hint). Values are never echoed
    (a misplaced token must not end up in an error message); numbers of non-secret keys are.
    """
    problems: list[ConfigProblem] = []
    for name in data:
        if name not in KEYS:
            close = suggest(str(name), list(KEYS))
            hint = f"did you mean {close!r}?" if close else f"known keys: {', '.join(KEYS)}"
            problems.append(([name], f"unknown key {_shown_name(name)}", hint))
    if problems:
        return problems
    validator = _config_validator()
    if validator.is_valid(data):
        return problems
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        key_path = list(error.absolute_path)
        secret = bool(key_path) and KEYS[str(key_path[0])].secret
        message, hint = _describe(error, secret=secret)
        problems.append((key_path, f"{_dotted(key_path)}: {message}", hint))
    return problems


def check_value(name: str, value: Any) -> str | None:
    """Why *value* is not valid for key *name*, or None; never repeats the value."""
    problems = problems_in({name: value})
    if not problems:
        return None
    _, message, hint = problems[0]
    return f"{message}: {hint}" if hint else message


def _looks_like_a_name(name: Any) -> bool:
    """A key name we may repeat in a message; a long or digit-heavy one may be a pasted secret."""
    text = str(name)
    return (
        len(text) <= 24
        and sum(c.isdigit() for c in text) <= 3
        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text) is not None
    )


def _shown_name(name: Any) -> str:
    return repr(str(name)) if _looks_like_a_name(name) else "(not repeated: it may be a secret)"


def _dotted(path: list[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = str(part) if _looks_like_a_name(part) else "…"
            text += f".{shown}" if text else shown
    return text or "(top level)"


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _describe(error: Any, *, secret: bool) -> tuple[str, str]:
    """A message and a hint for one jsonschema error, without the offending string."""
    kind, expected, value = error.validator, error.validator_value, error.instance
    shown = "" if secret or isinstance(value, str | dict | list) else f", got {value!r}"
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        want = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        if value is None:
            return (
                f"has no value (expected {want})",
                "give it a value, or remove the line (or comment it out with #)",
            )
        if "string" in types and isinstance(value, bool | int | float):
            return (
                f"must be {want}, got {_kind(value)}",
                "put the value in quotes (YAML reads +1555…, 0123, yes, no, on, off as numbers or booleans)",
            )
        return f"must be {want}, got {_kind(value)}", "see `smspipe config example`"
    if kind == "pattern":
        what = _pattern_words(expected)
        return f"is not {what}", "see `smspipe config example`"
    if kind == "minLength":
        return (
            "must not be empty" if expected == 1 else f"must be at least {expected} characters"
        ), "give it a value or remove the line"
    if kind == "enum":
        return (
            f"must be one of: {', '.join(str(v) for v in expected)}{shown}",
            "see `smspipe config example`",
        )
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if kind in bounds:
        return f"must be {bounds[kind]} {expected}{shown}", "see `smspipe config example`"
    if kind == "additionalProperties" and isinstance(value, dict):
        known = list(error.schema.get("properties", {}))
        extra = [str(k) for k in value if k not in known]
        if extra:
            close = suggest(extra[0], known)
            hint = f"did you mean {close!r}?" if close else f"known keys: {', '.join(known)}"
            return f"unknown key {_shown_name(extra[0])}", hint
    if kind in ("oneOf", "anyOf"):
        options = [s.get("type") for s in expected if isinstance(s, dict)]
        if all(isinstance(t, str) for t in options):
            want = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in options)
            return f"must be {want}, got {_kind(value)}", "see `smspipe config example`"
    return "is not valid", "see `smspipe config example`"


_PATTERN_WORDS = {
    "^AC[0-9a-fA-F]{32}$": "an Account SID (AC followed by 32 hex digits)",
    "^SK[0-9a-fA-F]{32}$": "an API key SID (SK followed by 32 hex digits)",
    "^MG[0-9a-fA-F]{32}$": "a Messaging Service SID (MG followed by 32 hex digits)",
    "^[A-Za-z]{2}$": "a two-letter country code such as US, GB or DE",
    _URL["pattern"]: "an http:// or https:// URL",
}


def _pattern_words(pattern: str) -> str:
    return _PATTERN_WORDS.get(pattern, f"in the expected form ({pattern})")


def _line_of(node: Any, key_path: list[str | int]) -> int | None:
    """The line of the YAML node at *key_path* (the key's line for a mapping entry)."""
    import yaml

    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in key_path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _check_duplicates(node: Any, path: Path | str) -> None:
    """A key written twice is refused: YAML would silently keep the last one."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise ConfigError(
                        f"{path}:{line}: key {key_node.value!r} appears twice "
                        f"(also on line {seen[key_node.value]})",
                        hint="keep one of them",
                    )
                seen[key_node.value] = line
            _check_duplicates(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, path)


def _check_permissions(path: Path, settings: Settings) -> None:
    if os.name == "nt":  # POSIX modes mean nothing there
        return
    if not any(settings.file_values.get(k.name) for k in KEYS.values() if k.secret):
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


# --- the commented YAML file (config.example.yaml, `config init`) -------------

#: Example values (YAML text, possibly several lines) for config.example.yaml;
#: each loads when uncommented. A key missing here falls back to its default.
EXAMPLES: dict[str, str] = {
    "account_sid": '"AC0123456789abcdef0123456789abcdef"',
    "auth_token": '"your_auth_token"',
    "api_key": '"SK0123456789abcdef0123456789abcdef"',
    "api_secret": '"your_api_secret"',
    "from": '"+15017122661"',
    "messaging_service_sid": '"MG0123456789abcdef0123456789abcdef"',
    "status_callback": '"https://shop.example.com/twilio/status"',
    "api_url": '"http://127.0.0.1:4010"',
    "default_region": "US",
    "allowed_countries": "[US, CA]",
    "shop_name": '"Example Shop"',
    "address": "shipping",
    "templates": "\n  order:"
    '\n    complete: "Hi {{ name }}, thanks for your order {{ order.id }}!"'
    '\n    default: "Your order {{ order.id }} is now {{ status }}."'
    '\n  shipment: "{{ shop_name }}: your order {{ shipment.order_id }} has shipped."',
    "max_segments": "3",
    "ledger": '"~/smspipe/ledger.sqlite3"',
    "concurrency": "4",
    "rate": "10",
    "retries": "5",
    "max_wait": "60",
    "timeout": "30",
    "reconcile_grace": "300",
    "run_lease": "60",
}

#: How the commented file is laid out; a key in no section goes under "Other".
SECTIONS: dict[str, list[str]] = {
    "Twilio credentials: account SID and auth token, or API key and secret": [
        "account_sid",
        "auth_token",
        "api_key",
        "api_secret",
    ],
    "Sender": ["from", "messaging_service_sid", "status_callback"],
    "Connection to Twilio": ["api_url", "timeout"],
    "Checks (validate, send)": ["default_region", "allowed_countries", "max_segments"],
    "translate": ["shop_name", "address", "templates"],
    "send: ledger, pace and retries": [
        "ledger",
        "concurrency",
        "rate",
        "retries",
        "max_wait",
        "reconcile_grace",
        "run_lease",
    ],
}

_HEADER = """\
# {origin}
#
# Precedence: flag > per-document parameters > environment > this file > default.
# Lines starting with ## explain the setting below them. To use a setting,
# remove the "# " in front of it. Quote values that YAML could read as
# something else ("+15017122661", "NO"). Check the file with `smspipe config show`.
# A file holding auth_token or api_secret must be readable by you only:
#   chmod 600 {name}
"""


def _inline(value: Any) -> str:
    """*value* as one line of YAML that reads back as exactly *value*."""
    if isinstance(value, str):
        return _quoted(value)
    import yaml

    text: str = yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=1_000_000)
    return text.strip()[1:-1]


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _quoted(text: str) -> str:
    """A double-quoted YAML scalar; characters YAML would fold or refuse are escaped
    (PyYAML's own dumper writes NEL and the Unicode line separators raw, and they come
    back as spaces)."""
    out = []
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif (
            0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000
        ) and char not in "\u2028\u2029\ufeff":
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02X}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(f"\\U{code:08X}")
    return '"' + "".join(out) + '"'


EXAMPLE_ORIGIN = (
    "smspipe configuration: every key, with an example. Copy it to the path\n"
    "# `smspipe config path` prints, or run `smspipe config init`."
)


def render(
    values: Mapping[str, Any] | None = None, *, origin: str = EXAMPLE_ORIGIN, name: str = CONFIG_FILENAME
) -> str:
    """The commented config file: every key of :data:`KEYS` with its documentation;
    keys in *values* written out, the others commented out with an example."""
    values = values or {}
    lines = [_HEADER.format(origin=origin, name=name)]
    placed = [n for names in SECTIONS.values() for n in names]
    sections = {title: [n for n in names if n in KEYS] for title, names in SECTIONS.items()}
    sections["Other"] = [n for n in KEYS if n not in placed]
    for title, names in sections.items():
        if not names:
            continue
        lines.append(f"# --- {title} ---\n")
        for key_name in names:
            key = KEYS[key_name]
            lines.extend(
                textwrap.wrap(
                    f"{key.doc[:1].upper()}{key.doc[1:]}.",
                    width=88,
                    initial_indent="## ",
                    subsequent_indent="## ",
                )
            )
            notes = []
            if key.env:
                notes.append(f"Environment: {key.env}.")
            if key.default not in (None, "", [], {}):
                default = key.default
                notes.append(f"Default: {default if isinstance(default, str) else _inline(default)}.")
            if key.secret:
                notes.append("Secret: never printed; keep this file mode 600.")
            if notes:
                lines.append("## " + " ".join(notes))
            value = values.get(key_name)
            if value is not None:
                lines.append(f"{key_name}: {_inline(value)}")
            else:
                example = EXAMPLES.get(key_name)
                if example is None:
                    example = _inline(key.default)
                sample = f"{key_name}:{'' if example.startswith(chr(10)) else ' '}{example}"
                lines.extend("# " + line for line in sample.split("\n"))
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def write_file(path: Path, text: str, *, force: bool = False) -> None:
    """Write a config file with mode 0600 from the first byte (it may hold secrets).

    Without *force* an existing file is never replaced (O_EXCL, so no race either);
    with it the new file is written beside and renamed over the old one.
    """
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    target = path.with_name(f".{path.name}.{os.getpid()}.tmp") if force else path
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists",
            hint="use --force to overwrite it, or --config PATH to write another file",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            if hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), 0o600)  # exactly 600, whatever the umask
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if force:
            os.replace(target, path)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise


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

_PARAM_NAMES = {
    "account_sid": "twilio_account_sid",
    "auth_token": "twilio_auth_token",
    "api_key": "twilio_api_key",
    "api_secret": "twilio_api_secret",
}


def resolve_credentials(settings: Settings, parameters: Mapping[str, Any] | None = None) -> Credentials:
    """Credentials by precedence: flags > document parameters > environment > config.

    The first source that holds a complete pair (API key and secret, or
    account SID and token) decides the method; a missing account SID is then
    taken from the next source that has one.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    layers.append(("flags", {k: settings.flags.get(k) for k in _PARAM_NAMES}))
    if parameters:
        layers.append(("document parameters", {k: parameters.get(p) for k, p in _PARAM_NAMES.items()}))
    layers.append(("environment", {k: settings.env.get(KEYS[k].env or "") for k in _PARAM_NAMES}))
    layers.append((f"config file ({settings.path})", {k: settings.file_values.get(k) for k in _PARAM_NAMES}))
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
                raise CredentialsError(
                    "an API key needs the account SID it belongs to",
                    hint="pass --account-sid or set TWILIO_ACCOUNT_SID",
                )
            return Credentials(str(sid), str(values["api_key"]), str(values["api_secret"]), label)
        if values.get("account_sid") and values.get("auth_token"):
            return Credentials(
                str(values["account_sid"]), str(values["account_sid"]), str(values["auth_token"]), label
            )
    sid, sid_from = first("account_sid")
    token, token_from = first("auth_token")
    if sid and token:
        return Credentials(sid, sid, token, f"{sid_from} + {token_from}")
    missing = (
        "no Twilio credentials"
        if not (sid or token)
        else ("no auth token for account " + sid if sid else "an auth token but no account SID")
    )
    raise CredentialsError(missing, hint=NO_CREDENTIALS_HINT)
