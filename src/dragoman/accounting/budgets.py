"""Budgets: scopes, periods, which budgets apply to a request, and the budgets table.

A budget is a USD limit on a scope (``key``, ``team``, ``model``, ``provider`` or ``global``) per
period; its counters (``spent``, ``reserved``) live in ``budget_counters``, one row per period
started. Config budgets are synced into the table at start (their ids are stable, so counters
survive a limit change); API budgets are created and deleted over HTTP; a virtual key's own
``budget_usd`` is a budget too. Every instance reloads the table every few seconds
(docs/accounting.md, "Budgets").
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select

from dragoman.accounting.types import DEFAULT_THRESHOLDS, Budget, KeyInfo, RequestInfo
from dragoman.config import BudgetConfig, Config, ConfigError
from dragoman.errors import BudgetExceededError
from dragoman.store import schema
from dragoman.store.db import Database, upsert

SCOPES = ("key", "team", "model", "provider", "global")
PERIODS = ("daily", "weekly", "monthly", "yearly", "total")
EPOCH = _dt.datetime(1970, 1, 1)
#: slack for float sums when comparing with a limit
EPS = 1e-9


def period_start(period: str, now: _dt.datetime) -> _dt.datetime:
    """Start (naive UTC) of the period containing ``now``; weeks start on Monday."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - _dt.timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    if period == "yearly":
        return day.replace(month=1, day=1)
    if period == "total":
        return EPOCH
    raise ValueError(f"unknown budget period {period!r}")


def period_end(period: str, start: _dt.datetime) -> _dt.datetime | None:
    if period == "daily":
        return start + _dt.timedelta(days=1)
    if period == "weekly":
        return start + _dt.timedelta(days=7)
    if period == "monthly":
        return (start.replace(day=28) + _dt.timedelta(days=4)).replace(day=1)
    if period == "yearly":
        return start.replace(year=start.year + 1)
    return None


def config_budget_id(b: BudgetConfig) -> str:
    """Stable id of a config budget (scope, target, period): counters survive limit changes."""
    h = hashlib.sha256(f"{b.scope}\x00{b.target or ''}\x00{b.period}".encode()).hexdigest()
    return "cfg-" + h[:24]


def from_config(b: BudgetConfig) -> Budget:
    if b.scope != "global" and not b.target:
        raise ValueError(f"a {b.scope} budget needs a target")
    return Budget(
        id=config_budget_id(b),
        scope=b.scope,
        target=b.target if b.scope != "global" else None,
        period=b.period,
        limit_usd=b.limit_usd,
        alert_thresholds=list(b.alert_thresholds),
        webhook=b.webhook,
        source="config",
    )


def key_budget_id(key_id: str) -> str:
    """The id of the budget a virtual key carries itself."""
    return f"key-{key_id}"[:64]


