"""Who may call: client keys (static and virtual), the admin key, and when the gateway is open.

The auth stage, and the one key extractor (``client_secret``): the server's other routes
(``/v1/models``, ``/health`` details, ``/metrics``, the admin API) use the same ``Auth`` object
the pipeline runs. Auth fails closed (docs/security.md): client auth is required whenever static
keys, an admin key or any unrevoked virtual key exist, and on a non-loopback bind unless
``auth.open: true`` (then ``serve`` refuses to start without keys anyway). Failures are logged
without the key and limited per address (``accounting/auth_failures.py``). In-process callers
(the library) are trusted and carry no key.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any, Protocol

from ..accounting.auth_failures import AuthFailures, retry_after
from ..config import Config
from ..core.exchange import Exchange, Reply
from ..core.pipeline import Next
from ..core.runtime import Runtime
from ..errors import AuthenticationError, RateLimitError


class Caller(Protocol):
    """What auth reads of a request: an HTTP request or an ``Exchange``."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def remote(self) -> str | None: ...

    @property
    def path(self) -> str: ...


def client_secret(headers: Mapping[str, str]) -> str | None:
    """The key a request presents: ``x-api-key``, else ``Authorization: Bearer``."""
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
    return None


def client_address(caller: Caller, trusted: list[str]) -> str:
    """The caller's address: the peer, or behind a trusted proxy (``server.trusted_proxies``)
    the nearest ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
    peer = caller.remote or "-"
    if not trusted or not _in(peer, trusted):
        return peer
    getall = getattr(caller.headers, "getall", None)
    values = getall("X-Forwarded-For", []) if getall is not None else []
    hops = [h.strip() for h in ",".join(values).split(",")]
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

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.config = rt.config
        self.static = [k.encode() for k in rt.config.auth.secrets]
        self.failures = AuthFailures(rt.config.auth.max_failures_per_minute)

    async def __call__(self, ex: Exchange, next: Next) -> Reply:
        if not ex.trusted:
            ex.key = await self.check(ex)
        ex.authenticated = True
        return await next(ex)

    @property
    def accountant(self) -> Any:
        return self.rt.accountant

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

    def address(self, caller: Caller) -> str:
        """Who to count failures against (docs/security.md, behind a proxy)."""
        return client_address(caller, self.config.server.trusted_proxies)

    def is_admin(self, caller: Caller) -> bool:
        return self.admin_ok(client_secret(caller.headers))

    def refuse_if_blocked(self, caller: Caller) -> None:
        """429 while this address has failed too often (any key: a guess must not be tested)."""
        wait = self.failures.blocked_for(self.address(caller))
        if wait is not None:
            raise RateLimitError(
                "too many failed authentications from this address; try again later",
                code="auth_rate_limited",
                headers={"retry-after": retry_after(wait)},
            )

    def fail(self, caller: Caller, message: str, **kw: Any) -> AuthenticationError:
        """Count and log one failure of this request; the 401 to raise."""
        self.failures.failed(self.address(caller), client_secret(caller.headers), caller.path)
        return AuthenticationError(message, **kw)

    async def check(self, caller: Caller) -> Any:
        """The caller's key (``KeyInfo``; None on an open gateway or a store-less static key);
        401 when the key is missing or wrong, 429 after too many failures."""
        if not self.required:
            return None
        self.refuse_if_blocked(caller)
        secret = client_secret(caller.headers)
        if not secret:
            raise self.fail(
                caller, "missing API key: send it as x-api-key or Authorization: Bearer"
            )
        acct = self.accountant
        if acct is not None:
            info = await acct.authenticate(secret)
            if info is not None:
                return info
            raise self.fail(caller, "invalid API key")
        s = secret.encode()
        if any(hmac.compare_digest(s, k) for k in self.static):
            return None
        raise self.fail(caller, "invalid API key")
