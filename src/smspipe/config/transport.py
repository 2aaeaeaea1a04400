"""Where the credentials go: never in clear over the network unless the user says so.

Twilio authenticates every request with HTTP Basic auth, so an ``http://``
``api_url`` sends the account SID and the token readable by anyone on the
path. Plain HTTP is fine to this machine (a local mock: 127.0.0.0/8, ::1,
localhost); anywhere else it takes ``allow_insecure_http: true`` (the
argument ``allow_insecure_http=True``, the flag ``--allow-insecure-http``).
"""

from __future__ import annotations

from smspipe.errors import CredentialsError
from smspipe.spelling import setting


class InsecureTransport(CredentialsError):
    """An http:// api_url to a host that is not this machine, not explicitly allowed."""


def is_loopback(host: str) -> bool:
    import ipaddress  # only where an http:// URL is checked

    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def shown_url(url: str) -> str:
    """scheme://host[:port] of *url*: never the user and password a URL may carry."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def check_api_url(api_url: str | None, *, allow_insecure_http: bool) -> None:
    """Raise InsecureTransport when credentials would go to *api_url* in clear."""
    if not api_url or allow_insecure_http or api_url.strip()[:5].lower() != "http:":
        return
    from urllib.parse import urlsplit

    parts = urlsplit(api_url.strip())
    if parts.scheme.lower() != "http" or is_loopback(parts.hostname or ""):
        return
    raise InsecureTransport(
        f"api_url {shown_url(api_url)} is plain HTTP to another machine: the credentials "
        "would cross the network in clear",
        hint="use https://, or 127.0.0.1/localhost for a local mock; if you mean it "
        f"(a trusted network), pass {setting('allow_insecure_http')} or set allow_insecure_http: true",
    )
