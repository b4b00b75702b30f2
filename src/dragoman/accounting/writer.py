"""Batched writes of usage and ledger rows from a bounded queue.

Rows are inserted in batches of up to ``batch_size``, at the latest ``flush_interval`` seconds after
the first row of a batch was queued; ``flush()`` writes everything queued now and ``close()``
everything queued at all (nothing is lost on a graceful stop).

Queue-full policy: ``put`` waits up to ``put_timeout`` seconds (0.5 by default) for room, then drops
the row, counts it in ``dropped`` and logs an error (at most once every 10 s). The request path is
never blocked longer than that, and a database outage cannot grow memory without bound.
A batch that fails to insert is retried (3 times with backoff). If the rows themselves are at fault
(an integrity or data error) it is written row by row, and rows that still fail are logged and
counted in ``failed``. Otherwise the database is taken to be away: the batch is kept, in the
on-disk spool (``spool.py``) or, when there is none or it is full, in memory (up to ``queue_size``
rows), and written when the database answers again; nothing is retried faster than a backoff that
grows to ``MAX_BACKOFF`` s, and new rows join the backlog meanwhile without touching the database.
Every insert is ``ON CONFLICT DO NOTHING`` on the row's key (ledger id, usage ``request_id``), so
a batch retried after an ambiguous commit never counts twice (docs/accounting.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, DateTime, Table, bindparam
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dragoman.accounting.spool import Row, Spool
from dragoman.store.brief import brief
from dragoman.store.db import insert_ignore

log = logging.getLogger("dragoman.accounting")

_RETRY_DELAYS = (0.1, 0.5, 2.0)
#: seconds between attempts to write the backlog while the database is away (at most)
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 15.0


class _RowsAtFault(Exception):
    """The batch was refused for its content, not because the database is away."""


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
        spool: Spool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.put_timeout = put_timeout
        self.queue: asyncio.Queue[Row] = asyncio.Queue(maxsize=max(1, queue_size))
        self.lock = lock
        self.spool = spool
        self.clock = clock
        self.written = 0
        self.dropped = 0
        self.failed = 0
        #: rows kept in memory while the database is away (the spool full or off)
        self.held: list[Row] = []
        self.held_max = max(1, queue_size)
        #: the database is away: rows go to the backlog until a retry succeeds
        self.outage = False
        self._backoff = FIRST_BACKOFF
        self._next_retry = 0.0
        self._retrying = asyncio.Lock()
        self._urgent = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = 0.0
        self._sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self._fix: dict[tuple[str, tuple[str, ...]], tuple[int, ...]] = {}

    def start(self) -> None:
        if self._task is None:
            if self.spool is not None and self.spool.pending():
                self.outage = True  # rows of an earlier outage (or process): replay them first
            self._task = asyncio.create_task(self._run(), name="dragoman-usage-writer")

    @property
    def backlog(self) -> bool:
        """Whether rows wait for the database to come back (in memory or in the spool)."""
        return bool(self.held) or (self.spool is not None and self.spool.pending())

    async def put(self, table: Table, row: dict[str, Any]) -> bool:
        """Queue a row; False if it was dropped because the queue stayed full."""
        try:
            self.queue.put_nowait((table, row))
        except asyncio.QueueFull:
            self._wake.set()
            try:
                await asyncio.wait_for(self.queue.put((table, row)), self.put_timeout)
            except TimeoutError:
                self._drop(1, table.name)
                return False
        if self.queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    def _drop(self, n: int, what: str) -> None:
        self.dropped += n
        now = time.monotonic()
        if now - self._last_drop_log > 10:
            self._last_drop_log = now
            log.error(
                "accounting write queue full (%d rows): dropped %d %s row(s) "
                "(%d dropped so far); is the database reachable?",
                self.queue.maxsize,
                n,
                what,
                self.dropped,
            )

    async def flush(self) -> None:
        """Return once every row queued so far is written, or kept for when the database
        returns (a backlog is retried now, whatever the backoff says)."""
        if self._task is None or self._task.done():
            await self._drain_inline()
            return
        self._urgent += 1
        self._wake.set()
        try:
            await self.queue.join()
            if self.outage:
                await self._retry_backlog()
        finally:
            self._urgent -= 1

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.held:
            # the database is still away: what fits goes to the spool (replayed at next start)
            held, self.held = self.held, []
            kept = await self._to_spool(held)
            if kept < len(held):
                self.failed += len(held) - kept
                log.error(
                    "accounting: %d row(s) lost at shutdown (the database is away and the "
                    "spool is full or off)",
                    len(held) - kept,
                )

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
        if self.outage:
            await self._retry_backlog()

    def _take(self, n: int, batch: list[Row] | None = None) -> list[Row]:
        batch = [] if batch is None else batch
        while len(batch) < n:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _run(self) -> None:
        while True:
            if self.outage and self.clock() >= self._next_retry:
                await self._retry_backlog()
            if self.outage:
                wait = max(0.05, min(self._next_retry - self.clock(), MAX_BACKOFF))
                try:
                    first = await asyncio.wait_for(self.queue.get(), wait)
                except TimeoutError:
                    continue
            else:
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

    async def _write(self, batch: list[Row]) -> None:
        """Write a batch, or keep it for later if the database is away."""
        if self.outage:
            await self._stash(batch)  # no point knocking before the backoff is up
            return
        for attempt in range(len(_RETRY_DELAYS) + 1):
            try:
                await self._insert(batch)
                return
            except asyncio.CancelledError:
                raise
            except _RowsAtFault as e:
                log.error(
                    "accounting batch of %d rows refused (%s); writing one by one",
                    len(batch),
                    brief(e),
                )
                try:
                    await self._write_each(batch)
                except Exception as away:  # the database went away meanwhile
                    log.error("accounting database unavailable (%s): keeping rows", brief(away))
                    self._enter_outage()
                    await self._stash(batch)  # the rows already written count once
                return
            except Exception as e:
                if attempt < len(_RETRY_DELAYS):
                    log.warning("accounting batch write failed (%s); retrying", brief(e))
                    await asyncio.sleep(_RETRY_DELAYS[attempt])
                else:
                    log.error(
                        "accounting database unavailable (%s): keeping %d row(s) until it returns",
                        brief(e),
                        len(batch),
                    )
                    self._enter_outage()
                    await self._stash(batch)

    async def _insert(self, batch: list[Row]) -> None:
        groups: dict[Table, list[dict[str, Any]]] = defaultdict(list)
        for table, row in batch:
            groups[table].append(row)
        async with contextlib.AsyncExitStack() as stack:
            if self.lock is not None:
                await stack.enter_async_context(self.lock)
            try:
                async with self.engine.begin() as conn:
                    for table, rows in groups.items():
                        sql, params = self._driver_rows(table, rows)
                        await conn.exec_driver_sql(sql, params)
            except (IntegrityError, DataError) as e:
                raise _RowsAtFault(str(e)) from e
        self.written += len(batch)

    def _enter_outage(self) -> None:
        if not self.outage:
            self.outage = True
            self._backoff = FIRST_BACKOFF
        self._next_retry = self.clock() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    async def _stash(self, batch: list[Row]) -> None:
        """Keep rows for later: the spool first, then memory (bounded), else drop them."""
        kept = await self._to_spool(batch)
        rest = batch[kept:]
        room = self.held_max - len(self.held)
        self.held.extend(rest[:room])
        if len(rest) > room:
            self._drop(len(rest) - room, "usage/ledger")

    async def _to_spool(self, rows: list[Row]) -> int:
        if self.spool is None:
            return 0
        try:
            return await self.spool.append(rows)
        except OSError as e:
            log.error("cannot write the usage spool %s: %s", self.spool.path, e)
            return 0

    async def _retry_backlog(self) -> None:
        """Write what waited for the database: the spool's files, then the rows in memory.
        Any failure keeps the rest (a file replayed twice counts once) and backs off."""
        async with self._retrying:
            if self.outage:
                await self._retry_locked()

    async def _retry_locked(self) -> None:
        try:
            if self.spool is not None and self.spool.pending():
                for path, rows in await self.spool.take():
                    for i in range(0, len(rows), self.batch_size):
                        await self._insert_or_each(rows[i : i + self.batch_size])
                    await self.spool.done(path)
            while self.held:
                chunk = self.held[: self.batch_size]
                await self._insert_or_each(chunk)
                del self.held[: len(chunk)]
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("accounting database still unavailable (%s); retrying later", brief(e))
            self._enter_outage()
            return
        if self.outage:
            log.warning("accounting database is back: the rows kept meanwhile are written")
        self.outage = False
        self._backoff = FIRST_BACKOFF

    async def _insert_or_each(self, rows: list[Row]) -> None:
        try:
            await self._insert(rows)
        except _RowsAtFault:
            await self._write_each(rows)

    def _driver_rows(self, table: Table, rows: list[dict[str, Any]]) -> tuple[str, list[tuple]]:
        """Compiled INSERT and positional rows for ``exec_driver_sql`` (executemany without
        SQLAlchemy's per-row parameter processing: the writer's main CPU cost)."""
        cols = tuple(rows[0])
        key = (table.name, cols)
        sql = self._sql.get(key)
        if sql is None:
            stmt = insert_ignore(self.engine, table).values({c: bindparam(c) for c in cols})
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

    async def _write_each(self, batch: list[Row]) -> None:
        """Rows refused as a batch: one transaction per row, so one bad row does not lose the
        others. A database that goes away meanwhile raises (the caller keeps the rows)."""
        for table, row in batch:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if self.lock is not None:
                        await stack.enter_async_context(self.lock)
                    async with self.engine.begin() as conn:
                        await conn.execute(insert_ignore(conn, table), [row])
                self.written += 1
            except (IntegrityError, DataError) as e:
                self.failed += 1
                log.error("accounting %s row lost: %s", table.name, brief(e))


def _sqlite_value(v: Any) -> Any:
    """What SQLAlchemy would store in SQLite for a DateTime / Boolean value."""
    if isinstance(v, _dt.datetime):
        return v.isoformat(" ", "microseconds")
    if isinstance(v, bool):
        return int(v)
    return v
