"""smspipe: turn e-commerce events into text messages and deliver them through Twilio.

The command line (``smspipe validate | translate | send``) and this library do
the same things; the library is typed (``py.typed``)::

    import smspipe

    totals = smspipe.send("orders.ndjson", on_result=print)   # delivered once, whatever happens
    raise SystemExit(smspipe.exit_code(totals))

Names are loaded when first used: ``import smspipe`` stays as cheap as the
command line needs it (every run of it imports this module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from smspipe.api import (
        Account,
        OptOutImport,
        Validation,
        ValidationTotals,
        exit_code,
        load_settings,
        optout_add,
        optout_import,
        optout_remove,
        optouts,
        send,
        send_async,
        status,
        update_message_status,
        validate,
        verify_account,
        verify_account_async,
    )
    from smspipe.arguments import SettingValues
    from smspipe.delivery import Earlier, ErrorInfo, Progress, Result, Status
    from smspipe.delivery import Totals as SendTotals
    from smspipe.errors import (
        AuthenticationError,
        ConfigError,
        CredentialsError,
        ExitCode,
        InputError,
        SmspipeError,
        TemporaryFailure,
        UsageError,
    )
    from smspipe.inputs import Input, Inputs
    from smspipe.ledger import OptOut
    from smspipe.sms import SMS, Issue, Verdict

__all__ = [
    "SMS",
    "Account",
    "AuthenticationError",
    "ConfigError",
    "CredentialsError",
    "Earlier",
    "ErrorInfo",
    "ExitCode",
    "Input",
    "InputError",
    "Inputs",
    "Issue",
    "OptOut",
    "OptOutImport",
    "Progress",
    "Result",
    "SendTotals",
    "SettingValues",
    "SmspipeError",
    "Status",
    "TemporaryFailure",
    "UsageError",
    "Validation",
    "ValidationTotals",
    "Verdict",
    "__version__",
    "exit_code",
    "load_settings",
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

# Where each name lives (the module is imported when the name is first used).
_HOMES = {
    "smspipe.api": (
        "Account",
        "Validation",
        "ValidationTotals",
        "exit_code",
        "load_settings",
        "OptOutImport",
        "StatusView",
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
    ),
    "smspipe.delivery": ("Earlier", "ErrorInfo", "Progress", "Result", "Status"),
    "smspipe.errors": (
        "AuthenticationError",
        "ConfigError",
        "CredentialsError",
        "ExitCode",
        "InputError",
        "SmspipeError",
        "TemporaryFailure",
        "UsageError",
    ),
    "smspipe.arguments": ("SettingValues",),
    "smspipe.inputs": ("Input", "Inputs"),
    "smspipe.ledger": ("OptOut",),
    "smspipe.sms": ("SMS", "Issue", "Verdict"),
}
#: name -> (module, attribute)
_LAZY = {name: (module, name) for module, names in _HOMES.items() for name in names}
_LAZY["SendTotals"] = ("smspipe.delivery", "Totals")


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'smspipe' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
