"""The writer through a database outage (docs/accounting.md, "A database outage"): rows taken
while the database is away are kept (on-disk spool, then memory) and written once it returns,
however long it was away, each exactly once (inserts are idempotent on the row's key).

The database really goes away: PostgreSQL behind a TCP gate the test closes (connections reset,
new ones refused) and reopens; SQLite by its tables being renamed away and back. The writer's
clock is injected, so "five minutes later" takes no time.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import socket
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dragoman.accounting import writer as writer_mod
from dragoman.accounting.spool import Spool
from dragoman.accounting.writer import BatchWriter
from dragoman.store import create_engine, schema


class Gate:
    """A TCP forwarder to PostgreSQL the test opens and closes: closed, it resets every
    connection and refuses (accepts and drops) new ones, as a database that went away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.open = False
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def reopen(self) -> None:
        self.open = True

    def stop(self) -> None:
        self.close()
        self.listener.close()


class Outage:
    """The database of ``db_url`` going away and coming back, and the URL to write through."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.gate: Gate | None = None
        self.url = db_url
        if db_url.startswith("postgresql"):
            self.gate = Gate(("127.0.0.1", 5432))
            self.url = db_url.replace("127.0.0.1:5432", f"127.0.0.1:{self.gate.port}")

    def _sqlite(self, script: str) -> None:
        conn = sqlite3.connect(self.db_url.removeprefix("sqlite:///"), timeout=30)
        try:
            conn.executescript(script)
        finally:
            conn.close()

    def down(self) -> None:
        if self.gate is not None:
            self.gate.close()
        else:
            self._sqlite("ALTER TABLE usage RENAME TO usage_away;")

    def up(self) -> None:
        if self.gate is not None:
            self.gate.reopen()
        else:
            self._sqlite("ALTER TABLE usage_away RENAME TO usage;")

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.stop()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def usage_row(rid: str) -> dict[str, Any]:
    return {
        "ts": _dt.datetime(2026, 12, 1, 3, 0, 0, 123456),
        "request_id": rid,
        "key_id": None,
        "key_alias": None,
        "team": None,
        "requested_model": "flat",
        "model": "flat",
        "deployment": None,
        "provider": "oai",
        "dialect": "openai",
        "streamed": True,
        "status": 200,
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "usage_estimated": False,
        "cost": 0.25,
        "latency_ms": 12.0,
        "ttft_ms": None,
        "attempts": 1,
        "error": None,
    }


async def rows(url: str) -> tuple[int, int]:
    """(usage rows, distinct request ids)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            u = schema.usage
            n = (await conn.execute(select(func.count()).select_from(u))).scalar_one()
            d = (await conn.execute(select(func.count(func.distinct(u.c.request_id))))).scalar_one()
            return int(n), int(d)
    finally:
        await engine.dispose()


@pytest.fixture
def outage(db_url: str) -> Any:
    o = Outage(db_url)
    yield o
    o.stop()


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_mod, "_RETRY_DELAYS", (0.01, 0.01))


def _writer(url: str, spool: Spool | None, clock: Clock, **kw: Any) -> BatchWriter:
    return BatchWriter(
        create_engine(url, **({"pool_pre_ping": True} if "postgresql" in url else {})),
        flush_interval=0.01,
        spool=spool,
        clock=clock,
        **kw,
    )


def _spooled(d: Path) -> int:
    """Bytes waiting in the spool's files (the spool and what a replay set aside)."""
    return sum(p.stat().st_size for p in d.glob("usage.spool*"))


def _spool(tmp_path: Path, cap: int = 10_000_000) -> Spool:
    return Spool(tmp_path / "usage.spool", cap, [schema.usage, schema.ledger])


