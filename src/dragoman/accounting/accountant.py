"""The Accountant: keys, prices, holds, budgets and the usage log, behind one object.

Hot path (no budget applies): ``authenticate`` is an HMAC plus a dict lookup (cached), ``hold``
creates an in-memory ``Hold`` and ``confirm``/``cancel`` queue one ledger row (already settled)
and one usage row for the batched writer; nothing waits on the database.

Budgeted path: ``hold`` runs one short transaction that inserts a pending ledger row and, for every
applicable budget, ``UPDATE budget_counters SET reserved = reserved + :x WHERE ... AND
spent + reserved + :x <= :limit``; if any budget refuses, the transaction rolls back and
``BudgetLimitError`` (402) names the budget. ``confirm`` moves the actual cost from reserved to
spent and marks the row confirmed; ``cancel`` releases the reservation. Both are conditional on the
row still being pending, so each hold is settled exactly once even across processes. A hold is
taken on the deployment about to be called and moved (``retarget``) when a retry or fallback goes
elsewhere, so budgets are charged to the target that served; a model without a price under a
USD budget is refused (``UnpricedModelError``, 402): docs/accounting.md.

Crash recovery: each process registers in ``instances`` and heartbeats; pending rows whose owner
is dead (same host: the pid is gone; elsewhere: no heartbeat for ``STALE_AFTER`` s) are cancelled
with reason ``crash_recovery`` and their reservations released, at start and periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import fnmatch
import hmac
import json
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dragoman.accounting import prices as _prices
from dragoman.accounting.budgets import (
    Budget,
    BudgetIndex,
    from_config,
    period_start,
)
from dragoman.accounting.types import Hold as Hold
from dragoman.accounting.types import HoldSettledError, KeyInfo, Outcome, RequestInfo
from dragoman.config import Config, ConfigError, Prices
from dragoman.errors import BudgetExceededError, PermissionDeniedError, ServerError
from dragoman.store import schema, upgrade_async
from dragoman.store.db import create_engine, insert_ignore, upsert, utcnow
from dragoman.store.keys import KeyRepo
from dragoman.store.secrets import hash_secret, load_pepper, master_key

log = logging.getLogger("dragoman.accounting")
budget_log = logging.getLogger("dragoman.budget")

#: seconds without a heartbeat after which another host's process counts as dead
STALE_AFTER = 60.0
HEARTBEAT_EVERY = 10.0
BUDGET_RELOAD_EVERY = 5.0
SWEEP_EVERY = 30.0
#: slack for float sums when comparing with a limit
EPS = 1e-9

_HOST = socket.gethostname()


def _pidns() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


_PIDNS = _pidns()
#: instance ids of the Accountants alive in this process
_LIVE: set[str] = set()


def _pid_alive(pid: int) -> bool:
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


class BudgetLimitError(BudgetExceededError):
    """402: the request's worst-case cost does not fit in what is left of a budget."""

    def __init__(
        self,
        budget: Budget,
        period_start: _dt.datetime,
        spent: float,
        reserved: float,
        amount: float,
    ) -> None:
        remaining = max(budget.limit_usd - spent - reserved, 0.0)
        super().__init__(
            f"Budget exceeded: {budget.describe()} (limit ${budget.limit_usd:.4f}, "
            f"remaining ${remaining:.4f}); this request may cost up to ${amount:.4f}",
            code="budget_exceeded",
        )
        self.budget = {
            "id": budget.id,
            "scope": budget.scope,
            "target": budget.target,
            "period": budget.period,
            "period_start": period_start.isoformat(),
            "limit": budget.limit_usd,
            "spent": spent,
            "reserved": reserved,
            "remaining": remaining,
            "estimate": amount,
        }


