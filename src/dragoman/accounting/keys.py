"""Who is calling: static keys, virtual keys (cached), the admin key, the model allow-list, and
the provider credentials stored encrypted.

A secret is looked up by its HMAC under the store's pepper, never in clear. Static keys are
compared in constant time whichever matches; virtual keys are cached for
``auth.key_cache_ttl`` seconds (a refusal for at most 5 s), and the cache is dropped when any
process changes a key (``key_watch.py``: within about a second; at once when this process's
admin API did it).
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from dragoman.accounting.types import KeyInfo
from dragoman.config import Config, StaticKey
from dragoman.errors import PermissionDeniedError, ServerError
from dragoman.store.keys import KeyRepo
from dragoman.store.secrets import hash_secret

log = logging.getLogger("dragoman.accounting")

#: above this many cached lookups the cache starts over (bounded memory under a key scan)
CACHE_MAX = 100_000
#: longest a refusal (unknown, revoked) is cached, whatever the TTL
REFUSAL_TTL = 5.0
#: with the key store unreachable, a key cached at most this many seconds ago is still served
STALE_MAX = 300.0
#: seconds a caller is told to wait when the key store is unreachable
RETRY_AFTER = 5


def _key_from_row(r: Any) -> KeyInfo:
    return KeyInfo(
        id=r.id,
        alias=r.alias,
        team=r.team,
        owner=r.owner,
        allowed_models=json.loads(r.allowed_models) if r.allowed_models else None,
        metadata=json.loads(r.meta or "{}"),
        is_static=False,
        budget_usd=r.budget_usd,
        budget_period=r.budget_period or "total",
        expires_at=r.expires_at,
        rpm=r.rpm,
        tpm=r.tpm,
        max_concurrency=r.max_concurrency,
    )


def static_key_id(pepper: bytes, secret: str) -> str:
    """A static key's public id (usage rows, budget views): keyed by the store's pepper, so
    seeing an id does not let anyone test guesses of the key offline (audit #26), and stable
    across restarts because the pepper is."""
    id_key = hmac.new(pepper, b"dragoman static key id", "sha256").digest()
    return f"static-{hash_secret(id_key, secret)[:12]}"


def _static_keys(pepper: bytes, keys: list[StaticKey]) -> list[tuple[str, KeyInfo]]:
    out = []
    for k in keys:
        info = KeyInfo(
            id=static_key_id(pepper, k.key),
            alias=k.alias,
            team=k.team,
            owner=None,
            allowed_models=None,
            metadata={},
            is_static=True,
            budget_usd=None,
        )
        out.append((hash_secret(pepper, k.key), info))
    return out


class Keyring:
    """Key and credential look-ups, with their caches. ``repo`` is None when the store is off
    (static keys only, no credentials)."""

    def __init__(
        self,
        config: Config,
        pepper: bytes,
        repo: KeyRepo | None,
        *,
        clock: Callable[[], float],
        now: Callable[[], _dt.datetime],
    ) -> None:
        self.config = config
        self.pepper = pepper
        self.repo = repo
        #: monotonic seconds for the caches' TTLs
        self.clock = clock
        #: naive UTC wall clock for key expiry
        self.now = now
        self._static = _static_keys(pepper, config.auth.static_keys)
        self._cache: dict[str, tuple[KeyInfo | None, float]] = {}
        #: the store holds an unrevoked virtual key (kept by ``key_watch.KeyWatch``): client
        #: auth is then required (docs/security.md)
        self.virtual_keys = False
        self._creds: dict[str, tuple[str, float]] = {}

    def admin_ok(self, secret: str | None) -> bool:
        admin = self.config.auth.admin_key
        if not admin or not secret:
            return False
        return hmac.compare_digest(secret.encode(), admin.encode())

    async def authenticate(self, secret: str) -> KeyInfo | None:
        """The key a secret belongs to; None when unknown, revoked or expired."""
        if not secret:
            return None
        h = hash_secret(self.pepper, secret)
        found: KeyInfo | None = None
        for sh, sinfo in self._static:  # no early exit: the time does not depend on which key
            if hmac.compare_digest(sh, h):
                found = sinfo
        if found is not None:
            return found
        now = self.clock()
        hit = self._cache.get(h)
        info: KeyInfo | None
        if hit is not None and hit[1] > now:
            info = hit[0]
        else:
            if self.repo is None:
                return None
            try:
                row = await self.repo.lookup(h)
            except Exception as e:
                return self._unreachable(hit, e)
            info = None
            if row is not None and row.revoked_at is None:
                info = _key_from_row(row)
            ttl = self.config.auth.key_cache_ttl
            if len(self._cache) > CACHE_MAX:
                self._cache.clear()
            self._cache[h] = (info, now + (ttl if info is not None else min(ttl, REFUSAL_TTL)))
        if info is not None and info.expires_at is not None and info.expires_at <= self.now():
            return None
        return info

    def _unreachable(
        self, hit: tuple[KeyInfo | None, float] | None, e: Exception
    ) -> KeyInfo | None:
        """The key store did not answer: a key seen before is still served (its last known
        state); an unknown one gets a 503 with retry-after, never a 500 (audit #20)."""
        err = (str(e).splitlines() or [type(e).__name__])[0][:200]
        if hit is not None and hit[0] is not None and self.clock() - hit[1] < STALE_MAX:
            log.warning("key lookup failed (%s): serving the cached entry", err)
            info = hit[0]
            if info.expires_at is not None and info.expires_at <= self.now():
                return None
            return info
        log.error("key lookup failed (%s): request refused with 503", err)
        raise ServerError(
            "key check unavailable: the accounting database did not answer",
            status=503,
            code="auth_unavailable",
            retry_after=RETRY_AFTER,
            headers={"retry-after": str(RETRY_AFTER)},
        ) from e

    def invalidate(self) -> None:
        """Forget every cached key (after this process changed or revoked one)."""
        self._cache.clear()

    @staticmethod
    def check_model_allowed(key: KeyInfo | None, model: str) -> None:
        """403 unless the key may use ``model`` (exact names or shell patterns)."""
        if key is None or key.allowed_models is None:
            return
        for pat in key.allowed_models:
            if pat == model or fnmatch.fnmatchcase(model, pat):
                return
        who = key.alias or key.id
        raise PermissionDeniedError(
            f"key {who!r} may not use model {model!r}", code="model_not_allowed"
        )

    async def credential(self, name: str) -> str | None:
        """A stored provider key, decrypted (cached like keys)."""
        now = self.clock()
        hit = self._creds.get(name)
        if hit is not None and hit[1] > now:
            return hit[0]
        if self.repo is None:
            return None
        value = await self.repo.get_credential(name)
        if value is not None:
            self._creds[name] = (value, now + self.config.auth.key_cache_ttl)
        return value

    def forget_credential(self, name: str) -> None:
        """Drop a cached credential (after this process replaced or deleted it)."""
        self._creds.pop(name, None)
