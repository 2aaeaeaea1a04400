"""URLs Twilio is asked to fetch or call: ``media_url`` and ``status_callback``.

:func:`url_problem` says why a URL cannot work, or None. Twilio fetches media
and calls status callbacks from its own servers, over the public internet, so
a usable URL is absolute http(s), has a host, holds no whitespace or control
characters, and does not name a literal address Twilio could never reach
(loopback, private, link-local, unspecified, multicast, reserved). Literal
addresses are read as URL parsers read them (WHATWG): ``http://2130706433/``,
``http://0x7f.1/`` and ``http://[::ffff:127.0.0.1]/`` all name 127.0.0.1.
Host names are not resolved (that would make validation depend on DNS); only
``localhost`` and its subdomains are refused by name.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from urllib.parse import urlsplit

__all__ = ["url_problem"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64's well-known prefix: the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Full stops that IDNA maps to "." before a host name is used.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def url_problem(url: object) -> str | None:
    """Why *url* is not an http(s) URL Twilio can reach, or None when it is.

    >>> url_problem("https://example.com/cat.jpg") is None
    True
    >>> url_problem("http://127.0.0.1:22/")
    "'http://127.0.0.1:22/' names 127.0.0.1, a loopback address Twilio cannot reach; use a public host"
    """
    if not isinstance(url, str):
        return "must be a string"
    shown = _shown(url)
    problem = _scheme_problem(url) or _text_problem(url) or _shape_problem(url)
    if problem is not None:
        return f"{shown} {problem}"
    host = urlsplit(url).hostname or ""
    problem = _host_problem(host)
    return None if problem is None else f"{shown} {problem}"


def _shown(url: str) -> str:
    text = url if len(url) <= 80 else url[:77] + "..."
    return repr(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def _text_problem(url: str) -> str | None:
    for position, char in enumerate(url, 1):
        if char == " " or not char.isprintable():
            name = (
                "a space"
                if char == " "
                else "whitespace"
                if char.isspace()
                else "a control or invisible character"
            )
            return (
                f"holds {name} (U+{ord(char):04X}) at position {position}; "
                "percent-encode it (%20 for a space) or remove it"
            )
    return None


def _scheme_problem(url: str) -> str | None:
    scheme, colon, _ = url.partition(":")
    if not colon or scheme.lower() not in ("http", "https"):
        return "is not an http(s) URL; give an absolute URL starting with https://"
    return None


def _shape_problem(url: str) -> str | None:
    if not url.partition(":")[2].startswith("//"):
        return "has no host; give an absolute URL such as https://example.com/file.jpg"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"is not a valid URL ({exc}); check the host and port"
    host = parts.hostname or ""
    if "\\" in parts.netloc:
        return "has a backslash in its host part; use / to separate the path"
    if not host:
        return "has no host; give an absolute URL such as https://example.com/file.jpg"
    if "%" in host and ":" not in host:  # an IPv6 literal may carry a zone (%25eth0)
        return "has a percent-encoded host; write the host name plainly"
    return None


def _host_problem(host: str) -> str | None:
    name = unicodedata.normalize("NFKC", host).translate(_DOTS).lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "names localhost, which Twilio cannot reach; use a public host"
    try:
        address = _literal_address(name)
    except ValueError as exc:
        return f"has a host that is not a valid address ({exc})"
    if address is None:
        return None
    kind = _unreachable_kind(address)
    if kind is None:
        return None
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    shown = f"{address} ({embedded})" if embedded is not None else str(address)
    return f"names {shown}, {kind} address Twilio cannot reach; use a public host"


def _literal_address(name: str) -> IPAddress | None:
    """The address a host names literally (None for a domain name); ValueError if malformed."""
    if ":" in name:  # urlsplit has taken the brackets off an IPv6 literal
        return ipaddress.IPv6Address(name.partition("%")[0])
    labels = name.split(".")
    if not _is_number(labels[-1]):
        return None  # a domain name: its last label is not a number (WHATWG "ends in a number")
    return _ipv4(labels)


def _is_number(label: str) -> bool:
    if label[:2] == "0x":
        return all(c in "0123456789abcdef" for c in label[2:])
    return label.isdigit() and label.isascii()


def _ipv4(labels: list[str]) -> ipaddress.IPv4Address:
    """An IPv4 address in any form URL parsers accept: 127.1, 0x7f.0.0.1, 017700000001."""
    if len(labels) > 4:
        raise ValueError("more than four parts")
    numbers = [_ipv4_number(label) for label in labels]
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError("a part is out of range")
    value = last
    for position, number in enumerate(leading):
        value += number << (8 * (3 - position))
    return ipaddress.IPv4Address(value)


def _ipv4_number(label: str) -> int:
    if label[:2] == "0x":
        return int(label[2:] or "0", 16)
    base = 8 if len(label) > 1 and label.startswith("0") else 10
    try:
        return int(label, base)  # 08 is neither an address nor a name
    except ValueError:
        raise ValueError(f"{label!r} is not a number") from None


def _unreachable_kind(address: IPAddress) -> str | None:
    """Why Twilio's servers could not reach *address* ("a loopback"), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _unreachable_kind(embedded)
    checks = (
        (address.is_unspecified, "an unspecified"),
        (address.is_loopback, "a loopback"),
        (address.is_link_local, "a link-local"),
        (address.is_multicast, "a multicast"),
        (address.is_private, "a private"),
        (address.is_reserved, "a reserved"),
        (not address.is_global, "a non-public"),
    )
    for applies, kind in checks:
        if applies:
            return kind
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
