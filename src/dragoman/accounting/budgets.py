"""Budgets: scopes, periods and which budgets apply to a request."""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dragoman.config import BudgetConfig

if TYPE_CHECKING:
    from dragoman.accounting.types import KeyInfo, RequestInfo

SCOPES = ("key", "team", "model", "provider", "global")
PERIODS = ("daily", "weekly", "monthly", "yearly", "total")
DEFAULT_THRESHOLDS = (50.0, 80.0, 95.0)
EPOCH = _dt.datetime(1970, 1, 1)


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


@dataclass(slots=True)
class Budget:
    id: str
    scope: str
    target: str | None
    period: str
    limit_usd: float
    alert_thresholds: list[float] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    webhook: str | None = None
    source: str = "api"  # "config" | "api" | "key"

    def describe(self) -> str:
        who = self.scope if self.target is None else f"{self.scope} {self.target!r}"
        return f"{who} {self.period} budget"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "target": self.target,
            "period": self.period,
            "limit_usd": self.limit_usd,
            "alert_thresholds": list(self.alert_thresholds),
            "webhook": self.webhook,
            "source": self.source,
        }


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


def key_budget(key: KeyInfo) -> Budget | None:
    """The budget a virtual key carries itself (``budget_usd``), if any."""
    if key.budget_usd is None:
        return None
    return Budget(
        id=f"key-{key.id}"[:64],
        scope="key",
        target=key.id,
        period=key.budget_period,
        limit_usd=key.budget_usd,
        source="key",
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
