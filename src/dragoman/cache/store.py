"""The response cache over a bytes store (the shared ``State``, or one of its own): look up,
store (only what fits ``max_entry_bytes``), never fail a request (an unreachable store is a
miss). The cache stage (issue 11's pipeline stage) drives it; docs/limits.md."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..config import CacheConfig
from .entry import Entry, decode, encode

log = logging.getLogger("dragoman.cache")


class Bytes(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: float) -> None: ...


class ResponseCache:
    def __init__(self, cfg: CacheConfig, store: Bytes) -> None:
        self.cfg = cfg
        self.store = store

    async def lookup(self, key: str, dialect: str) -> Entry | None:
        raw = await self.store.get(key)
        if raw is None:
            return None
        entry = decode(raw)
        if entry is None or entry.dialect != dialect:
            return None
        return entry

    async def put(self, key: str, dialect: str, body: dict[str, Any]) -> bool:
        """Store a complete answer; False when it is over ``max_entry_bytes`` (not stored)."""
        raw = encode(dialect, body)
        if len(raw) > self.cfg.max_entry_bytes:
            log.debug("answer of %d bytes not cached (max_entry_bytes)", len(raw))
            return False
        await self.store.set(key, raw, self.cfg.ttl)
        return True


def build_cache(cfg: CacheConfig, state: Any, state_url: str | None) -> ResponseCache:
    """The cache a config asks for: in this process, in the ``state`` Redis (``backend:
    redis`` without ``url``), or in a Redis of its own (``url``)."""
    from ..state import MemoryBytes

    if cfg.backend == "memory":
        mem = MemoryBytes(cfg.max_bytes)

        class _Mem:
            async def get(self, key: str) -> bytes | None:
                return mem.get(key)

            async def set(self, key: str, value: bytes, ttl: float) -> None:
                mem.set(key, value, ttl)

        return ResponseCache(cfg, _Mem())
    if cfg.url and cfg.url != state_url:
        from ..state.redis import RedisState

        return ResponseCache(cfg, RedisState(cfg.url))
    return ResponseCache(cfg, state)
