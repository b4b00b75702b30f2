"""Who may call: client keys (static and virtual), the admin key, and when the gateway is open.

Auth fails closed (docs/security.md): client auth is required whenever static keys, an admin
key or any unrevoked virtual key exist, and on a non-loopback bind unless ``auth.open: true``
(then ``serve`` refuses to start without keys anyway). Failures are logged without the key and
limited per address (``accounting/auth_failures.py``).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Any

from aiohttp import web

from ..accounting.auth_failures import AuthFailures, retry_after
from ..config import Config
from ..errors import AuthenticationError, RateLimitError


def client_key(request: web.Request) -> str | None:
    """The key a request presents: ``x-api-key``, else ``Authorization: Bearer``."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
    return None


def client_address(request: web.Request, trusted: list[str]) -> str:
    """The caller's address: the peer, or behind a trusted proxy (``server.trusted_proxies``)
    the nearest ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
    peer = request.remote or "-"
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _in(hop, trusted):
            return hop[:64]
    return peer


def _in(addr: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


@functools.lru_cache(maxsize=1024)  # per request (Host headers, the bind): parse each name once
def is_loopback(host: str) -> bool:
    """Whether a bind address (or Host name) only reaches this machine."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def open_allowed(config: Config) -> bool:
    """The gateway may run without client keys: loopback bind, or ``auth.open: true``."""
    return config.auth.open or is_loopback(config.server.host)


class Auth:
    """Static keys from config, then virtual keys from the store (cached there)."""

    def __init__(self, config: Config, accountant: Any) -> None:
        self.config = config
        self.static = [k.encode() for k in config.auth.secrets]
        self.accountant = accountant
        self.failures = AuthFailures(config.auth.max_failures_per_minute)

    @property
    def required(self) -> bool:
        """Client requests need a key (evaluated per request: virtual keys come and go)."""
        a = self.config.auth
        if a.keys or a.admin_key:
            return True
        if self.accountant is not None and self.accountant.virtual_keys:
            return True
        return not open_allowed(self.config)

    @property
    def open(self) -> bool:
        return not self.required

    def admin_ok(self, secret: str | None) -> bool:
        """``secret`` is the admin key (constant time)."""
        admin = self.config.auth.admin_key
        if not admin or not secret:
            return False
        return hmac.compare_digest(secret.encode(), admin.encode())

    def address(self, request: web.Request) -> str:
        """Who to count failures against (docs/security.md, behind a proxy)."""
        return client_address(request, self.config.server.trusted_proxies)

    def is_admin(self, request: web.Request) -> bool:
        return self.admin_ok(client_key(request))

    def refuse_if_blocked(self, request: web.Request) -> None:
        """429 while this address has failed too often (any key: a guess must not be tested)."""
        wait = self.failures.blocked_for(self.address(request))
        if wait is not None:
            raise RateLimitError(
                "too many failed authentications from this address; try again later",
                code="auth_rate_limited",
                headers={"retry-after": retry_after(wait)},
            )

    def fail(self, request: web.Request, message: str, **kw: Any) -> AuthenticationError:
        """Count and log one failure of this request; the 401 to raise."""
        self.failures.failed(self.address(request), client_key(request), request.path)
        return AuthenticationError(message, **kw)

    async def check(self, request: web.Request) -> Any:
        """The caller's key (``KeyInfo``; None on an open gateway or a store-less static key);
        401 when the key is missing or wrong, 429 after too many failures."""
        if not self.required:
            return None
        self.refuse_if_blocked(request)
        secret = client_key(request)
        if not secret:
            raise self.fail(
                request, "missing API key: send it as x-api-key or Authorization: Bearer"
            )
        if self.accountant is not None:
            info = await self.accountant.authenticate(secret)
            if info is not None:
                return info
            raise self.fail(request, "invalid API key")
        s = secret.encode()
        if any(hmac.compare_digest(s, k) for k in self.static):
            return None
        raise self.fail(request, "invalid API key")
