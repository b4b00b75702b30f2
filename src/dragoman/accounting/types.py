"""The data the server hands the Accountant and gets back (plain dataclasses: importing them
pulls in no database or HTTP stack)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from dragoman.usage import Usage

#: the alert thresholds (percent of the limit) of a budget that names none
DEFAULT_THRESHOLDS = (50.0, 80.0, 95.0)


@dataclass(slots=True)
class KeyInfo:
    id: str
    alias: str | None
    team: str | None
    owner: str | None
    #: None = every model
    allowed_models: list[str] | None
    metadata: dict
    is_static: bool
    budget_usd: float | None
    #: period of ``budget_usd``: daily|weekly|monthly|yearly|total
    budget_period: str = "total"
    #: naive UTC expiry (virtual keys)
    expires_at: _dt.datetime | None = None
    #: the key's own rate limits (virtual keys; ``limits/resolve.py`` reads them, docs/limits.md)
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    key: KeyInfo | None
    requested_model: str
    #: the gateway model (config name) the request is routed to
    model: str
    provider: str
    deployment: str | None
    #: "anthropic" | "openai"
    dialect: str
    streamed: bool
    input_tokens_estimate: int
    max_tokens: int
    #: caller-supplied transaction token (Syft-style delegated payment), kept on the ledger row
    transaction_token: str | None = None


@dataclass(slots=True)
class Outcome:
    status: int
    usage: Usage | None
    model: str
    provider: str
    deployment: str | None
    latency_ms: float
    ttft_ms: float | None
    attempts: int
    error: str | None = None


@dataclass(slots=True)
class Budget:
    """A spending limit in USD on a scope (key, team, model, provider, global) per period."""

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


@dataclass(eq=False, slots=True)
class Hold:
    """Money set aside for one request until ``confirm`` or ``cancel`` (exactly one, once)."""

    id: str
    info: RequestInfo
    #: worst-case cost in USD
    amount: float
    created_at: _dt.datetime
    #: budget counters reserved on (budget, period start); empty = held in memory only
    refs: tuple[tuple[Budget, _dt.datetime], ...] = ()
    #: the counters the final cost is charged to: those of the target that served (a subset
    #: of ``refs`` after a retry or fallback elsewhere, see ``Accountant.retarget``)
    charge: tuple[tuple[Budget, _dt.datetime], ...] = ()
    #: "pending" | "confirmed" | "cancelled"
    state: str = "pending"
    #: final cost once confirmed
    cost: float | None = None
    _extra: dict = field(default_factory=dict)

    @property
    def persisted(self) -> bool:
        """True when a pending ledger row and budget reservations exist in the database."""
        return bool(self.refs)


class HoldSettledError(RuntimeError):
    """``confirm``/``cancel`` on a hold that was already confirmed or cancelled."""
