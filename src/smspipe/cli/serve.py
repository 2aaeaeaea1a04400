"""`smspipe serve`: the hub's POST /send_sms endpoint and Twilio's callbacks, on uvicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from smspipe.cli.app import guarded
from smspipe.spelling import Spelling

HELP = r"""Serve the hub's POST /send_sms endpoint (and /validate, /translate, /healthz, /metrics).

Needs uvicorn: pip install 'smspipe\[serve]'.

Endpoints:
  POST /send_sms   the hub request: {"request_id", "parameters", "sms"}
     200  sent, or sent before under this request_id (not sent again);
          also suppressed (opted out) and scheduled
     503  deferred (quiet hours, per-recipient cap): retry after Retry-After
     422  invalid SMS (the field named); 406 not JSON; 413 over 1 MB
     409  request_id used before for another recipient
     500  not sent, or not known yet: retrying the same request is safe
     401  missing or wrong X-Hub-Token; 504 over --request-timeout
  POST /validate   SMS documents -> validate's reports (422: one is invalid)
  POST /translate/order|customer|shipment
                   hub objects -> {"requests": [SMS request documents],
                   "errors": [...]} (422: an object did not translate)
  POST /twilio/status    Twilio's status callbacks (signed): the ledger's status
  POST /twilio/inbound   replies (signed): STOP words opt the sender out, START
                   words back in; answers empty TwiML
  GET  /healthz    {"ok": true}
  GET  /metrics    Prometheus text: requests, sends, latency histogram

The endpoint key (X-Hub-Token) comes from SMSPIPE_HUB_KEY or --hub-key-file;
without one the server listens on a loopback address only. Credentials,
sender and ledger come from the environment and the config file, as for
`send`, or from each hub request's parameters. SIGTERM: stop accepting,
finish the requests in flight, then end by the signal (exit 143, as systemd
expects of a stopped service).

Behind a TLS proxy (nginx, Caddy): listen on 127.0.0.1, proxy to it, and
give the public URL Twilio calls (it signs its callbacks over that URL):
  nginx: location / { proxy_pass http://127.0.0.1:8000; }
  smspipe serve --public-url https://sms.example.com --hub-key-file KEY

A systemd unit, /etc/systemd/system/smspipe.service:
  \[Unit]
  Description=smspipe hub endpoint
  After=network-online.target
  \[Service]
  User=smspipe
  Environment=SMSPIPE_HOME=/var/lib/smspipe
  # TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, SMSPIPE_FROM, SMSPIPE_HUB_KEY:
  EnvironmentFile=/etc/smspipe/env
  ExecStart=/usr/local/bin/smspipe serve --public-url https://sms.example.com
  TimeoutStopSec=120
  Restart=on-failure
  \[Install]
  WantedBy=multi-user.target
"""


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (another than loopback needs a hub key).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8000,
    hub_key_file: Annotated[
        Path | None,
        typer.Option(
            "--hub-key-file",
            help="File holding the key hub requests carry in X-Hub-Token (else SMSPIPE_HUB_KEY).",
            show_default=False,
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="The URL Twilio calls this server at (behind a TLS proxy); Twilio signs callbacks over it.",
            show_default=False,
        ),
    ] = None,
    max_sends: Annotated[
        int, typer.Option("--max-sends", min=1, help="Hub requests sending at once; more wait their turn.")
    ] = 10,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="Connections at once; beyond, 503.")
    ] = 1000,
    request_timeout: Annotated[
        float,
        typer.Option(
            "--request-timeout", min=1, help="Seconds a request may take; then 504 (safe to retry)."
        ),
    ] = 60.0,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            "--shutdown-timeout", min=1, help="Seconds requests in flight get to finish on SIGTERM."
        ),
    ] = 90.0,
    ledger_path: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="Ledger: an SQLite path or postgresql://… (default: the state dir; config `ledger`; "
            "SMSPIPE_LEDGER).",
            show_default=False,
        ),
    ] = None,
) -> None:
    with guarded():
        from smspipe.serve import ServeOptions
        from smspipe.serve.server import run
        from smspipe.spelling import using

        options = ServeOptions(
            host=host,
            port=port,
            hub_key=_hub_key(hub_key_file),
            public_url=public_url,
            max_sends=max_sends,
            max_connections=max_connections,
            request_timeout=request_timeout,
            shutdown_timeout=shutdown_timeout,
            ledger=ledger_path,
        )
        # What the server answers a hub names settings as the config file does: the
        # command line's flags are not the caller's there.
        with using(_server_spelling()):
            run(options, announce=lambda url: sys.stderr.write(f"smspipe: serving on {url}\n"))


serve.__doc__ = HELP


def _server_spelling() -> Spelling:
    from smspipe.cli.options import FLAGS

    return Spelling("setting", "settings", {name: f"`{name}`" for name in FLAGS})


def _hub_key(path: Path | None) -> str | None:
    if path is None:
        return os.environ.get("SMSPIPE_HUB_KEY") or None
    from smspipe.cli.output import warn
    from smspipe.config import read_secret_file

    key, warnings = read_secret_file(path, what="hub key")
    for warning in warnings:
        warn(warning)
    return key
