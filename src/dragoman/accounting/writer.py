"""Batched writes of usage and ledger rows from a bounded queue.

Rows are inserted in batches of up to ``batch_size``, at the latest ``flush_interval`` seconds after
the first row of a batch was queued; ``flush()`` writes everything queued now and ``close()``
everything queued at all (nothing is lost on a graceful stop).

Queue-full policy: ``put`` waits up to ``put_timeout`` seconds (0.5 by default) for room, then drops
the row, counts it in ``dropped`` and logs an error (at most once every 10 s). The request path is
never blocked longer than that, and a database outage cannot grow memory without bound.
A batch that fails to insert is retried (3 times with backoff), then written row by row; rows that
still fail are logged and counted in ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import time
from collections import defaultdict
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, DateTime, Table, bindparam
from sqlalchemy.ext.asyncio import AsyncEngine

from dragoman.store.brief import brief

log = logging.getLogger("dragoman.accounting")

_RETRY_DELAYS = (0.1, 0.5, 2.0)


class BatchWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        queue_size: int = 10000,
        put_timeout: float = 0.5,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self.engine = engine
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.put_timeout = put_timeout
        self.queue: asyncio.Queue[tuple[Table, dict[str, Any]]] = asyncio.Queue(
            maxsize=max(1, queue_size)
        )
        self.lock = lock
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._urgent = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = 0.0
        self._sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self._fix: dict[tuple[str, tuple[str, ...]], tuple[int, ...]] = {}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dragoman-usage-writer")

    async def put(self, table: Table, row: dict[str, Any]) -> bool:
        """Queue a row; False if it was dropped because the queue stayed full."""
        try:
            self.queue.put_nowait((table, row))
        except asyncio.QueueFull:
            self._wake.set()
            try:
                await asyncio.wait_for(self.queue.put((table, row)), self.put_timeout)
            except TimeoutError:
                self.dropped += 1
                now = time.monotonic()
                if now - self._last_drop_log > 10:
                    self._last_drop_log = now
                    log.error(
                        "accounting write queue full (%d rows): dropped a %s row "
                        "(%d dropped so far); is the database reachable?",
                        self.queue.maxsize,
                        table.name,
                        self.dropped,
                    )
                return False
        if self.queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    async def flush(self) -> None:
        """Return once every row queued so far is written (or given up on)."""
        if self._task is None or self._task.done():
            await self._drain_inline()
            return
        self._urgent += 1
        self._wake.set()
        try:
            await self.queue.join()
        finally:
            self._urgent -= 1

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def abandon(self) -> None:
        """Stop without writing what is queued (what a crash does; for tests)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _drain_inline(self) -> None:
        while not self.queue.empty():
            batch = self._take(self.batch_size)
            await self._write(batch)
            for _ in batch:
                self.queue.task_done()

    def _take(self, n: int, batch: list[tuple[Table, dict[str, Any]]] | None = None) -> list:
        batch = [] if batch is None else batch
        while len(batch) < n:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            if self.queue.qsize() < self.batch_size - 1 and not self._urgent:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            batch = self._take(self.batch_size, [first])
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _write(self, batch: list[tuple[Table, dict[str, Any]]]) -> None:
        groups: dict[Table, list[dict[str, Any]]] = defaultdict(list)
        for table, row in batch:
            groups[table].append(row)
        for attempt in range(len(_RETRY_DELAYS) + 1):
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if self.lock is not None:
                        await stack.enter_async_context(self.lock)
                    async with self.engine.begin() as conn:
                        for table, rows in groups.items():
                            sql, params = self._driver_rows(table, rows)
                            await conn.exec_driver_sql(sql, params)
                self.written += len(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if attempt < len(_RETRY_DELAYS):
                    log.warning("accounting batch write failed (%s); retrying", brief(e))
                    await asyncio.sleep(_RETRY_DELAYS[attempt])
                else:
                    log.error(
                        "accounting batch of %d rows failed (%s); writing one by one",
                        len(batch),
                        brief(e),
                    )
                    await self._write_each(batch)

    def _driver_rows(self, table: Table, rows: list[dict[str, Any]]) -> tuple[str, list[tuple]]:
        """Compiled INSERT and positional rows for ``exec_driver_sql`` (executemany without
        SQLAlchemy's per-row parameter processing: the writer's main CPU cost)."""
        cols = tuple(rows[0])
        key = (table.name, cols)
        sql = self._sql.get(key)
        if sql is None:
            stmt = table.insert().values({c: bindparam(c) for c in cols})
            sql = self._sql[key] = str(stmt.compile(dialect=self.engine.dialect))
        getter = itemgetter(*cols)
        if len(cols) == 1:
            return sql, [(getter(r),) for r in rows]
        if self.engine.dialect.name != "sqlite":
            return sql, [getter(r) for r in rows]
        # only DateTime / Boolean columns need converting for SQLite: find them once
        fix = self._fix.get(key)
        if fix is None:
            fix = self._fix[key] = tuple(
                i for i, c in enumerate(cols) if isinstance(table.c[c].type, DateTime | Boolean)
            )
        out: list[tuple[Any, ...]] = []
        for r in rows:
            vals = getter(r)
            if fix:
                lst = list(vals)
                for i in fix:
                    lst[i] = _sqlite_value(lst[i])
                vals = tuple(lst)
            out.append(vals)
        return sql, out

    async def _write_each(self, batch: list[tuple[Table, dict[str, Any]]]) -> None:
        """Last resort: one transaction per row, so one bad row does not lose the others."""
        for table, row in batch:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if self.lock is not None:
                        await stack.enter_async_context(self.lock)
                    async with self.engine.begin() as conn:
                        await conn.execute(table.insert(), [row])
                self.written += 1
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.failed += 1
                log.error("accounting %s row lost: %s", table.name, brief(e))


def _sqlite_value(v: Any) -> Any:
    """What SQLAlchemy would store in SQLite for a DateTime / Boolean value."""
    if isinstance(v, _dt.datetime):
        return v.isoformat(" ", "microseconds")
    if isinstance(v, bool):
        return int(v)
    return v
