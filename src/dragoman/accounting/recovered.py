"""A dead process's pending hold, charged at the request's input estimate.

The process died with the request in flight: the upstream may well have read the prompt (and
billed it), so the hold is confirmed at the input estimate its pending row kept (reason
``recovered``), never at $0, and the request gets a usage row flagged estimated. Rows without an
estimate (written before migration 0004) are cancelled as before (docs/accounting.md,
"Exactly once, and after a crash").
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import update

from dragoman.accounting.ledger import parse_refs, release
from dragoman.store import schema
from dragoman.store.db import Database, insert_ignore
from dragoman.store.fit import fit_row

REASON = "recovered"
ERROR = "the gateway process died with the request in flight: charged its input estimate"

#: ledger columns a recovery needs
COLUMNS = (
    "id",
    "request_id",
    "key_id",
    "team",
    "model",
    "provider",
    "deployment",
    "amount_held",
    "budget_refs",
    "created_at",
    "input_tokens_estimate",
    "amount_estimate",
    "requested_model",
    "dialect",
    "streamed",
)


def chargeable(row: Any) -> bool:
    """Whether a pending row kept an input estimate to charge."""
    return row.amount_estimate is not None


def _usage_row(r: Any, charge: float, now: _dt.datetime) -> dict[str, Any]:
    return fit_row(
        schema.usage,
        {
            "ts": r.created_at,
            "request_id": r.request_id,
            "key_id": r.key_id,
            "key_alias": None,
            "team": r.team,
            "requested_model": r.requested_model or r.model,
            "model": r.model,
            "deployment": r.deployment,
            "provider": r.provider,
            "dialect": r.dialect or "",
            "streamed": bool(r.streamed),
            "status": 500,
            "input_tokens": int(r.input_tokens_estimate or 0),
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "usage_estimated": True,
            "cost": charge,
            "latency_ms": max((now - r.created_at).total_seconds() * 1000.0, 0.0),
            "ttft_ms": None,
            "attempts": 1,
            "error": ERROR,
        },
    )


async def charge_rows(db: Database, rows: Sequence[Any], now: _dt.datetime) -> int:
    """Confirm pending rows at their input estimate (never above what they held), release their
    reservations, charge the estimate to their budgets, write their usage rows (once per
    request: the usage table is unique on it); returns how many."""
    L, C = schema.ledger, schema.budget_counters
    n = 0
    for r in rows:
        held = float(r.amount_held)
        charge = min(max(float(r.amount_estimate), 0.0), held)
        async with db.tx() as conn:
            res = await conn.execute(
                update(L)
                .where(L.c.id == r.id, L.c.status == "pending")
                .values(status="confirmed", resolved_at=now, reason=REASON, amount_final=charge)
            )
            if res.rowcount != 1:
                continue
            for bid, ps in parse_refs(r.budget_refs):
                await conn.execute(
                    update(C)
                    .where(C.c.budget_id == bid, C.c.period_start == ps)
                    .values(reserved=release(C.c.reserved, held), spent=C.c.spent + charge)
                )
            await conn.execute(
                insert_ignore(conn, schema.usage).values(**_usage_row(r, charge, now))
            )
        n += 1
    return n