async def test_rows_survive_a_five_minute_outage(
    outage: Outage, db_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    w = _writer(outage.url, _spool(tmp_path), clock)
    w.start()
    try:
        for i in range(5):
            await w.put(schema.usage, usage_row(f"before-{i}"))
        await w.flush()
        assert w.written == 5
        outage.down()
        for i in range(20):
            await w.put(schema.usage, usage_row(f"during-{i}"))
        await w.flush()
        assert w.outage and w.backlog and (w.dropped, w.failed) == (0, 0)
        for _ in range(10):  # five minutes of retries, the database still away
            clock.t += 30
            await asyncio.sleep(0.02)
            await w.flush()
        assert w.outage and (w.dropped, w.failed) == (0, 0)
        if outage.gate is not None:  # (SQLite's usage table is renamed away meanwhile)
            assert await rows(outage.db_url) == (5, 5)
        outage.up()
        clock.t += 30
        await w.flush()
        assert not w.outage and not w.backlog
        assert await rows(outage.db_url) == (25, 25)
        await w.put(schema.usage, usage_row("after"))
        await w.flush()
        assert await rows(outage.db_url) == (26, 26)
    finally:
        await w.close()
        await w.engine.dispose()


async def test_rows_kept_in_memory_without_a_spool(outage: Outage, tmp_path: Path) -> None:
    """A spool that is off (or full) still loses nothing the memory can hold."""
    clock = Clock()
    w = _writer(outage.url, _spool(tmp_path, cap=0), clock)
    w.start()
    try:
        outage.down()
        for i in range(12):
            await w.put(schema.usage, usage_row(f"mem-{i}"))
        await w.flush()
        assert len(w.held) == 12 and w.dropped == 0
        clock.t += 400
        await w.flush()
        outage.up()
        await w.flush()
        assert not w.held and await rows(outage.db_url) == (12, 12)
    finally:
        await w.close()
        await w.engine.dispose()


async def test_spool_replayed_by_the_next_process(outage: Outage, tmp_path: Path) -> None:
    """Stopped while the database is away: the rows wait on disk and the next start writes
    them."""
    clock = Clock()
    w = _writer(outage.url, _spool(tmp_path, cap=0), clock)
    w.start()
    outage.down()
    for i in range(7):
        await w.put(schema.usage, usage_row(f"crossing-{i}"))
    await w.flush()
    assert len(w.held) == 7
    w.spool = _spool(tmp_path)  # the spool is on at close: what memory held goes there
    await w.close()
    await w.engine.dispose()
    assert w.failed == 0 and not w.held
    assert _spooled(tmp_path) > 0
    outage.up()
    w2 = _writer(outage.url, _spool(tmp_path), clock)
    w2.start()
    try:
        await w2.flush()
        assert await rows(outage.db_url) == (7, 7)
        assert _spooled(tmp_path) == 0
    finally:
        await w2.close()
        await w2.engine.dispose()


async def test_a_batch_written_twice_counts_once(db_url: str, tmp_path: Path) -> None:
    """A retry after a commit whose acknowledgement was lost, or a spool replayed again,
    inserts nothing twice."""
    w = _writer(db_url, _spool(tmp_path), Clock())
    try:
        batch = [(schema.usage, usage_row(f"twice-{i}")) for i in range(3)]
        await w._insert(batch)
        await w._insert(batch)
        await w._insert([*batch[:1], (schema.usage, usage_row("twice-new"))])
        assert await rows(db_url) == (4, 4)
        # the ledger too (its id)
        led = {
            "id": uuid.uuid4().hex,
            "request_id": "twice-0",
            "key_id": None,
            "team": None,
            "model": "flat",
            "provider": "oai",
            "deployment": None,
            "amount_held": 1.0,
            "amount_final": 0.5,
            "status": "confirmed",
            "created_at": _dt.datetime(2026, 12, 1),
            "resolved_at": _dt.datetime(2026, 12, 1),
            "reason": None,
            "transaction_token": None,
            "owner": None,
            "budget_refs": None,
        }
        await w._insert([(schema.ledger, led)])
        await w._insert([(schema.ledger, led)])
        engine = create_engine(db_url)
        async with engine.connect() as conn:
            n = (await conn.execute(select(func.count()).select_from(schema.ledger))).scalar()
        await engine.dispose()
        assert n == 1
    finally:
        await w.engine.dispose()
