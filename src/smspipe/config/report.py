"""What ``config show`` reports: the paths, the credentials in use, every key with its source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smspipe.config.keys import KEYS
from smspipe.errors import CredentialsError

if TYPE_CHECKING:
    from smspipe.config.settings import Settings

#: a secret's value, as reported: never the secret
SET_LABEL = "(set)"


def effective(settings: Settings) -> dict[str, Any]:
    """The effective settings and where each comes from; a secret only as "(set)".

    Also the config file, the state dir, the ledger, and which credentials a
    send would use (or why there are none).
    """
    from smspipe.config.credentials import resolve_credentials

    entries: dict[str, Any] = {}
    for key in KEYS.values():
        value, source = settings.lookup(key.name)
        entry: dict[str, Any] = {"value": value, "source": source}
        if key.secret:
            entry = {"value": SET_LABEL if value else None, "source": source, "secret": True}
        entries[key.name] = entry
    try:
        found = resolve_credentials(settings)
        settings.resolved.api_url_for_sending()
        credentials: dict[str, Any] = {
            "method": found.method,
            "account_sid": found.account_sid,
            "source": found.source,
        }
        if found.method == "api key":
            credentials["api_key"] = found.username
    except CredentialsError as exc:
        credentials = {"error": exc.message}
    ledger_source = settings.lookup("ledger")[1]
    return {
        "config_file": str(settings.path),
        "config_file_source": settings.path_source,
        "config_file_exists": settings.file_loaded,
        "state_dir": str(settings.resolved.state_dir),
        "ledger": str(settings.resolved.ledger),
        "ledger_source": "default (state dir)" if ledger_source == "default" else ledger_source,
        "credentials": credentials,
        "settings": entries,
    }
