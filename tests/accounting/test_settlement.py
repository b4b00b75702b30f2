"""Settlement survives its caller's cancellation (audit finding #5, docs/accounting.md): a client
that leaves while its request's confirm waits on the database (the SQLite write lock, a locked
PostgreSQL row) leaves no hold pending, and a sweep cancels any pending hold of this process that
the ledger no longer tracks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dragoman.accounting import Accountant, Usage
from dragoman.accounting.budgets import EPOCH
from dragoman.store import schema

from .conftest import PG, make_config, outcome, request_info
from .test_ledger import FULL_TENTH, TENTH, budget_cfg, ledger_consistent, rows


@contextlib.asynccontextmanager
async def blocked(a: Accountant, db_url: str, hold_id: str) -> AsyncIterator[None]:
    """The ledger row of ``hold_id`` cannot be written until the block ends: the SQLite write
    lock is held (what a busy gateway's writes do), or a PostgreSQL transaction holds the row
    (``SELECT ... FOR UPDATE`` in another session)."""
    assert a.db is not None
    if a.db.lock is not None:
        async with a.db.lock:
            yield
        return
    import asyncpg

    schema_name = db_url.split("schema=", 1)[1]
    conn = await asyncpg.connect(PG, server_settings={"search_path": schema_name})
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT id FROM ledger WHERE id = $1 FOR UPDATE", hold_id)
        yield
        await tx.rollback()
    finally:
        await conn.close()


async def settled(a: Accountant, hold_id: str) -> Any:
    async with asyncio.timeout(10):
        while True:
            got = await rows(a, schema.ledger, schema.ledger.c.id == hold_id)
            if got and got[0].status != "pending":
                return got[0]
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("how", ["confirm", "cancel"])
async def test_cancelled_while_settling_still_settles(db_url: str, how: str) -> None:
    a = await Accountant.create(make_config(db_url, accounting=budget_cfg(1.0)))
    try:
        h = await a.hold(request_info(**TENTH))
        assert h.persisted
        async with blocked(a, db_url, h.id):
            if how == "confirm":
                task = asyncio.create_task(a.confirm(h, outcome(FULL_TENTH)))
            else:
                task = asyncio.create_task(a.cancel(h, outcome(None, status=502)))
            await asyncio.sleep(0.3)  # waiting on the database
            assert not task.done()
            task.cancel()  # the client left: its handler is cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await task
        row = await settled(a, h.id)
        assert row.status == ("confirmed" if how == "confirm" else "cancelled")
        spent, reserved = await a.counters(a.budgets()[0].id, EPOCH)
        assert reserved == 0.0
        assert spent == pytest.approx(0.1 if how == "confirm" else 0.0)
        await a.flush()
        assert len(await rows(a, schema.usage)) == 1  # the usage row too
        await ledger_consistent(a)
    finally:
        await a.close()


async def test_own_orphaned_hold_is_swept(db_url: str) -> None:
    """A pending row of this process that nothing tracks any more is cancelled by the sweep
    (not left until the next start), and one still in flight is left alone."""
    a = await Accountant.create(make_config(db_url, accounting=budget_cfg(1.0)))
    try:
        assert a.recovery is not None
        lost = await a.hold(request_info(**TENTH))
        live = await a.hold(request_info(**TENTH))
        del a.ledger.inflight[lost.id]  # lost track of it (how is what #5 was about)
        assert await a.recovery.sweep_orphans(a.ledger.tracked) == 1
        led = {r.id: r for r in await rows(a, schema.ledger)}
        assert (led[lost.id].status, led[lost.id].reason) == ("cancelled", "orphaned")
        assert led[live.id].status == "pending"
        _, reserved = await a.counters(a.budgets()[0].id, EPOCH)
        assert reserved == pytest.approx(live.amount)
        await a.confirm(live, outcome(Usage(input_tokens=1000)))
        # a late confirm of the orphan still charges the work done
        await a.confirm(lost, outcome(Usage(input_tokens=10_000)))
        assert (await settled(a, lost.id)).reason == "late_confirm"
        await ledger_consistent(a)
        assert await a.recovery.sweep_orphans(a.ledger.tracked) == 0
    finally:
        await a.close()


async def test_cancelled_while_rerouting_leaves_nothing_pending(db_url: str) -> None:
    """A reroute (retry or fallback elsewhere) takes the new hold first, then releases the old
    one: a client leaving while the release waits on the database leaves neither pending."""
    cfg = make_config(
        db_url,
        accounting={
            "budgets": [
                {"scope": "model", "target": "flat", "period": "total", "limit_usd": 1.0},
                {"scope": "model", "target": "gpt-4o", "period": "total", "limit_usd": 1.0},
            ]
        },
    )
    a = await Accountant.create(cfg)
    try:
        h = await a.hold(request_info(**TENTH))
        other = request_info("gpt-4o", input_tokens=10, max_tokens=10)
        other.request_id = h.info.request_id
        async with blocked(a, db_url, h.id):
            task = asyncio.create_task(a.retarget(h, other))
            await asyncio.sleep(0.3)
            assert not task.done()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if h.state == "pending":  # what the engine does with the hold it still has
            await a.cancel(h, outcome(None, status=499))
        await a.ledger.retry_unsettled()
        led = await rows(a, schema.ledger)
        # (on SQLite the new hold waited for the write lock: cancelled before it was written)
        assert led and {r.status for r in led} == {"cancelled"}
        for b in a.budgets():
            assert (await a.counters(b.id, EPOCH))[1] == 0.0
        await ledger_consistent(a)
    finally:
        await a.close()
