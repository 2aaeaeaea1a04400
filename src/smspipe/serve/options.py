"""How the server runs: where it listens, who may call it, and its bounds. Plain data."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from smspipe.errors import UsageError

#: the largest request body read (the hub's requests are a few hundred bytes)
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    #: the X-Hub-Token every hub request must carry (None: none asked for, loopback only)
    hub_key: str | None = field(default=None, repr=False)
    #: the URL Twilio calls (behind a TLS proxy, not the request's own): signatures are over it
    public_url: str | None = None
    #: hub requests sending at once; more wait their turn
    max_sends: int = 10
    #: connections served at once; beyond, uvicorn answers 503
    max_connections: int = 1000
    #: seconds a request may take, body and send included; then 504 (safe to retry)
    request_timeout: float = 60.0
    #: seconds an in-flight request is given to finish after SIGTERM
    shutdown_timeout: float = 90.0
    max_body: int = MAX_BODY
    #: the ledger (None: the ``ledger`` setting, else the state dir)
    ledger: str | None = None
    config: str | None = None
    env: Mapping[str, str] | None = field(default=None, repr=False)

    def check(self) -> None:
        """A non-loopback bind without an endpoint key would let anyone send: refused (exit 2)."""
        if self.hub_key is None and not is_loopback(self.host):
            raise UsageError(
                f"refusing to listen on {self.host} without an endpoint key: anyone who reaches it "
                "could send SMS on your account",
                hint="set SMSPIPE_HUB_KEY (or give a hub key file), or bind 127.0.0.1 behind a TLS proxy",
            )
        if self.hub_key is not None and not self.hub_key.strip():
            raise UsageError(
                "the endpoint key is empty", hint="put the key in SMSPIPE_HUB_KEY or the key file"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False
