"""Options several commands share, declared once so that they read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Inputs = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[INPUT]...",
        help="Files of SMS documents (one object, an array, or NDJSON); - for "
        "stdin (the default when stdin is piped).",
        show_default=False,
    ),
]
ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (else SMSPIPE_CONFIG, else SMSPIPE_HOME/config.yaml, else the user config dir).",
        show_default=False,
    ),
]
Region = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="Region for numbers in national form (config default_region; US).",
        show_default=False,
    ),
]
MaxSegments = Annotated[
    int | None,
    typer.Option(
        "--max-segments",
        min=1,
        help="Refuse messages longer than N segments (config max_segments).",
        show_default=False,
    ),
]
AccountSid = Annotated[
    str | None,
    typer.Option(
        "--account-sid",
        help="Twilio Account SID (AC…); else TWILIO_ACCOUNT_SID or config.",
        show_default=False,
    ),
]
AuthToken = Annotated[
    str | None,
    typer.Option(
        "--auth-token",
        help="Twilio auth token (prefer TWILIO_AUTH_TOKEN: a flag shows in `ps`).",
        show_default=False,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", help="Twilio API key SID (SK…), with --api-secret.", show_default=False),
]
ApiSecret = Annotated[
    str | None,
    typer.Option(
        "--api-secret", help="Twilio API key secret (prefer TWILIO_API_SECRET).", show_default=False
    ),
]
ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="Twilio-compatible base URL (a mock, a proxy); also SMSPIPE_API_URL.",
        show_default=False,
    ),
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0.001, help="HTTP timeout per request, seconds (default 30).", show_default=False
    ),
]
