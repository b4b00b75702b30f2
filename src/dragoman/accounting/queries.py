"""Read-only views of the books for the analytics endpoints: budgets with their counters, costs
over a window, per-model totals. Plain data out; who may see what is the caller's business.

Every view first flushes the usage writer, so it counts every request answered so far.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import ColumnElement, case, func, select

from dragoman.accounting.budgets import key_budget_id, period_end, period_start
from dragoman.accounting.types import Budget
from dragoman.store import schema
from dragoman.store.db import Database


def iso(d: _dt.datetime | None) -> str | None:
    """A naive UTC time as ISO 8601 with its offset."""
    return None if d is None else d.replace(tzinfo=_dt.UTC).isoformat()


def empty_costs(days: int) -> dict[str, Any]:
    return {
        "period_days": days,
        "total_cost": 0.0,
        "total_requests": 0,
        "cost_by_provider": {},
        "cost_by_model": {},
        "cost_by_key": {},
        "daily_breakdown": [],
    }


class Queries:
    def __init__(
        self,
        db: Database,
        *,
        flush: Callable[[], Awaitable[None]],
        now: Callable[[], _dt.datetime],
    ) -> None:
        self.db = db
        self.flush = flush
        self.now = now

    async def budget_views(self, budgets: list[Budget]) -> list[dict[str, Any]]:
        """Each budget with its current period's counters, percentage and alerts reached."""
        now = self.now()
        C = schema.budget_counters
        starts = {b.id: period_start(b.period, now) for b in budgets}
        counters: dict[tuple[str, _dt.datetime], tuple[float, float]] = {}
        if budgets:
            async with self.db.connect() as conn:
                rows = await conn.execute(
                    select(C.c.budget_id, C.c.period_start, C.c.spent, C.c.reserved).where(
                        C.c.budget_id.in_(list(starts))
                    )
                )
                for r in rows:
                    counters[(r.budget_id, r.period_start)] = (float(r.spent), float(r.reserved))
        return [
            _view(b, starts[b.id], *counters.get((b.id, starts[b.id]), (0.0, 0.0))) for b in budgets
        ]

    async def key_budgets(self) -> list[Budget]:
        """The budgets the unrevoked virtual keys carry (``budget_usd``)."""
        K = schema.keys
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(K.c.id, K.c.budget_usd, K.c.budget_period).where(
                    K.c.budget_usd.is_not(None), K.c.revoked_at.is_(None)
                )
            )
            return [
                Budget(
                    id=key_budget_id(r.id),
                    scope="key",
                    target=r.id,
                    period=r.budget_period,
                    limit_usd=float(r.budget_usd),
                    source="key",
                )
                for r in rows
            ]

    async def costs(
        self,
        days: int,
        *,
        key_id: str | None = None,
        only_key: bool = False,
        provider: str | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """Cost and request totals over the last ``days`` days, by provider, model, key, day;
        ``only_key``: the rows of ``key_id`` alone (None: of no key)."""
        await self.flush()
        U = schema.usage
        conds = [U.c.ts >= self.now() - _dt.timedelta(days=days)]
        if only_key or key_id is not None:
            conds.append(_of_key(key_id))
        if provider:
            conds.append(U.c.provider == provider)
        if model:
            conds.append(U.c.model == model)
        total, n = func.coalesce(func.sum(U.c.cost), 0.0), func.count()
        out = empty_costs(days)
        async with self.db.connect() as conn:
            row = (await conn.execute(select(total, n).where(*conds))).one()
            out["total_cost"], out["total_requests"] = float(row[0]), int(row[1])
            for col, name in ((U.c.provider, "cost_by_provider"), (U.c.model, "cost_by_model")):
                rows = await conn.execute(select(col, total).where(*conds).group_by(col))
                out[name] = {r[0]: float(r[1]) for r in rows}
            rows = await conn.execute(
                select(U.c.key_id, func.max(U.c.key_alias), total)
                .where(*conds)
                .group_by(U.c.key_id)
            )
            out["cost_by_key"] = {(r[1] or r[0] or "anonymous"): float(r[2]) for r in rows}
            day = func.date(U.c.ts)
            rows = await conn.execute(
                select(day, total, n).where(*conds).group_by(day).order_by(day)
            )
            out["daily_breakdown"] = [
                {"date": str(r[0])[:10], "cost": float(r[1]), "requests": int(r[2])} for r in rows
            ]
        return out

    async def model_stats(
        self, *, key_id: str | None = None, only_key: bool = False
    ) -> dict[str, dict[str, int]]:
        """Per model, all time: requests, tokens by kind, errors (status >= 400); ``only_key``:
        the rows of ``key_id`` alone (None: of no key)."""
        await self.flush()
        U = schema.usage
        conds = [_of_key(key_id)] if only_key or key_id is not None else []
        models: dict[str, dict[str, int]] = {}
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(
                    U.c.model,
                    func.count(),
                    func.coalesce(func.sum(U.c.input_tokens), 0),
                    func.coalesce(func.sum(U.c.output_tokens), 0),
                    func.coalesce(func.sum(U.c.cache_read_input_tokens), 0),
                    func.coalesce(func.sum(U.c.cache_creation_input_tokens), 0),
                    func.coalesce(func.sum(case((U.c.status >= 400, 1), else_=0)), 0),
                )
                .where(*conds)
                .group_by(U.c.model)
            )
            for r in rows:
                models[r[0]] = {
                    "requests": int(r[1]),
                    "input_tokens": int(r[2]),
                    "output_tokens": int(r[3]),
                    "cache_read_input_tokens": int(r[4]),
                    "cache_creation_input_tokens": int(r[5]),
                    "errors": int(r[6]),
                }
        return models


def _of_key(key_id: str | None) -> ColumnElement[bool]:
    """Usage rows of one key (None: rows made without a key, on an open gateway)."""
    c = schema.usage.c.key_id
    return c.is_(None) if key_id is None else c == key_id


def _view(b: Budget, ps: _dt.datetime, spent: float, reserved: float) -> dict[str, Any]:
    pct = spent / b.limit_usd * 100.0 if b.limit_usd > 0 else 0.0
    alerts = [
        {
            "type": "critical" if t >= 90 else "warning",
            "message": f"{b.describe()} at {pct:.1f}% (threshold {t:g}%)",
            "threshold": t,
            "current_usage": spent,
        }
        for t in sorted(b.alert_thresholds)
        if pct >= t
    ]
    return {
        "id": b.id,
        "budget_type": b.period,
        "budget_limit": b.limit_usd,
        "current_usage": spent,
        "reserved": reserved,
        "usage_percentage": round(pct, 4),
        "remaining_budget": max(b.limit_usd - spent - reserved, 0.0),
        "provider": b.target if b.scope == "provider" else None,
        "model": b.target if b.scope == "model" else None,
        "scope": b.scope,
        "target": b.target,
        "source": b.source,
        "alert_thresholds": list(b.alert_thresholds),
        "alerts": alerts,
        "period_start": iso(ps) if b.period != "total" else None,
        "period_end": iso(period_end(b.period, ps)),
    }
