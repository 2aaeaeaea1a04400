"""The commented config file: config.example.yaml, `config example` and `config init`.

Every key of :data:`~smspipe.config.keys.KEYS` with its documentation, in
sections; the keys given written out, the others commented out with an example
that loads when uncommented (tests/test_config.py uncomments them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smspipe.config.keys import KEYS
from smspipe.config.paths import CONFIG_FILENAME

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
    "allow_insecure_http": "false",
    "default_region": "US",
    "allowed_countries": "[US, CA]",
    "shop_name": '"Example Shop"',
    "address": "shipping",
    "templates": "\n  order:"
    '\n    complete: "Hi {{ name }}, thanks for your order {{ order.id }}!"'
    '\n    default: "Your order {{ order.id }} is now {{ status }}."'
    '\n  shipment: "{{ shop_name }}: your order {{ shipment.order_id }} has shipped."',
    "max_segments": "3",
    "ledger": '"~/smspipe/ledger.sqlite3"',  # or "postgresql://smspipe@db.internal/shop"
    "concurrency": "4",
    "rate": "10",
    "shared_rate": "false",
    "retries": "5",
    "max_wait": "60",
    "timeout": "30",
    "reconcile_grace": "300",
    "run_lease": "60",
    "quiet_hours": '"21:00-08:00"',
    "quiet_hours_timezone": '"America/New_York"',
    "max_per_recipient": '"3/24h"',
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
    "Connection to Twilio": ["api_url", "allow_insecure_http", "timeout"],
    "Checks (validate, send)": ["default_region", "allowed_countries", "max_segments"],
    "translate": ["shop_name", "address", "templates"],
    "send: ledger, pace and retries": [
        "ledger",
        "concurrency",
        "rate",
        "shared_rate",
        "retries",
        "max_wait",
        "reconcile_grace",
        "run_lease",
    ],
    "send: quiet hours and caps": ["quiet_hours", "quiet_hours_timezone", "max_per_recipient"],
}

_HEADER = """\
# {origin}
#
# Precedence: flag > per-document parameters > environment > this file > default.
# Credentials are a pair taken whole from one of those sources, never mixed.
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
    import textwrap

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