def key_budget(key: KeyInfo) -> Budget | None:
    """The budget a virtual key carries itself (``budget_usd``), if any."""
    if key.budget_usd is None:
        return None
    return Budget(
        id=key_budget_id(key.id),
        scope="key",
        target=key.id,
        period=key.budget_period,
        limit_usd=key.budget_usd,
        source="key",
    )


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
    counting it at zero would let it bypass the budget; docs/accounting.md)."""

    def __init__(self, model: str, deployment: str | None, budget: Budget) -> None:
        where = f" on deployment {deployment!r}" if deployment else ""
        super().__init__(
            f"model {model!r}{where} has no price, and the {budget.describe()} applies to this "
            f"request: dragoman refuses it rather than count it as free. Price the model in "
            f"accounting.prices.{model} or models.{model}.prices (USD per million tokens; "
            "prices: {input: 0, output: 0} marks it free)",
            code="model_unpriced",
        )


class BudgetIndex:
    """The budgets in force, indexed by scope for a cheap "does any apply?" on the hot path."""

    def __init__(self, budgets: list[Budget]) -> None:
        self.all = list(budgets)
        self.glob: list[Budget] = []
        self.by: dict[str, dict[str, list[Budget]]] = {s: {} for s in SCOPES if s != "global"}
        for b in budgets:
            if b.scope == "global":
                self.glob.append(b)
            elif b.target is not None:
                self.by[b.scope].setdefault(b.target, []).append(b)
        self.empty = not budgets

    def applicable(self, info: RequestInfo) -> list[Budget]:
        key = info.key
        out: list[Budget] = []
        if key is not None:
            kb = key_budget(key)
            if kb is not None:
                out.append(kb)
        if self.empty:
            return out
        out.extend(self.glob)
        by = self.by
        if key is not None:
            keyed = by["key"]
            if keyed:
                out.extend(keyed.get(key.id, ()))
                if key.alias and key.alias != key.id:
                    out.extend(keyed.get(key.alias, ()))
            if key.team and by["team"]:
                out.extend(by["team"].get(key.team, ()))
        models = by["model"]
        if models:
            out.extend(models.get(info.model, ()))
            if info.requested_model != info.model:
                out.extend(models.get(info.requested_model, ()))
        if by["provider"]:
            out.extend(by["provider"].get(info.provider, ()))
        # the same budget can match twice (alias and id, requested and routed model)
        seen: set[str] = set()
        uniq = []
        for b in out:
            if b.id not in seen:
                seen.add(b.id)
                uniq.append(b)
        return uniq


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


class BudgetBook:
    """The ``budgets`` table and its in-memory index (reloaded by the maintenance loop)."""

    def __init__(self, config: Config, db: Database, *, now: Callable[[], _dt.datetime]) -> None:
        self.config = config
        self.db = db
        self.now = now
        self.index = BudgetIndex([])

    async def sync_config(self) -> None:
        """Make the table's config budgets those of the config (API budgets stay)."""
        B = schema.budgets
        wanted = []
        for i, bc in enumerate(self.config.accounting.budgets):
            try:
                wanted.append(from_config(bc))
            except ValueError as e:
                raise ConfigError(f"{self.config.source}: accounting.budgets.{i}: {e}") from None
        async with self.db.tx() as conn:
            for b in wanted:
                await conn.execute(upsert(conn, B, self._row(b), ["id"]))
            q = delete(B).where(B.c.source == "config")
            if wanted:
                q = q.where(B.c.id.not_in([b.id for b in wanted]))
            await conn.execute(q)

    async def load(self) -> None:
        """Reload the index from the table (what another instance created shows up here)."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(schema.budgets))).all()
        self.index = BudgetIndex([_budget_from_row(r) for r in rows])

    def applicable(self, info: RequestInfo) -> list[Budget]:
        return self.index.applicable(info)

    def all(self) -> list[Budget]:
        return list(self.index.all)

    async def create(
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
            alert_thresholds=list(alert_thresholds or DEFAULT_THRESHOLDS),
            webhook=webhook,
            source="api",
        )
        async with self.db.tx() as conn:
            await conn.execute(schema.budgets.insert().values(**self._row(b)))
        await self.load()
        return b

    async def delete(self, budget_id: str) -> bool:
        """Delete an API budget (config budgets live in the config); False if there is none."""
        B = schema.budgets
        async with self.db.tx() as conn:
            res = await conn.execute(delete(B).where(B.c.id == budget_id, B.c.source == "api"))
        await self.load()
        return bool(res.rowcount)

    async def counters(self, budget_id: str, ps: _dt.datetime) -> tuple[float, float]:
        """(spent, reserved) of a budget for the period starting at ``ps``."""
        C = schema.budget_counters
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(C.c.spent, C.c.reserved).where(
                        C.c.budget_id == budget_id, C.c.period_start == ps
                    )
                )
            ).first()
        return (0.0, 0.0) if row is None else (float(row[0]), float(row[1]))

    def _row(self, b: Budget) -> dict[str, Any]:
        return {
            "id": b.id,
            "scope": b.scope,
            "target": b.target,
            "period": b.period,
            "limit_usd": b.limit_usd,
            "alert_thresholds": json.dumps(b.alert_thresholds),
            "webhook": b.webhook,
            "source": b.source,
            "created_at": self.now(),
        }
