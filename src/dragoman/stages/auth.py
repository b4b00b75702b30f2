"""Who is calling: the client secret (``x-api-key`` or ``Authorization: Bearer``) checked against
the static keys in config, then the virtual keys in the store (cached there). The only key
extractor: the admin routes use ``client_secret`` too. In-process callers (the library) are
trusted and carry no key."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from ..core.exchange import Exchange, Reply
from ..core.pipeline import Next
from ..core.runtime import Runtime
from ..errors import AuthenticationError


def client_secret(headers: Mapping[str, str]) -> str | None:
    """The secret a client sent: ``x-api-key``, else a Bearer token (any case of "Bearer")."""
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
    return None


class Auth:
    """Fails closed: with keys configured (or an admin key), no valid secret, no request."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        auth = rt.config.auth
        self.static = [k.encode() for k in auth.keys]
        self.required = bool(auth.keys) or bool(auth.admin_key)

    async def __call__(self, ex: Exchange, next: Next) -> Reply:
        if not ex.trusted:
            ex.key = await self.check(ex.headers)
        ex.authenticated = True
        return await next(ex)

    async def check(self, headers: Mapping[str, str]) -> Any:
        """The caller's ``KeyInfo`` (virtual keys), None (static key, or no auth configured)."""
        if not self.required:
            return None
        secret = client_secret(headers)
        if not secret:
            raise AuthenticationError(
                "missing API key: send it as x-api-key or Authorization: Bearer"
            )
        acct = self.rt.accountant
        if acct is not None:
            info = await acct.authenticate(secret)
            if info is not None:
                return info
            raise AuthenticationError("invalid API key")
        s = secret.encode()
        if any(hmac.compare_digest(s, k) for k in self.static):
            return None
        raise AuthenticationError("invalid API key")
