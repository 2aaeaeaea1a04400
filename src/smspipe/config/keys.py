"""The key registry: every setting, described once.

The config file's JSON Schema (`smspipe schema config`), `config show`, the
example file and the typed settings all follow :data:`KEYS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from smspipe.schemacheck import Schema


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    schema: dict[str, Any]
    doc: str
    env: str | None = None
    default: Any = None
    secret: bool = False
    #: the document parameter that may set it (hub requests: ``parameters.twilio_…``)
    parameter: str | None = None


URL = {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/]+"}
#: What a sender can look like, coarsely: a number (E.164 or national, with the
#: usual punctuation; a whatsapp: address), or text without a word of 12 or more
#: characters (an alphanumeric sender ID has at most 11). `validate` and `send`
#: check the sender itself; this refuses, without repeating it, what could be a
#: token pasted into the wrong key.
SENDER = {
    "type": "string",
    "minLength": 1,
    "pattern": "^(?:[Ww][Hh][Aa][Tt][Ss][Aa][Pp][Pp]:[ ]*)?[+(]?[0-9][0-9 ().-]{2,24}$|^(?![\\s\\S]*\\S{12})",
}
#: a time of day, HH:MM (24 hours)
_CLOCK = "([01][0-9]|2[0-3]):[0-5][0-9]"
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
            parameter="twilio_account_sid",
        ),
        Key(
            "auth_token",
            {"type": "string", "minLength": 1},
            "Twilio auth token",
            env="TWILIO_AUTH_TOKEN",
            secret=True,
            parameter="twilio_auth_token",
        ),
        Key(
            "api_key",
            {"type": "string", "pattern": "^SK[0-9a-fA-F]{32}$"},
            "Twilio API key SID (SK…), used with api_secret instead of the auth token",
            env="TWILIO_API_KEY",
            parameter="twilio_api_key",
        ),
        Key(
            "api_secret",
            {"type": "string", "minLength": 1},
            "Twilio API key secret",
            env="TWILIO_API_SECRET",
            secret=True,
            parameter="twilio_api_secret",
        ),
        Key(
            "from",
            SENDER,
            "default sender: E.164 number, short code or alphanumeric sender ID",
            env="SMSPIPE_FROM",
        ),
        Key(
            "messaging_service_sid",
            {"type": "string", "pattern": "^MG[0-9a-fA-F]{32}$"},
            "Messaging Service SID (MG…), used when no sender is given",
            env="SMSPIPE_MESSAGING_SERVICE_SID",
            parameter="twilio_messaging_service_sid",
        ),
        Key(
            "status_callback",
            URL,
            "URL Twilio calls with delivery status updates, when a document names none",
        ),
        Key(
            "api_url",
            URL,
            "Twilio-compatible base URL (a local mock, a proxy) instead of https://api.twilio.com",
            env="SMSPIPE_API_URL",
        ),
        Key(
            "allow_insecure_http",
            {"type": "boolean"},
            "allow an http:// api_url on a host other than this machine: the credentials then "
            "cross the network in clear",
            default=False,
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
            "the ledger of sent messages: an SQLite file's path, or a postgresql:// URL when "
            "several hosts share the work (pip install 'smspipe[postgres]')",
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
            "shared_rate",
            {"type": "boolean"},
            "make `rate` hold for every run using the ledger together, per sender (Twilio's "
            "limit), not for each run alone",
            default=False,
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
            "quiet_hours",
            {"type": ["string", "null"], "pattern": f"^{_CLOCK}-{_CLOCK}$"},
            "hours, HH:MM-HH:MM in the recipient's local time (from the number), when nothing but "
            'documents with "category": "transactional" is sent: the others are deferred to the next '
            "run after it (or scheduled with Twilio)",
            env="SMSPIPE_QUIET_HOURS",
            default=None,
        ),
        Key(
            "quiet_hours_timezone",
            {"type": ["string", "null"], "minLength": 1},
            "IANA time zone for quiet hours where a number's own zone is unknown (default: UTC)",
            default=None,
        ),
        Key(
            "max_per_recipient",
            {"type": ["string", "null"], "pattern": "^[1-9][0-9]*/[1-9][0-9]*[smhd]$"},
            "at most this many messages to one recipient per period, COUNT/PERIOD (3/24h); more are deferred",
            default=None,
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

#: The keys whose values are secrets (masked everywhere, never echoed).
SECRET_KEYS = frozenset(k.name for k in KEYS.values() if k.secret)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, built from :data:`KEYS`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "smspipe config",
        "type": "object",
        "additionalProperties": False,
        "properties": {k.name: {**k.schema, "description": k.doc} for k in KEYS.values()},
    }


@cache
def config_validator() -> Schema:
    return Schema(config_schema())


@cache
def key_validator(name: str) -> Schema:
    """The compiled check of one key's value (flags are checked with it too)."""
    return Schema(KEYS[name].schema)
