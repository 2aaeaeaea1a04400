"""Settings, where each comes from, credentials, and the config and state paths.

Precedence: flag > per-document ``parameters`` > environment > config file >
default, written once (:mod:`~smspipe.config.precedence`) and used by the
settings, the credentials and the senders alike. Every key is described once,
in :data:`KEYS`; the config file's JSON Schema, ``config show`` and
``config.example.yaml`` all follow it.

    settings = config.load(config_path, flags={"concurrency": 8})
    settings.resolved.concurrency        # 8, an int: typed, resolved once
    config.resolve_credentials(settings, document_parameters)
    config.resolve_sender(settings, document_from, document_parameters)

The package, by concern:

- :mod:`.keys` — the key registry and the config file's schema
- :mod:`.paths` — the config file and the state dir
- :mod:`.loading`, :mod:`.wording`, :mod:`.masking` — reading YAML, every
  problem at once in words that never repeat a value, secrets found before parsing
- :mod:`.precedence`, :mod:`.settings` — the layers, and the typed settings
- :mod:`.credentials`, :mod:`.transport`, :mod:`.senders` — a pair taken whole,
  never over plain HTTP to another machine unless allowed; who a message is from
- :mod:`.secret_input` — secrets from a file or stdin, not the command line
- :mod:`.example`, :mod:`.writing` — the commented file, written 0600 atomically
- :mod:`.report` — what ``config show`` reports

Errors are :mod:`smspipe.errors`' (``ConfigError``, ``CredentialsError``).
"""

from typing import TYPE_CHECKING, Any

from smspipe.config.keys import KEYS, SECRET_KEYS, Key, config_schema, key_validator
from smspipe.config.loading import ConfigProblems, parse, read_file
from smspipe.config.paths import (
    APP_NAME,
    CONFIG_FILENAME,
    LEDGER_FILENAME,
    default_config_path,
    home_dir,
    locate,
    state_dir,
)
from smspipe.config.precedence import Layer
from smspipe.config.settings import Resolved, Settings, load

if TYPE_CHECKING:
    from smspipe.config.credentials import (
        CREDENTIAL_KEYS,
        Credentials,
        no_credentials_hint,
        resolve_credentials,
    )
    from smspipe.config.example import EXAMPLE_ORIGIN, EXAMPLES, SECTIONS, render
    from smspipe.config.report import SET_LABEL, effective
    from smspipe.config.secret_input import read_secret_file, read_secret_line
    from smspipe.config.senders import SenderChoice, resolve_sender, sender_choices
    from smspipe.config.transport import InsecureTransport, check_api_url
    from smspipe.config.wording import check_value, problems_in, suggest
    from smspipe.config.writing import write_file

# Loaded when first asked for: `validate` and `translate` never need them, and
# every module imported costs each run its start-up.
_LAZY = {
    "credentials": ("CREDENTIAL_KEYS", "Credentials", "no_credentials_hint", "resolve_credentials"),
    "example": ("EXAMPLE_ORIGIN", "EXAMPLES", "SECTIONS", "render"),
    "report": ("SET_LABEL", "effective"),
    "secret_input": ("read_secret_file", "read_secret_line"),
    "senders": ("SenderChoice", "resolve_sender", "sender_choices"),
    "transport": ("InsecureTransport", "check_api_url"),
    "wording": ("check_value", "problems_in", "suggest"),
    "writing": ("write_file",),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'smspipe.config' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"smspipe.config.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "APP_NAME",
    "CONFIG_FILENAME",
    "CREDENTIAL_KEYS",
    "EXAMPLES",
    "EXAMPLE_ORIGIN",
    "KEYS",
    "LEDGER_FILENAME",
    "SECRET_KEYS",
    "SECTIONS",
    "SET_LABEL",
    "ConfigProblems",
    "Credentials",
    "InsecureTransport",
    "Key",
    "Layer",
    "Resolved",
    "SenderChoice",
    "Settings",
    "check_api_url",
    "check_value",
    "config_schema",
    "default_config_path",
    "effective",
    "home_dir",
    "key_validator",
    "load",
    "locate",
    "no_credentials_hint",
    "parse",
    "problems_in",
    "read_file",
    "read_secret_file",
    "read_secret_line",
    "render",
    "resolve_credentials",
    "resolve_sender",
    "sender_choices",
    "state_dir",
    "suggest",
    "write_file",
]
