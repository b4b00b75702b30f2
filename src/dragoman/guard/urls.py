"""Which URLs a client may make someone fetch (docs/limits.md, "Addresses").

Image URLs in a request are fetched by the upstream (vLLM and friends fetch them from inside
the private network), webhook URLs by the gateway: both may point only at public addresses
(audit #2b, #18). This module decides from the URL alone: its scheme, and its host when that
is a literal address or a name that is private by definition (``localhost``, ``*.local``,
``*.internal``, a single label such as ``metadata``). It resolves nothing, so it never blocks;
the webhook sender checks the addresses a name resolves to again when it connects
(``accounting.alerts``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

#: names that are private whatever they resolve to (RFC 6761, 6762, 8375 and cloud metadata)
_PRIVATE_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".intranet",
    ".lan",
    ".home.arpa",
    ".in-addr.arpa",
    ".ip6.arpa",
)
_PRIVATE_NAMES = {"localhost", "metadata.google.internal", "instance-data.ec2.internal"}
#: IPv4 written the old ways resolvers still accept: "127.1", "0x7f000001", "2130706433"
_LEGACY_V4 = re.compile(r"^[0-9a-fA-Fx.]+$")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: the well-known NAT64 prefix: the IPv4 address it embeds is the one reached
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def literal_address(host: str) -> IpAddress | None:
    """The address ``host`` spells, in any form a resolver accepts; None for a name."""
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_V4.match(h) and any(c.isdigit() for c in h):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            return None
    return None


def public_address(addr: IpAddress) -> bool:
    """Whether ``addr`` is on the public internet (not loopback, private, link-local, shared,
    reserved, multicast or unspecified; an IPv4 address inside IPv6 is judged as IPv4)."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = addr.ipv4_mapped or addr.sixtofour
        if inner is None and addr in _NAT64:
            inner = ipaddress.IPv4Address(addr.packed[-4:])
        if inner is not None:
            return public_address(inner)
    return addr.is_global and not addr.is_multicast


def host_refusal(host: str | None) -> str | None:
    """Why a URL with this host may not be fetched for a client; None when it may."""
    if not host:
        return "it names no host"
    h = host.rstrip(".").lower()
    addr = literal_address(h)
    if addr is not None:
        return None if public_address(addr) else f"{addr} is not a public address"
    if h in _PRIVATE_NAMES or h.endswith(_PRIVATE_SUFFIXES):
        return f"{h} is a private name"
    if "." not in h:
        return f"{h} is a local name"  # resolved through search domains, to internal hosts
    return None


def url_refusal(url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Why ``url`` may not be fetched for a client (scheme, then host); None when it may."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018  # a malformed port raises here
    except ValueError:
        return "it is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        return f"the {scheme or 'empty'} scheme is not allowed (use {' or '.join(schemes)})"
    return host_refusal(host)


def webhook_refusal(url: str) -> str | None:
    """Why the gateway may not POST to ``url``: https only, to a public host (audit #2b)."""
    return url_refusal(url, schemes=("https",))
