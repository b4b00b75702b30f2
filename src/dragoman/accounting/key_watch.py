"""Key changes made by another process reach this one within a second (audit #24).

Every key write (create, edit, revoke: admin API or CLI, any process) moves the ``keys_version``
settings row in the same transaction. This watcher reads it once a second, off the request
path, and drops the cached keys when it moved; no request waits on the database for it. It also
learns whether the store holds any unrevoked virtual key: then client auth is required
(docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

log = logging.getLogger("dragoman.accounting")

#: seconds between two reads of the keys version (the bound on a revocation's delay)
POLL_EVERY = 1.0


class _Repo(Protocol):
    async def version(self) -> tuple[str | None, bool]: ...


class _Ring(Protocol):
    virtual_keys: bool

    def invalidate(self) -> None: ...


class KeyWatch:
    """Polls ``repo.version()`` and tells ``ring`` (cache dropped, virtual keys present)."""

    def __init__(self, repo: _Repo, ring: _Ring, every: float = POLL_EVERY) -> None:
        self.repo = repo
        self.ring = ring
        self.every = every
        self.version: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def poll(self) -> None:
        """One read; a database error keeps what was known (logged once per outage)."""
        try:
            version, any_key = await self.repo.version()
        except Exception as e:  # the database is down: keep the last answer, fail closed
            if not self._failing:
                log.warning("cannot read the keys version (%s); retrying", type(e).__name__)
            self._failing = True
            return
        self._failing = False
        if version != self.version:
            self.version = version
            self.ring.invalidate()
        self.ring.virtual_keys = any_key

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="dragoman-key-watch")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.poll()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
