"""The batched writer: nothing lost on close, bounded queue when the database falls behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from dragoman.accounting import Accountant, Usage
from dragoman.accounting.writer import BatchWriter
from dragoman.store import create_engine, schema, upgrade_async

from .conftest import make_config, outcome, request_info


async def count(url: str, table: object) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()  # type: ignore[arg-type]
            )
    finally:
        await engine.dispose()


async def until(cond: Callable[[], bool], what: str) -> None:
    """Poll ``cond`` with a generous deadline (CI machines are busy; the interval is 0.2 s)."""
    try:
        async with asyncio.timeout(10):
            while not cond():  # noqa: ASYNC110 (a counter, not an event, tells us)
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within 10 s: {what}") from None


async def test_close_flushes_everything(db_url: str) -> None:
    cfg = make_config(db_url, store={"flush_interval": 30.0, "batch_size": 10_000})
    a = await Accountant.create(cfg)
    for i in range(500):
        h = await a.hold(request_info(rid=f"r{i}", streamed=i % 2 == 0))
        await a.confirm(h, outcome(Usage(input_tokens=i, output_tokens=1)))
    await asyncio.sleep(0.05)
    assert a.writer.written == 0  # still queued (long interval, big batches)
    await a.close()
    assert await count(db_url, schema.usage) == 500
    assert await count(db_url, schema.ledger) == 500


@pytest.mark.any_dialect
async def test_batches_by_size_and_interval(db_url: str) -> None:
    cfg = make_config(db_url, store={"flush_interval": 0.2, "batch_size": 50})
    a = await Accountant.create(cfg)
    try:
        for _ in range(60):  # 60 usage + 60 ledger rows: more than one batch
            await a.confirm(await a.hold(request_info()), outcome(Usage(output_tokens=1)))
        # one full batch goes at once; the rest after the interval, with nobody calling flush()
        await until(lambda: a.writer.written == 120, "every row written by the writer itself")
        assert await count(db_url, schema.usage) == 60
    finally:
        await a.close()


@pytest.mark.any_dialect
async def test_queue_full_drops_after_a_short_wait(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await upgrade_async(db_url)
    engine = create_engine(db_url)
    w = BatchWriter(engine, queue_size=5, put_timeout=0.05, batch_size=100)
    row = {"key": "", "value": "v"}
    try:
        for i in range(5):
            assert await w.put(schema.settings, {**row, "key": f"k{i}"})
        with caplog.at_level(logging.ERROR, "dragoman.accounting"):
            t0 = asyncio.get_running_loop().time()
            assert not await w.put(schema.settings, {**row, "key": "k5"})
            assert asyncio.get_running_loop().time() - t0 < 1.0
            assert not await w.put(schema.settings, {**row, "key": "k6"})
        assert w.dropped == 2
        assert "write queue full" in caplog.text and caplog.text.count("write queue full") == 1
        w.start()
        await w.flush()
        assert w.written == 5
        assert await w.put(schema.settings, {**row, "key": "k7"})  # room again
        await w.close()
    finally:
        await engine.dispose()
    assert await count(db_url, schema.settings) == 6


async def test_failed_batch_is_counted(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from dragoman.accounting import writer as writer_mod

    monkeypatch.setattr(writer_mod, "_RETRY_DELAYS", (0.01,))
    await upgrade_async(db_url)
    engine = create_engine(db_url)
    w = BatchWriter(engine, flush_interval=0.01)
    w.start()
    try:
        await w.put(schema.settings, {"key": "a", "value": "1"})
        await w.put(schema.settings, {"key": "z", "value": None})  # NOT NULL: the batch fails
        await w.flush()
        assert w.failed == 1 and w.written == 1  # the good row survives the bad one
        await w.put(schema.settings, {"key": "b", "value": "1"})
        await w.flush()
        assert w.written == 2  # the writer lives on
        await w.close()
    finally:
        await engine.dispose()