class UnpricedModelError(BudgetExceededError):
    """402: a USD budget applies to the request, and its model has no price (it is not free:
    counting it at zero would let it bypass the budget)."""

    def __init__(self, model: str, deployment: str | None, budget: Budget) -> None:
        where = f" on deployment {deployment!r}" if deployment else ""
        super().__init__(
            f"model {model!r}{where} has no price, and the {budget.describe()} applies to this "
            f"request: dragoman refuses it rather than count it as free. Price the model in "
            f"accounting.prices.{model} or models.{model}.prices (USD per million tokens; "
            "prices: {input: 0, output: 0} marks it free)",
            code="model_unpriced",
        )


def _refs_text(refs: tuple[tuple[Budget, _dt.datetime], ...]) -> str:
    return ",".join(f"{b.id}@{ps.isoformat()}" for b, ps in refs)


def _parse_refs(text: str | None) -> list[tuple[str, _dt.datetime]]:
    out = []
    for part in (text or "").split(","):
        if "@" in part:
            bid, ps = part.rsplit("@", 1)
            out.append((bid, _dt.datetime.fromisoformat(ps)))
    return out


def _budget_from_row(r: Any) -> Budget:
    return Budget(
        id=r.id,
        scope=r.scope,
        target=r.target,
        period=r.period,
        limit_usd=float(r.limit_usd),
        alert_thresholds=[float(t) for t in json.loads(r.alert_thresholds or "[]")],
        webhook=r.webhook,
        source=r.source,
    )


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
    )


