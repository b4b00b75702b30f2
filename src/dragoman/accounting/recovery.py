"""Crash recovery: a process that dies with holds pending must not keep their reservations.

Each Accountant registers in ``instances`` under an id naming its host, pid namespace, pid and
the process's start time, and heartbeats. Pending ledger rows whose owner is dead (same host and
pid namespace: the pid is gone, a zombie, or reused by a process started at another time;
elsewhere: no heartbeat for ``STALE_AFTER`` s) are settled and their reservations released, at
start and every ``SWEEP_EVERY`` s: confirmed at the request's input estimate (reason
``recovered``, see ``recovered.py``), or cancelled (``crash_recovery``) when the row kept no
estimate. A late confirm of such a hold still charges the work done (``late_confirm``, see
``ledger.py``);
docs/accounting.md, "Exactly once, and after a crash".

The maintenance loop here also runs the other periodic chores (reload budgets, retry unsettled
holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update

from dragoman.accounting import recovered
from dragoman.accounting.ledger import parse_refs, release
from dragoman.store import schema
from dragoman.store.brief import brief
from dragoman.store.db import Database

log = logging.getLogger("dragoman.accounting")

#: seconds without a heartbeat after which another host's process counts as dead
STALE_AFTER = 60.0
HEARTBEAT_EVERY = 10.0
#: the maintenance loop's tick: budgets reloaded, unsettled holds retried
CHORES_EVERY = 5.0
SWEEP_EVERY = 30.0

HOST = socket.gethostname()


def _pidns() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


PIDNS = _pidns()
#: instance ids of the Accountants alive in this process (their pid is ours: alive either way)
LIVE: set[str] = set()


def proc_start(pid: int) -> str | None:
    """When a process of this pid namespace started (clock ticks since boot), None if unknown:
    with the pid, it names one process (a pid alone may be reused by another)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def new_instance_id() -> str:
    """``host|pid namespace|pid|process start|random``."""
    pid = os.getpid()
    return f"{HOST}|{PIDNS}|{pid}|{proc_start(pid) or '-'}|{uuid.uuid4().hex[:12]}"


