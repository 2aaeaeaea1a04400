"""One error hierarchy, the exit codes, and the redaction of secrets.

Every failure that reaches the user is a :class:`SmspipeError` (anything else
is a bug, exit 70), rendered in :func:`smspipe.cli.app.guarded`, and its
``exit_code`` is the process's exit code. Secrets registered with
:func:`register_secret` are masked in every message that goes through :func:`redact`.
"""

from __future__ import annotations

import threading
from enum import IntEnum


class ExitCode(IntEnum):
    """The process exit codes PRODUCT.md promises."""

    OK = 0
    #: some document was invalid, untranslatable or rejected by Twilio
    INVALID = 1
    #: bad flag, unreadable input, missing credentials, authentication refused
    USAGE = 2
    #: a bug in smspipe: rerun with --traceback and report it
    INTERNAL = 70
    #: temporary fault (rate limit, 5xx, network): run again later (EX_TEMPFAIL)
    TEMPFAIL = 75
    #: interrupted (SIGINT, Ctrl-C): in-flight messages settled, summary printed
    INTERRUPTED = 130
    #: terminated (SIGTERM: cron, systemd, CI time-outs), handled as SIGINT is
    TERMINATED = 143


class SmspipeError(Exception):
    """An error the user can act on: a message, an optional hint, an exit code."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = self.message if not self.hint else f"{self.message}: {self.hint}"
        return redact(text)


class UsageError(SmspipeError):
    """A bad flag or argument."""


class InputError(SmspipeError):
    """An input that cannot be opened or read at all (missing file, a directory)."""


class ConfigError(SmspipeError):
    """A config file that cannot be read, or holds unknown or ill-typed keys."""


class CredentialsError(ConfigError):
    """No usable Twilio credentials."""


class AuthenticationError(SmspipeError):
    """Twilio refused the credentials (HTTP 401, error 20003): stop the batch."""


class TemporaryFailure(SmspipeError):
    """A fault that may pass: the next run should succeed."""

    exit_code = ExitCode.TEMPFAIL


class Interrupted(SmspipeError):
    exit_code = ExitCode.INTERRUPTED


class Terminated(SmspipeError):
    """SIGTERM (cron, systemd, a CI time-out), before the run could settle anything."""

    exit_code = ExitCode.TERMINATED


# Secrets known to this process. Every message we print is passed through
# redact(), so a token that slips into an exception text is still masked.
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
MASK = "****"


def register_secret(value: str | None) -> None:
    """Remember a secret so that :func:`redact` masks it wherever it appears."""
    # Very short values would mask ordinary words; real tokens are 32+ chars.
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Mask every registered secret in *text*."""
    if not _secrets:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text