class Accountant:
    """See the module docstring. Build with ``await Accountant.create(config)``."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        #: monotonic seconds for the key and credential caches' TTLs (injected in tests)
        self.clock = clock
        self.store = config.store
        self.prices = _prices.PriceBook(config)
        self.engine: AsyncEngine | None = None
        self.keys: KeyRepo | None = None
        self.writer: Any = None
        self.master = master_key()
        self.instance_id = f"{_HOST}|{_PIDNS}|{os.getpid()}|{uuid.uuid4().hex[:12]}"
        self.started = time.monotonic()
        self._pepper = b""
        self._static: list[tuple[str, KeyInfo]] = []
        self._cache: dict[str, tuple[KeyInfo | None, float]] = {}
        self._cred_cache: dict[str, tuple[str, float]] = {}
        self._index = BudgetIndex([])
        self._known_counters: set[tuple[str, _dt.datetime]] = set()
        self._fired: set[tuple[str, _dt.datetime, float]] = set()
        self._inflight: dict[str, Hold] = {}
        self._unsettled: list[tuple[Hold, str, float, str | None]] = []
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._maint: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        self.recovered = 0

    # ---- life cycle ------------------------------------------------------------------------
    @classmethod
    async def create(
        cls, config: Config, *, clock: Callable[[], float] = time.monotonic
    ) -> Accountant:
        self = cls(config, clock=clock)
        st = config.store
        if not st.enabled:
            if config.accounting.budgets:
                raise ConfigError(
                    f"{config.source}: accounting.budgets needs the store (store.enabled: true)"
                )
            self._pepper = os.urandom(32)
            self._init_static()
            return self
        from dragoman.accounting.writer import BatchWriter

        if st.auto_upgrade:
            await upgrade_async(st.url)
        self.engine = engine = create_engine(st.url)
        try:
            if not st.auto_upgrade:
                await self._check_revision()
            self._lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
            self._pepper = await load_pepper(engine, self.master)
            self.keys = KeyRepo(engine, self._pepper, self.master)
            self._init_static()
            await self._register()
            await self._sync_config_budgets()
            await self._load_budgets()
            await self._recover(at_start=True)
        except BaseException:
            await engine.dispose()
            raise
        self.writer = BatchWriter(
            engine,
            batch_size=st.batch_size,
            flush_interval=st.flush_interval,
            queue_size=st.queue_size,
            lock=self._lock,
        )
        self.writer.start()
        _LIVE.add(self.instance_id)
        self._maint = asyncio.create_task(self._maintenance(), name="dragoman-accounting")
        return self

    async def _check_revision(self) -> None:
        from alembic.script import ScriptDirectory

        from dragoman.store import alembic_config, current_revision

        assert self.engine is not None
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        cur = await current_revision(self.engine)
        if cur != head:
            raise ConfigError(
                f"{self.config.source}: the database is at schema {cur or 'none'}, not {head}: "
                "run `dragoman db upgrade` (or set store.auto_upgrade: true)"
            )

    async def close(self) -> None:
        """Settle what is still in flight (cancelled, reason "shutdown"), flush every queued row."""
        if self._closed:
            return
        self._closed = True
        if self._maint is not None:
            self._maint.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maint
        if self.engine is None:
            return
        for h in list(self._inflight.values()):
            if h.state == "pending":
                h.state = "cancelled"
                await self._settle(h, "cancelled", 0.0, "shutdown")
        self._inflight.clear()
        await self._retry_unsettled()
        await self.writer.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        if self._http is not None:
            await self._http.close()
        with contextlib.suppress(Exception):
            async with self._tx() as conn:
                await conn.execute(
                    delete(schema.instances).where(schema.instances.c.id == self.instance_id)
                )
        _LIVE.discard(self.instance_id)
        await self.engine.dispose()

    async def _simulate_crash(self) -> None:
        """Stop like a killed process would: nothing flushed or settled (tests only)."""
        self._closed = True
        if self._maint is not None:
            self._maint.cancel()
        if self.writer is not None:
            self.writer.abandon()
        _LIVE.discard(self.instance_id)
        if self.engine is not None:
            await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (serialised in-process on SQLite, where writers lock the file)."""
        assert self.engine is not None
        if self._lock is None:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self._lock, self.engine.begin() as conn:
                yield conn

    async def _maintenance(self) -> None:
        last_hb = last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(BUDGET_RELOAD_EVERY)
            try:
                now = time.monotonic()
                if now - last_hb >= HEARTBEAT_EVERY:
                    last_hb = now
                    await self._heartbeat()
                await self._load_budgets()
                await self._retry_unsettled()
                if now - last_sweep >= SWEEP_EVERY:
                    last_sweep = now
                    await self._recover(at_start=False)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("accounting maintenance failed: %s", e)

    # ---- instances and crash recovery ------------------------------------------------------
    async def _register(self) -> None:
        now = utcnow()
        async with self._tx() as conn:
            await conn.execute(
                schema.instances.insert().values(
                    id=self.instance_id, started_at=now, heartbeat_at=now
                )
            )

    async def _heartbeat(self) -> None:
        inst = schema.instances
        async with self._tx() as conn:
            res = await conn.execute(
                update(inst).where(inst.c.id == self.instance_id).values(heartbeat_at=utcnow())
            )
            if res.rowcount == 0:
                await conn.execute(
                    inst.insert().values(
                        id=self.instance_id, started_at=utcnow(), heartbeat_at=utcnow()
                    )
                )

    def _is_dead(self, owner: str | None, heartbeats: dict[str, _dt.datetime]) -> bool:
        if owner is None:
            return True
        if owner == self.instance_id:
            return False
        parts = owner.split("|")
        if len(parts) == 4 and parts[0] == _HOST and parts[1] == _PIDNS:
            try:
                pid = int(parts[2])
            except ValueError:
                return True
            if pid == os.getpid():
                return owner not in _LIVE
            return not _pid_alive(pid)
        hb = heartbeats.get(owner)
        return hb is None or (utcnow() - hb).total_seconds() > STALE_AFTER

    async def _recover(self, at_start: bool) -> int:
        """Cancel pending holds of dead processes (reason "crash_recovery"); returns how many."""
        assert self.engine is not None
        L, C = schema.ledger, schema.budget_counters
        async with self.engine.connect() as conn:
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
        dead = [o for o in owners if self._is_dead(o, heartbeats)]
        n = 0
        for owner in dead:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(L.c.id, L.c.amount_held, L.c.budget_refs).where(
                            L.c.status == "pending",
                            L.c.owner.is_(None) if owner is None else L.c.owner == owner,
                        )
                    )
                ).all()
            for r in rows:
                async with self._tx() as conn:
                    res = await conn.execute(
                        update(L)
                        .where(L.c.id == r.id, L.c.status == "pending")
                        .values(
                            status="cancelled",
                            resolved_at=utcnow(),
                            reason="crash_recovery",
                            amount_final=0.0,
                        )
                    )
                    if res.rowcount != 1:
                        continue
                    for bid, ps in _parse_refs(r.budget_refs):
                        await conn.execute(
                            update(C)
                            .where(C.c.budget_id == bid, C.c.period_start == ps)
                            .values(reserved=_release(C.c.reserved, float(r.amount_held)))
                        )
                n += 1
        dead_instances = [
            i for i in heartbeats if i != self.instance_id and self._is_dead(i, heartbeats)
        ]
        async with self._tx() as conn:
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
                "crash recovery: cancelled %d pending hold(s) of %d dead process(es)", n, len(dead)
            )
        self.recovered += n
        return n

    # ---- keys ------------------------------------------------------------------------------
    def _init_static(self) -> None:
        self._static = []
        for i, secret in enumerate(self.config.auth.keys):
            h = hash_secret(self._pepper, secret)
            info = KeyInfo(
                id=f"static-{hash_secret(b'dragoman static key id', secret)[:12]}",
                alias=f"static-{i + 1}",
                team=None,
                owner=None,
                allowed_models=None,
                metadata={},
                is_static=True,
                budget_usd=None,
            )
            self._static.append((h, info))

    def admin_ok(self, secret: str | None) -> bool:
        admin = self.config.auth.admin_key
        if not admin or not secret:
            return False
        return hmac.compare_digest(secret.encode(), admin.encode())

    async def authenticate(self, secret: str) -> KeyInfo | None:
        if not secret:
            return None
        h = hash_secret(self._pepper, secret)
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
            if self.keys is None:
                return None
            row = await self.keys.lookup(h)
            info = None
            if row is not None and row.revoked_at is None:
                info = _key_from_row(row)
            ttl = self.config.auth.key_cache_ttl
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[h] = (info, now + (ttl if info is not None else min(ttl, 5.0)))
        if info is not None and info.expires_at is not None and info.expires_at <= utcnow():
            return None
        return info

    def invalidate_keys(self) -> None:
        self._cache.clear()

    def check_model_allowed(self, key: KeyInfo | None, model: str) -> None:
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
        now = self.clock()
        hit = self._cred_cache.get(name)
        if hit is not None and hit[1] > now:
            return hit[0]
        if self.keys is None:
            return None
        value = await self.keys.get_credential(name)
        if value is not None:
            self._cred_cache[name] = (value, now + self.config.auth.key_cache_ttl)
        return value

    # ---- prices ----------------------------------------------------------------------------
    def price_for(self, model: str, deployment: str | None = None) -> Prices:
        return self.prices.price_for(model, deployment)

    # ---- budgets ---------------------------------------------------------------------------
    async def _sync_config_budgets(self) -> None:
        B = schema.budgets
        wanted = []
        for i, bc in enumerate(self.config.accounting.budgets):
            try:
                wanted.append(from_config(bc))
            except ValueError as e:
                raise ConfigError(f"{self.config.source}: accounting.budgets.{i}: {e}") from None
        async with self._tx() as conn:
            for b in wanted:
                await conn.execute(
                    upsert(
                        conn,
                        B,
                        {
                            "id": b.id,
                            "scope": b.scope,
                            "target": b.target,
                            "period": b.period,
                            "limit_usd": b.limit_usd,
                            "alert_thresholds": json.dumps(b.alert_thresholds),
                            "webhook": b.webhook,
                            "source": "config",
                            "created_at": utcnow(),
                        },
                        ["id"],
                    )
                )
            q = delete(B).where(B.c.source == "config")
            if wanted:
                q = q.where(B.c.id.not_in([b.id for b in wanted]))
            await conn.execute(q)

    async def _load_budgets(self) -> None:
        assert self.engine is not None
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(schema.budgets))).all()
        self._index = BudgetIndex([_budget_from_row(r) for r in rows])

    def budgets(self) -> list[Budget]:
        return list(self._index.all)

    async def create_budget(
        self,
        *,
        scope: str,
        target: str | None,
        period: str,
        limit_usd: float,
        alert_thresholds: list[float] | None = None,
        webhook: str | None = None,
    ) -> Budget:
        b = Budget(
            id="bud_" + uuid.uuid4().hex[:20],
            scope=scope,
            target=None if scope == "global" else target,
            period=period,
            limit_usd=float(limit_usd),
            alert_thresholds=list(alert_thresholds or [50.0, 80.0, 95.0]),
            webhook=webhook,
            source="api",
        )
        async with self._tx() as conn:
            await conn.execute(
                schema.budgets.insert().values(
                    id=b.id,
                    scope=b.scope,
                    target=b.target,
                    period=b.period,
                    limit_usd=b.limit_usd,
                    alert_thresholds=json.dumps(b.alert_thresholds),
                    webhook=b.webhook,
                    source=b.source,
                    created_at=utcnow(),
                )
            )
        await self._load_budgets()
        return b

    async def delete_budget(self, budget_id: str) -> bool:
        async with self._tx() as conn:
            res = await conn.execute(
                delete(schema.budgets).where(
                    schema.budgets.c.id == budget_id, schema.budgets.c.source == "api"
                )
            )
        await self._load_budgets()
        return bool(res.rowcount)

    async def counters(self, budget_id: str, ps: _dt.datetime) -> tuple[float, float]:
        """(spent, reserved) of a budget for the period starting at ``ps``."""
        assert self.engine is not None
        C = schema.budget_counters
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(C.c.spent, C.c.reserved).where(
                        C.c.budget_id == budget_id, C.c.period_start == ps
                    )
                )
            ).first()
        return (0.0, 0.0) if row is None else (float(row[0]), float(row[1]))

    # ---- holds -----------------------------------------------------------------------------
    def _worst_case(self, info: RequestInfo, budgets: list[Budget]) -> float:
        """The most the request can cost; an unpriced model under a budget is refused."""
        p = self.prices.lookup(info.model, info.deployment)
        if p is None:
            if budgets:
                m = self.config.models.get(info.model)
                split = m is not None and len(m.deployments) > 1
                raise UnpricedModelError(info.model, info.deployment if split else None, budgets[0])
            p = self.prices.price_for(info.model, info.deployment)  # zero, warned once
        return _prices.worst_case(p, info.input_tokens_estimate, info.max_tokens)

    async def hold(self, info: RequestInfo) -> Hold:
        budgets = self._index.applicable(info)
        amount = self._worst_case(info, budgets)
        now = utcnow()
        h = Hold(id=secrets.token_hex(16), info=info, amount=amount, created_at=now)
        if budgets and self.engine is not None:
            budgets.sort(key=lambda b: b.id)  # one lock order for every transaction
            h.refs = h.charge = tuple((b, period_start(b.period, now)) for b in budgets)
            await self._reserve(h)
        self._inflight[h.id] = h
        return h

    async def retarget(self, hold: Hold, info: RequestInfo) -> Hold:
        """Move a pending hold to another target (a retry on another deployment, a fallback
        model): the budgets charged at the end are the new target's. When its worst case fits
        in what is already reserved, on budgets already reserved on, nothing moves; otherwise
        the new target is held first (a 402 leaves the old hold pending, for the caller to
        cancel) and the old hold is released (reason "rerouted")."""
        if hold.state != "pending":
            raise HoldSettledError(f"hold {hold.id} is already {hold.state}; cannot move it")
        budgets = self._index.applicable(info)
        amount = self._worst_case(info, budgets)
        if not budgets and not hold.persisted:
            hold.info, hold.amount = info, amount  # nothing reserved anywhere: nothing moves
            return hold
        now = utcnow()
        wanted = {(b.id, period_start(b.period, now)) for b in budgets}
        held = {(b.id, ps) for b, ps in hold.refs}
        if wanted <= held and amount <= hold.amount + EPS:
            hold.info = info
            hold.charge = tuple(r for r in hold.refs if (r[0].id, r[1]) in wanted)
            return hold
        moved = await self.hold(info)
        moved.created_at = hold.created_at
        self._take(hold, "cancelled")
        hold.cost = 0.0
        await self._settle(hold, "cancelled", 0.0, f"rerouted to {info.model}")
        return moved

    async def record(self, info: RequestInfo, outcome: Outcome) -> None:
        """The usage row of a request that never held anything (refused before any attempt:
        validation, unknown model, not allowed, budget): cost 0, its status and error."""
        h = Hold(id="-", info=info, amount=0.0, created_at=utcnow(), state="cancelled")
        await self._usage(h, outcome, 0.0)

    async def _reserve(self, h: Hold) -> None:
        C, L = schema.budget_counters, schema.ledger
        info = h.info
        refusal: BudgetLimitError | None = None
        try:
            async with self._tx() as conn:
                for b, ps in h.refs:
                    if (b.id, ps) not in self._known_counters:
                        await conn.execute(
                            insert_ignore(conn, C).values(
                                budget_id=b.id, period_start=ps, spent=0.0, reserved=0.0
                            )
                        )
                    res = await conn.execute(
                        update(C)
                        .where(
                            C.c.budget_id == b.id,
                            C.c.period_start == ps,
                            C.c.spent + C.c.reserved + h.amount <= b.limit_usd + EPS,
                        )
                        .values(reserved=C.c.reserved + h.amount)
                    )
                    if res.rowcount != 1:
                        row = (
                            await conn.execute(
                                select(C.c.spent, C.c.reserved).where(
                                    C.c.budget_id == b.id, C.c.period_start == ps
                                )
                            )
                        ).first()
                        spent, reserved = (float(row[0]), float(row[1])) if row else (0.0, 0.0)
                        refusal = BudgetLimitError(b, ps, spent, reserved, h.amount)
                        raise refusal
                await conn.execute(
                    L.insert().values(
                        id=h.id,
                        request_id=info.request_id,
                        key_id=info.key.id if info.key else None,
                        team=info.key.team if info.key else None,
                        model=info.model,
                        provider=info.provider,
                        deployment=info.deployment,
                        amount_held=h.amount,
                        amount_final=None,
                        status="pending",
                        created_at=h.created_at,
                        resolved_at=None,
                        reason=None,
                        transaction_token=info.transaction_token,
                        owner=self.instance_id,
                        budget_refs=_refs_text(h.refs),
                    )
                )
        except BudgetLimitError:
            raise
        except Exception as e:
            log.error("budget check failed (request refused): %s", e)
            raise ServerError(
                "budget check unavailable: the accounting database did not answer",
                status=503,
                code="budget_unavailable",
            ) from e
        for b, ps in h.refs:
            self._known_counters.add((b.id, ps))
        assert refusal is None

    def _take(self, h: Hold, state: str) -> None:
        if h.state != "pending":
            raise HoldSettledError(f"hold {h.id} is already {h.state}; cannot {state[:-2]} it")
        h.state = state
        self._inflight.pop(h.id, None)

    async def confirm(self, hold: Hold, outcome: Outcome) -> None:
        """Charge the actual cost (prices of ``outcome.model``/``deployment`` x ``usage``).

        A stream cut short is charged for what it delivered: confirm with the usage counted so
        far (and the failure status). Raises ``HoldSettledError`` if the hold is already settled.
        """
        self._take(hold, "confirmed")
        _follow(hold, outcome)
        p = self.prices.price_for(outcome.model, outcome.deployment)
        c = _prices.cost(p, outcome.usage)
        hold.cost = c
        await self._settle(hold, "confirmed", c, None)
        await self._usage(hold, outcome, c)

    async def cancel(self, hold: Hold, outcome: Outcome) -> None:
        """Release the hold (nothing charged); the usage row records the failure."""
        self._take(hold, "cancelled")
        _follow(hold, outcome)
        hold.cost = 0.0
        reason = outcome.error or f"status {outcome.status}"
        await self._settle(hold, "cancelled", 0.0, reason[:200])
        await self._usage(hold, outcome, 0.0)

    async def _settle(self, h: Hold, status: str, final: float, reason: str | None) -> None:
        if self.engine is None:
            return
        if not h.persisted:
            info = h.info
            await self.writer.put(
                schema.ledger,
                {
                    "id": h.id,
                    "request_id": info.request_id,
                    "key_id": info.key.id if info.key else None,
                    "team": info.key.team if info.key else None,
                    "model": info.model,
                    "provider": info.provider,
                    "deployment": info.deployment,
                    "amount_held": h.amount,
                    "amount_final": final,
                    "status": status,
                    "created_at": h.created_at,
                    "resolved_at": utcnow(),
                    "reason": reason,
                    "transaction_token": info.transaction_token,
                    "owner": self.instance_id,
                    "budget_refs": None,
                },
            )
            return
        try:
            crossed = await self._settle_persisted(h, status, final, reason)
        except Exception as e:
            log.error("could not settle hold %s (%s); will retry: %s", h.id, status, e)
            self._unsettled.append((h, status, final, reason))
            return
        for b, ps, spent in crossed:
            await self._check_alerts(b, ps, spent)

    async def _settle_persisted(
        self, h: Hold, status: str, final: float, reason: str | None
    ) -> list[tuple[Budget, _dt.datetime, float]]:
        L, C = schema.ledger, schema.budget_counters
        spent_after: list[tuple[Budget, _dt.datetime, float]] = []
        info = h.info
        where: dict[str, Any] = {
            "model": info.model,
            "provider": info.provider,
            "deployment": info.deployment,
        }
        if status == "confirmed" and h.charge != h.refs:
            # the budgets charged are those of the target that served (see retarget)
            where["budget_refs"] = _refs_text(h.charge)
        async with self._tx() as conn:
            res = await conn.execute(
                update(L)
                .where(L.c.id == h.id, L.c.status == "pending")
                .values(
                    status=status,
                    amount_final=final,
                    resolved_at=utcnow(),
                    reason=reason,
                    **where,
                )
            )
            release = res.rowcount == 1
            if not release:
                if status != "confirmed":
                    return []
                # cancelled behind our back (crash recovery / shutdown): still charge the work
                res = await conn.execute(
                    update(L)
                    .where(
                        L.c.id == h.id,
                        L.c.status == "cancelled",
                        L.c.reason.in_(("crash_recovery", "shutdown")),
                    )
                    .values(
                        status="confirmed",
                        amount_final=final,
                        resolved_at=utcnow(),
                        reason="late_confirm",
                        **where,
                    )
                )
                if res.rowcount != 1:
                    log.warning("hold %s was already settled in the ledger", h.id)
                    return []
            charge = {(b.id, ps) for b, ps in h.charge}
            for b, ps in h.refs:
                values: dict[str, Any] = {}
                if release:
                    values["reserved"] = _release(C.c.reserved, h.amount)
                if status == "confirmed" and (b.id, ps) in charge:
                    values["spent"] = C.c.spent + final
                if not values:
                    continue
                q = (
                    update(C)
                    .where(C.c.budget_id == b.id, C.c.period_start == ps)
                    .values(**values)
                    .returning(C.c.spent)
                )
                got = (await conn.execute(q)).first()
                if got is not None and status == "confirmed":
                    spent_after.append((b, ps, float(got[0])))
        return spent_after

    async def _retry_unsettled(self) -> None:
        todo, self._unsettled = self._unsettled, []
        for h, status, final, reason in todo:
            await self._settle(h, status, final, reason)

    async def _usage(self, h: Hold, o: Outcome, c: float) -> None:
        if self.engine is None:
            return
        info = h.info
        u = o.usage
        await self.writer.put(
            schema.usage,
            {
                "ts": h.created_at,
                "request_id": info.request_id,
                "key_id": info.key.id if info.key else None,
                "key_alias": info.key.alias if info.key else None,
                "team": info.key.team if info.key else None,
                "requested_model": info.requested_model,
                "model": o.model,
                "deployment": o.deployment,
                "provider": o.provider,
                "dialect": info.dialect,
                "streamed": info.streamed,
                "status": o.status,
                "input_tokens": u.input_tokens if u else 0,
                "output_tokens": u.output_tokens if u else 0,
                "cache_creation_input_tokens": u.cache_creation_input_tokens if u else 0,
                "cache_read_input_tokens": u.cache_read_input_tokens if u else 0,
                "usage_estimated": bool(u.estimated) if u else False,
                "cost": c,
                "latency_ms": float(o.latency_ms),
                "ttft_ms": None if o.ttft_ms is None else float(o.ttft_ms),
                "attempts": int(o.attempts),
                "error": o.error,
            },
        )

    async def flush(self) -> None:
        """Write every queued usage/ledger row now."""
        if self.writer is not None:
            await self.writer.flush()

    # ---- alerts ----------------------------------------------------------------------------
    async def _check_alerts(self, b: Budget, ps: _dt.datetime, spent: float) -> None:
        if not b.alert_thresholds:
            return
        pct = (spent / b.limit_usd * 100.0) if b.limit_usd > 0 else (100.0 if spent > 0 else 0.0)
        for t in sorted(b.alert_thresholds):
            if pct + EPS < t:
                break
            mark = (b.id, ps, float(t))
            if mark in self._fired:
                continue
            try:
                async with self._tx() as conn:
                    res = await conn.execute(
                        insert_ignore(conn, schema.alerts_fired).values(
                            budget_id=b.id, period_start=ps, threshold=float(t), fired_at=utcnow()
                        )
                    )
            except Exception as e:
                log.warning("could not record a budget alert: %s", e)
                continue
            self._fired.add(mark)
            if res.rowcount == 1:
                self._fire(b, ps, float(t), spent, pct)

    def _fire(self, b: Budget, ps: _dt.datetime, t: float, spent: float, pct: float) -> None:
        payload = {
            "event": "budget_alert",
            "type": "critical" if t >= 90 else "warning",
            "budget_id": b.id,
            "scope": b.scope,
            "target": b.target,
            "period": b.period,
            "period_start": ps.isoformat(),
            "threshold": t,
            "limit_usd": b.limit_usd,
            "spent_usd": spent,
            "usage_percentage": round(pct, 4),
            "message": f"{b.describe()} has reached {pct:.1f}% (threshold {t:g}%) of "
            f"${b.limit_usd:.2f}",
        }
        budget_log.warning(payload["message"], extra={"budget_alert": payload})
        url = b.webhook or self.config.accounting.alert_webhook
        if url:
            task = asyncio.create_task(self._post(url, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, payload: dict[str, Any]) -> None:
        try:
            if self._http is None or self._http.closed:
                self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            async with self._http.post(url, json=payload) as r:
                if r.status >= 400:
                    log.warning("budget alert webhook %s answered %d", url, r.status)
        except Exception as e:
            log.warning("budget alert webhook %s failed: %s", url, e)

    # ---- HTTP ------------------------------------------------------------------------------
    def uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def routes(self) -> list[web.RouteDef]:
        from dragoman.accounting.routes import make_routes

        return make_routes(self)


def _follow(hold: Hold, o: Outcome) -> None:
    """The ledger row names what the usage row names: the model and deployment that served."""
    info = hold.info
    if o.provider:
        info.model, info.provider, info.deployment = o.model, o.provider, o.deployment


def _release(col: Any, amount: float) -> Any:
    """``max(col - amount, 0)``, written portably (and snapping float dust to zero)."""
    return case((col - amount < EPS, 0.0), else_=col - amount)