def pid_alive(pid: int) -> bool:
    """Whether a process of this pid namespace runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


class Recovery:
    def __init__(self, db: Database, instance_id: str, *, now: Callable[[], _dt.datetime]) -> None:
        self.db = db
        self.instance_id = instance_id
        self.now = now
        #: pending holds of dead processes cancelled by this instance so far
        self.recovered = 0
        #: own pending holds found untracked and cancelled (see sweep_orphans)
        self.orphans = 0
        #: the maintenance loop, once started
        self.task: asyncio.Task[None] | None = None

    # ---- the instance registry -----------------------------------------------------------
    async def register(self) -> None:
        now = self.now()
        async with self.db.tx() as conn:
            await conn.execute(
                schema.instances.insert().values(
                    id=self.instance_id, started_at=now, heartbeat_at=now
                )
            )

    async def heartbeat(self) -> None:
        inst = schema.instances
        async with self.db.tx() as conn:
            res = await conn.execute(
                update(inst).where(inst.c.id == self.instance_id).values(heartbeat_at=self.now())
            )
            if res.rowcount == 0:  # swept as dead while we were stalled: register again
                await conn.execute(
                    inst.insert().values(
                        id=self.instance_id, started_at=self.now(), heartbeat_at=self.now()
                    )
                )

    async def unregister(self) -> None:
        LIVE.discard(self.instance_id)
        with contextlib.suppress(Exception):
            async with self.db.tx() as conn:
                await conn.execute(
                    delete(schema.instances).where(schema.instances.c.id == self.instance_id)
                )

    def is_dead(self, owner: str | None, heartbeats: dict[str, _dt.datetime]) -> bool:
        if owner is None:
            return True
        if owner == self.instance_id:
            return False
        parts = owner.split("|")
        if len(parts) in (4, 5) and parts[0] == HOST and parts[1] == PIDNS:
            try:
                pid = int(parts[2])
            except ValueError:
                return True
            if pid == os.getpid():
                return owner not in LIVE
            if not pid_alive(pid):
                return True
            # the pid runs, but is it the same process? a reused pid started later (audit #34)
            started = parts[3] if len(parts) == 5 else "-"
            return started != "-" and proc_start(pid) not in (None, started)
        hb = heartbeats.get(owner)
        return hb is None or (self.now() - hb).total_seconds() > STALE_AFTER

    # ---- recovery ------------------------------------------------------------------------
    async def recover(self, at_start: bool) -> int:
        """Settle pending holds of dead processes: confirmed at their input estimate (reason
        "recovered", ``recovered.py``), or cancelled ("crash_recovery") when their row kept
        none; returns how many."""
        L, C = schema.ledger, schema.budget_counters
        async with self.db.connect() as conn:
            heartbeats = {
                r.id: r.heartbeat_at
                for r in await conn.execute(
                    select(schema.instances.c.id, schema.instances.c.heartbeat_at)
                )
            }
            owners = [
                r[0]
                for r in await conn.execute(
                    select(L.c.owner).where(L.c.status == "pending").distinct()
                )
            ]
        dead = [o for o in owners if self.is_dead(o, heartbeats)]
        n = charged = 0
        for owner in dead:
            async with self.db.connect() as conn:
                rows = (
                    await conn.execute(
                        select(*(L.c[c] for c in recovered.COLUMNS)).where(
                            L.c.status == "pending",
                            L.c.owner.is_(None) if owner is None else L.c.owner == owner,
                        )
                    )
                ).all()
            # in flight when its process died: charged its input estimate (rows written
            # before migration 0004 have none: cancelled)
            charged += await recovered.charge_rows(
                self.db, [r for r in rows if recovered.chargeable(r)], self.now()
            )
            n += await self._cancel_rows(
                [r for r in rows if not recovered.chargeable(r)], "crash_recovery"
            )
        n += charged
        dead_instances = [
            i for i in heartbeats if i != self.instance_id and self.is_dead(i, heartbeats)
        ]
        async with self.db.tx() as conn:
            if dead_instances:
                await conn.execute(
                    delete(schema.instances).where(schema.instances.c.id.in_(dead_instances))
                )
            if at_start and len(heartbeats) - len(dead_instances) <= 1:
                # no other live process: nothing may be reserved but our (zero) holds; repair drift
                pending = (
                    await conn.execute(
                        select(func.count()).select_from(L).where(L.c.status == "pending")
                    )
                ).scalar_one()
                if pending == 0:
                    await conn.execute(update(C).where(C.c.reserved != 0).values(reserved=0.0))
        if n:
            log.warning(
                "crash recovery: settled %d pending hold(s) of %d dead process(es) (%d charged "
                "their input estimate, %d cancelled)",
                n,
                len(dead),
                charged,
                n - charged,
            )
        self.recovered += n
        return n

    async def _cancel_rows(self, rows: Sequence[Any], reason: str) -> int:
        """Cancel pending ledger rows and release what they reserved; returns how many."""
        L, C = schema.ledger, schema.budget_counters
        n = 0
        for r in rows:
            async with self.db.tx() as conn:
                res = await conn.execute(
                    update(L)
                    .where(L.c.id == r.id, L.c.status == "pending")
                    .values(
                        status="cancelled",
                        resolved_at=self.now(),
                        reason=reason,
                        amount_final=0.0,
                    )
                )
                if res.rowcount != 1:
                    continue
                for bid, ps in parse_refs(r.budget_refs):
                    await conn.execute(
                        update(C)
                        .where(C.c.budget_id == bid, C.c.period_start == ps)
                        .values(reserved=release(C.c.reserved, float(r.amount_held)))
                    )
            n += 1
        return n

    async def sweep_orphans(self, tracked: Callable[[], set[str]]) -> int:
        """Cancel this process's own pending holds its ledger no longer tracks (reason
        "orphaned"): whatever lost one (a settlement interrupted in a way nothing caught), it
        must not keep its reservation until the next start. A late confirm still charges
        (``ledger.py``). Returns how many."""
        L = schema.ledger
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    select(L.c.id, L.c.amount_held, L.c.budget_refs).where(
                        L.c.status == "pending", L.c.owner == self.instance_id
                    )
                )
            ).all()
        if not rows:
            return 0
        known = tracked()  # read after the rows: a hold made meanwhile is in it already
        lost = [r for r in rows if r.id not in known]
        n = await self._cancel_rows(lost, "orphaned") if lost else 0
        if n:
            log.warning("cancelled %d orphaned pending hold(s) of this process", n)
        self.orphans += n
        return n

    # ---- the maintenance loop ------------------------------------------------------------
    def start(self, chores: Sequence[Callable[[], Awaitable[object]]]) -> None:
        """Run ``chores`` every ``CHORES_EVERY`` s, heartbeat and sweep for dead processes."""
        LIVE.add(self.instance_id)
        self.task = asyncio.create_task(self._maintain(chores), name="dragoman-accounting")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _maintain(self, chores: Sequence[Callable[[], Awaitable[object]]]) -> None:
        last_hb = last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(CHORES_EVERY)
            try:
                now = time.monotonic()
                if now - last_hb >= HEARTBEAT_EVERY:
                    last_hb = now
                    await self.heartbeat()
                for chore in chores:
                    await chore()
                if now - last_sweep >= SWEEP_EVERY:
                    last_sweep = now
                    await self.recover(at_start=False)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("accounting maintenance failed: %s", brief(e))
