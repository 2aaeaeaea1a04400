"""Twilio credentials: a pair, taken whole from one source.

The strongest source (flag > document ``parameters`` > environment > config
file) that holds any part of a pair decides, and the pair must be complete
there: an account SID and its auth token, or an API key and its secret. Half
a pair is an error naming what came from where, never completed silently from
another source (an auth token given alone, with the config file's account
SID, would have used the config file's token).

An API key does not say which account it belongs to: its account SID comes
from the same source when that source gives one, else from the next weaker
source that does (an account SID is not a secret: it is often set once, in the
environment or the config file, while keys rotate). A wrong one is refused by
Twilio, and the message says where it came from.

Where credentials may be sent is :mod:`smspipe.config.transport`'s concern.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smspipe.config import precedence
from smspipe.config.keys import SECRET_KEYS
from smspipe.config.precedence import Layer
from smspipe.errors import CredentialsError, register_secret
from smspipe.spelling import setting

if TYPE_CHECKING:
    from smspipe.config.settings import Settings

CREDENTIAL_KEYS = ("account_sid", "auth_token", "api_key", "api_secret")


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


def no_credentials_hint(*, documents: bool = False) -> str:
    """Every way to give credentials, the caller's own first; a document's parameters
    only where documents are read (send, not an account check)."""
    sid, token, key, secret = (setting(name) for name in CREDENTIAL_KEYS)
    in_documents = (
        "put twilio_account_sid/twilio_auth_token in the document's parameters, " if documents else ""
    )
    return (
        f"pass {sid}/{token} (or {key}/{secret} with {sid}), "
        "set TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN (or TWILIO_API_KEY/TWILIO_API_SECRET), "
        f"{in_documents}or run `smspipe config init`"
    )


def resolve_credentials(
    settings: Settings, parameters: Mapping[str, Any] | None = None, *, documents: bool = False
) -> Credentials:
    """The credentials for a document with these *parameters* (None: the run's own);
    *documents*: the run reads documents, whose parameters could carry them.

    Raises CredentialsError when there are none, or half a pair. Where they
    may travel is the api_url's concern: ``settings.resolved.api_url_for_sending()``.
    """
    layers = settings.layers(parameters)[:-1]  # no defaults: credentials have none
    for layer in layers:
        for name in SECRET_KEYS:
            register_secret(layer.get(name))
    return _pair(layers, documents=documents or parameters is not None)


def _pair(layers: list[Layer], *, documents: bool) -> Credentials:
    deciding = precedence.first_holding(layers, CREDENTIAL_KEYS)
    if deciding is None:
        raise CredentialsError("no Twilio credentials", hint=no_credentials_hint(documents=documents))
    weaker = layers[layers.index(deciding) + 1 :]
    if deciding.holds("api_key") or deciding.holds("api_secret"):
        if not (deciding.holds("api_key") and deciding.holds("api_secret")):
            raise _half_pair(deciding, ("api_key", "api_secret"), weaker)
        return _api_key(deciding, weaker)
    if deciding.holds("account_sid") and deciding.holds("auth_token"):
        sid = str(deciding.get("account_sid"))
        return Credentials(sid, sid, str(deciding.get("auth_token")), deciding.label)
    raise _half_pair(deciding, ("account_sid", "auth_token"), weaker)


def _api_key(deciding: Layer, weaker: list[Layer]) -> Credentials:
    key, secret = str(deciding.get("api_key")), str(deciding.get("api_secret"))
    if deciding.holds("account_sid"):
        return Credentials(str(deciding.get("account_sid")), key, secret, deciding.label)
    found = precedence.first(weaker, "account_sid")
    if found is None:
        raise CredentialsError(
            f"an API key ({deciding.label}) needs the account SID it belongs to",
            hint=f"give it with {deciding.spelling('account_sid')}, or set TWILIO_ACCOUNT_SID "
            "or account_sid in the config file",
        )
    sid, layer = found
    return Credentials(
        str(sid), key, secret, f"{deciding.label}, account SID from {layer.origin('account_sid')}"
    )


def _half_pair(layer: Layer, pair: tuple[str, str], weaker: list[Layer]) -> CredentialsError:
    given = next(name for name in pair if layer.holds(name))
    missing = layer.spelling(pair[1] if given == pair[0] else pair[0])
    if given == "account_sid":  # an account SID alone: either kind of secret completes it
        missing += f" (or {layer.spelling('api_key')} and {layer.spelling('api_secret')})"
    complete = next((other for other in weaker if _is_complete(other)), None)
    instead = (
        f", or remove {layer.spelling(given)} to use the pair in the {complete.label}" if complete else ""
    )
    return CredentialsError(
        f"half a credential pair in the {layer.label}: {layer.spelling(given)} without {missing}",
        hint=f"a pair is taken whole from one source: give {missing} there too{instead}",
    )


def _is_complete(layer: Layer) -> bool:
    return (layer.holds("api_key") and layer.holds("api_secret")) or (
        layer.holds("account_sid") and layer.holds("auth_token")
    )
