"""The usage log: one row per request, queued for the batched writer (docs/accounting.md,
"One usage row per request"). It names what served (model, deployment, provider), what was
used and what it cost; nothing here waits on the database."""

from __future__ import annotations

from dragoman.accounting.types import Hold, Outcome
from dragoman.accounting.writer import BatchWriter
from dragoman.store import schema
from dragoman.store.fit import fit_row


class UsageLog:
    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer

    async def write(self, h: Hold, o: Outcome, cost: float) -> None:
        info = h.info
        u = o.usage
        # a string over its column's length would fail the whole batch (audit #10)
        row = fit_row(
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
                "cost": cost,
                "latency_ms": float(o.latency_ms),
                "ttft_ms": None if o.ttft_ms is None else float(o.ttft_ms),
                "attempts": int(o.attempts),
                "error": o.error,
            },
        )
        await self.writer.put(schema.usage, row)
