"""Budget alerts: when a confirmed charge takes a budget past one of its thresholds, say so once
per threshold and period, across every instance (the ``alerts_fired`` row is the proof), as a
``dragoman.budget`` log warning and a POST to the budget's webhook (or
``accounting.alert_webhook``).

Delivery runs in the background and never delays or fails a request; the HTTP client is made at
the first delivery, so nothing of it loads with the books (docs/accounting.md, "Alerts"). A
webhook is https to a public address only: its URL is checked when a budget is made and again
at delivery, where every address its name resolves to must be public; redirects are not
followed; a failed delivery is retried a few times with exponential backoff (audit #2b).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dragoman.accounting.budgets import EPS
from dragoman.accounting.types import Budget
from dragoman.config import Config
from dragoman.guard.urls import webhook_refusal
from dragoman.store import schema
from dragoman.store.brief import brief
from dragoman.store.db import Database, insert_ignore

log = logging.getLogger("dragoman.accounting")
budget_log = logging.getLogger("dragoman.budget")

#: a delivery that takes longer than this is given up (seconds)
WEBHOOK_TIMEOUT = 5.0
#: how long close() waits for deliveries still running (seconds)
CLOSE_WAIT = 2.0
#: waits before the second, third... delivery attempt (seconds): three attempts in all
RETRY_DELAYS = (1.0, 4.0)


class WebhookRefused(Exception):
    """A webhook URL, or an address its host resolves to, that may not be called."""


class Webhooks(Protocol):
    """Sends one alert; returns the HTTP status the receiver answered."""

    async def post(self, url: str, payload: dict[str, Any]) -> int: ...

    async def close(self) -> None: ...


class HttpWebhooks:
    """Webhooks over an aiohttp session opened at the first alert; ``resolver`` (an aiohttp
    resolver, the default one when None) finds the addresses, and only public ones are used."""

    def __init__(self, timeout: float = WEBHOOK_TIMEOUT, resolver: Any = None) -> None:
        self.timeout = timeout
        self.resolver = resolver
        self._session: Any = None

    async def post(self, url: str, payload: dict[str, Any]) -> int:
        import aiohttp

        from dragoman.guard.public_resolver import PublicResolver

        why = webhook_refusal(url)
        if why is not None:
            raise WebhookRefused(f"refused: {why}")
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=PublicResolver(self.resolver))
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), connector=connector
            )
        async with self._session.post(url, json=payload, allow_redirects=False) as r:
            return int(r.status)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Alerts:
    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        now: Callable[[], _dt.datetime],
        webhooks: Webhooks | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.now = now
        self.webhooks: Webhooks = webhooks or HttpWebhooks()
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        #: deliveries still running
        self.tasks: set[asyncio.Task[None]] = set()
        self._fired: set[tuple[str, _dt.datetime, float]] = set()

    async def check(self, b: Budget, ps: _dt.datetime, spent: float) -> None:
        """Fire the thresholds ``spent`` reached that no instance fired yet this period."""
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
                async with self.db.tx() as conn:
                    res = await conn.execute(
                        insert_ignore(conn, schema.alerts_fired).values(
                            budget_id=b.id, period_start=ps, threshold=float(t), fired_at=self.now()
                        )
                    )
            except Exception as e:
                log.warning("could not record a budget alert: %s", brief(e))
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
            task = asyncio.create_task(self._deliver(url, payload))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        """Up to ``1 + len(retry_delays)`` attempts; a refused URL and a 4xx are not retried."""
        for attempt in range(len(self.retry_delays) + 1):
            if attempt:
                await self.sleep(self.retry_delays[attempt - 1])
            try:
                status = await self.webhooks.post(url, payload)
            except WebhookRefused as e:
                log.warning("budget alert webhook %s %s", url, e)
                return
            except Exception as e:
                log.warning("budget alert webhook %s failed: %s", url, e)
                continue
            if status < 300:
                return
            log.warning("budget alert webhook %s answered %d", url, status)
            if status < 500 and status != 429:
                return

    async def drain(self) -> None:
        """Wait for every delivery started so far."""
        if self.tasks:
            await asyncio.gather(*list(self.tasks))

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=CLOSE_WAIT)
        await self.webhooks.close()
