"""The ledger: money held for a request until it is confirmed (charged) or cancelled.

Hot path (no budget applies): ``hold`` makes an in-memory ``Hold``; ``confirm``/``cancel`` queue
one ledger row (already settled) and one usage row for the batched writer; nothing waits on the
database.

Budgeted path: ``hold`` runs one short transaction that inserts a pending ledger row and, for every
applicable budget, ``UPDATE budget_counters SET reserved = reserved + :x WHERE ... AND
spent + reserved + :x <= :limit``; if any budget refuses, the transaction rolls back and
``BudgetLimitError`` (402) names the budget. ``confirm`` moves the actual cost from reserved to
spent and marks the row confirmed; ``cancel`` releases the reservation. Both are conditional on the
row still being pending, so each hold is settled exactly once even across processes. A settle the
database refused is retried by the maintenance loop. A settlement runs in a task of its own that
the caller's cancellation (a client that leaves) does not stop, and whatever interrupts it leaves
the hold in ``unsettled``; a sweep (``Recovery.sweep_orphans``) cancels any pending row of this
process the ledger no longer tracks, so no hold stays pending while the process runs. A hold is
taken on the deployment about to be called and moved (``retarget``) when a retry or fallback
goes elsewhere, so budgets are charged to the target that served; a model without a price under a
USD budget is refused (``UnpricedModelError``, 402): docs/accounting.md.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import case, select, update

from dragoman.accounting import prices as _prices
from dragoman.accounting.alerts import Alerts
from dragoman.accounting.budgets import (
    EPS,
    BudgetBook,
    BudgetIndex,
    BudgetLimitError,
    UnpricedModelError,
    period_start,
)
from dragoman.accounting.types import Budget, Hold, HoldSettledError, Outcome, RequestInfo
from dragoman.accounting.usage_log import UsageLog
from dragoman.accounting.writer import BatchWriter
from dragoman.config import Config
from dragoman.errors import ServerError
from dragoman.store import schema
from dragoman.store.brief import brief
from dragoman.store.db import Database, insert_ignore
from dragoman.store.fit import fit_row
from dragoman.usage import Usage

log = logging.getLogger("dragoman.accounting")

Refs = tuple[tuple[Budget, _dt.datetime], ...]
_NO_BUDGETS = BudgetIndex([])


def refs_text(refs: Refs) -> str:
    """A ledger row's ``budget_refs``: the counters it reserved on, ``id@period_start,...``."""
    return ",".join(f"{b.id}@{ps.isoformat()}" for b, ps in refs)


def parse_refs(text: str | None) -> list[tuple[str, _dt.datetime]]:
    """The (budget id, period start) pairs of a ledger row's ``budget_refs``."""
    out = []
    for part in (text or "").split(","):
        if "@" in part:
            bid, ps = part.rsplit("@", 1)
            out.append((bid, _dt.datetime.fromisoformat(ps)))
    return out


def release(col: Any, amount: float) -> Any:
    """``max(col - amount, 0)``, written portably (and snapping float dust to zero)."""
    return case((col - amount < EPS, 0.0), else_=col - amount)


def _follow(hold: Hold, o: Outcome) -> None:
    """The ledger row names what the usage row names: the model and deployment that served."""
    info = hold.info
    if o.provider:
        info.model, info.provider, info.deployment = o.model, o.provider, o.deployment


class Ledger:
    """Holds and their settlement. Without the store (``db`` None) holds live in memory only and
    nothing is written."""

    def __init__(
        self,
        config: Config,
        prices: _prices.PriceBook,
        *,
        now: Callable[[], _dt.datetime],
        owner: str,
        db: Database | None = None,
        budgets: BudgetBook | None = None,
        writer: BatchWriter | None = None,
        usage_log: UsageLog | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self.config = config
        self.prices = prices
        self.now = now
        #: the instance id written on pending rows (crash recovery finds them by it)
        self.owner = owner
        self.db = db
        self.budgets = budgets
        self.writer = writer
        self.usage_log = usage_log
        self.alerts = alerts
        #: holds not settled yet, by id (cancelled with reason "shutdown" by close())
        self.inflight: dict[str, Hold] = {}
        #: settles the database refused, retried by the maintenance loop and at close
        self.unsettled: list[tuple[Hold, str, float, str | None]] = []
        #: settlements running (confirm / cancel), awaited by close()
        self.settling: set[asyncio.Task[None]] = set()
        self._known_counters: set[tuple[str, _dt.datetime]] = set()

    def _applicable(self, info: RequestInfo) -> list[Budget]:
        index = self.budgets.index if self.budgets is not None else _NO_BUDGETS
        return index.applicable(info)

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

    # ---- holding -------------------------------------------------------------------------
    async def hold(self, info: RequestInfo) -> Hold:
        budgets = self._applicable(info)
        amount = self._worst_case(info, budgets)
        now = self.now()
        h = Hold(id=secrets.token_hex(16), info=info, amount=amount, created_at=now)
        self.inflight[h.id] = h  # before the row exists: the orphan sweep must not take it
        if budgets and self.db is not None:
            budgets.sort(key=lambda b: b.id)  # one lock order for every transaction
            h.refs = h.charge = tuple((b, period_start(b.period, now)) for b in budgets)
            try:
                await self._reserve(h)
            except BudgetLimitError:
                del self.inflight[h.id]  # rolled back: nothing to settle
                raise
            except BaseException:
                # cancelled or failed around the commit: the row may exist; cancelling it is
                # conditional on it being pending, so this is safe either way
                del self.inflight[h.id]
                h.state = "cancelled"
                self.unsettled.append((h, "cancelled", 0.0, "hold interrupted"))
                raise
        return h

    async def retarget(self, hold: Hold, info: RequestInfo) -> Hold:
        """Move a pending hold to another target (a retry on another deployment, a fallback
        model): the budgets charged at the end are the new target's. When its worst case fits
        in what is already reserved, on budgets already reserved on, nothing moves; otherwise
        the new target is held first (a 402 leaves the old hold pending, for the caller to
        cancel) and the old hold is released (reason "rerouted")."""
        if hold.state != "pending":
            raise HoldSettledError(f"hold {hold.id} is already {hold.state}; cannot move it")
        budgets = self._applicable(info)
        amount = self._worst_case(info, budgets)
        if not budgets and not hold.persisted:
            hold.info, hold.amount = info, amount  # nothing reserved anywhere: nothing moves
            return hold
        now = self.now()
        wanted = {(b.id, period_start(b.period, now)) for b in budgets}
        held = {(b.id, ps) for b, ps in hold.refs}
        if wanted <= held and amount <= hold.amount + EPS:
            hold.info = info
            hold.charge = tuple(r for r in hold.refs if (r[0].id, r[1]) in wanted)
            return hold
        moved = await self.hold(info)
        moved.created_at = hold.created_at
        self._take(hold, "cancelled")
        self.inflight.pop(hold.id, None)
        hold.cost = 0.0
        try:
            await self._settle(hold, "cancelled", 0.0, f"rerouted to {info.model}")
        except BaseException:
            # cancelled before the caller learnt of the new hold: it would stay pending
            self.inflight.pop(moved.id, None)
            moved.state = "cancelled"
            self.unsettled.append((moved, "cancelled", 0.0, "reroute interrupted"))
            raise
        return moved

    async def _reserve(self, h: Hold) -> None:
        assert self.db is not None
        C, L = schema.budget_counters, schema.ledger
        try:
            async with self.db.tx() as conn:
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
                        raise BudgetLimitError(b, ps, spent, reserved, h.amount)
                await conn.execute(
                    L.insert().values(
                        **self._row(h, "pending", None, None),
                        **self._recovery_info(h),
                        budget_refs=refs_text(h.refs),
                    )
                )
        except BudgetLimitError:
            raise
        except Exception as e:
            log.error("budget check failed (request refused): %s", brief(e))
            raise ServerError(
                "budget check unavailable: the accounting database did not answer",
                status=503,
                code="budget_unavailable",
            ) from e
        for b, ps in h.refs:
            self._known_counters.add((b.id, ps))

    # ---- settling ------------------------------------------------------------------------
    def _take(self, h: Hold, state: str) -> None:
        if h.state != "pending":
            raise HoldSettledError(f"hold {h.id} is already {h.state}; cannot {state[:-2]} it")
        h.state = state

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
        await self._finish(hold, outcome, "confirmed", c, None)

    async def cancel(self, hold: Hold, outcome: Outcome) -> None:
        """Release the hold (nothing charged); the usage row records the failure."""
        self._take(hold, "cancelled")
        _follow(hold, outcome)
        hold.cost = 0.0
        reason = outcome.error or f"status {outcome.status}"
        await self._finish(hold, outcome, "cancelled", 0.0, reason[:200])

    async def _finish(
        self, h: Hold, o: Outcome, status: str, final: float, reason: str | None
    ) -> None:
        """Settle and write the usage row in a task the caller's cancellation does not stop
        (a client leaving while its settlement waits on the database must not leave the hold
        pending); the caller still waits for it, unless cancelled."""
        if self.db is None:
            self.inflight.pop(h.id, None)
            return
        task = asyncio.ensure_future(self._settle_and_log(h, o, status, final, reason))
        self.settling.add(task)
        task.add_done_callback(self.settling.discard)
        await asyncio.shield(task)

    async def _settle_and_log(
        self, h: Hold, o: Outcome, status: str, final: float, reason: str | None
    ) -> None:
        try:
            await self._usage(h, o, final)
            await self._settle(h, status, final, reason)
        finally:
            self.inflight.pop(h.id, None)

    async def record(self, info: RequestInfo, outcome: Outcome) -> None:
        """The usage row of a request that never held anything (refused before any attempt:
        validation, unknown model, not allowed, budget): cost 0, its status and error."""
        h = Hold(id="-", info=info, amount=0.0, created_at=self.now(), state="cancelled")
        await self._usage(h, outcome, 0.0)

    async def _usage(self, h: Hold, o: Outcome, c: float) -> None:
        if self.usage_log is not None:
            await self.usage_log.write(h, o, c)

    def _row(self, h: Hold, status: str, final: float | None, reason: str | None) -> dict[str, Any]:
        info = h.info
        resolved = None if status == "pending" else self.now()
        return {
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
            "resolved_at": resolved,
            "reason": reason,
            "transaction_token": info.transaction_token,
            "owner": self.owner,
        }

    def _recovery_info(self, h: Hold) -> dict[str, Any]:
        """What a pending row keeps for crash recovery: a request in flight when the process
        died is charged its input estimate, not $0 (docs/accounting.md, "Exactly once, and
        after a crash"), and gets a usage row saying so."""
        info = h.info
        p = self.prices.price_for(info.model, info.deployment)
        return fit_row(
            schema.ledger,
            {
                "input_tokens_estimate": info.input_tokens_estimate,
                "amount_estimate": _prices.cost(p, Usage(info.input_tokens_estimate, 0)),
                "requested_model": info.requested_model,
                "dialect": info.dialect,
                "streamed": info.streamed,
            },
        )

    async def _settle(self, h: Hold, status: str, final: float, reason: str | None) -> None:
        if self.db is None:
            return
        try:
            if not h.persisted:
                assert self.writer is not None
                row = self._row(h, status, final, reason)
                await self.writer.put(schema.ledger, {**row, "budget_refs": None})
                return
            crossed = await self._settle_persisted(h, status, final, reason)
        except BaseException as e:
            # kept for the maintenance loop whatever stopped it (a database error, or a
            # cancellation); a settle is conditional on the row being pending: retrying is safe
            log.error("could not settle hold %s (%s); will retry: %s", h.id, status, brief(e))
            self.unsettled.append((h, status, final, reason))
            if isinstance(e, Exception):
                return
            raise
        if self.alerts is not None:
            for b, ps, spent in crossed:
                await self.alerts.check(b, ps, spent)

    async def _settle_persisted(
        self, h: Hold, status: str, final: float, reason: str | None
    ) -> list[tuple[Budget, _dt.datetime, float]]:
        """Settle a pending row and its counters in one transaction; returns the counters
        charged and their ``spent`` after it (for the alerts)."""
        assert self.db is not None
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
            where["budget_refs"] = refs_text(h.charge)
        async with self.db.tx() as conn:
            res = await conn.execute(
                update(L)
                .where(L.c.id == h.id, L.c.status == "pending")
                .values(
                    status=status,
                    amount_final=final,
                    resolved_at=self.now(),
                    reason=reason,
                    **where,
                )
            )
            release_held = res.rowcount == 1
            add = final  # what the budgets charged are charged now
            if not release_held:
                if status != "confirmed":
                    return []
                # cancelled behind our back (crash recovery / shutdown): still charge the work
                res = await conn.execute(
                    update(L)
                    .where(
                        L.c.id == h.id,
                        L.c.status == "cancelled",
                        L.c.reason.in_(("crash_recovery", "shutdown", "orphaned")),
                    )
                    .values(
                        status="confirmed",
                        amount_final=final,
                        resolved_at=self.now(),
                        reason="late_confirm",
                        **where,
                    )
                )
                if res.rowcount != 1:
                    # confirmed at its input estimate by crash recovery: charge the difference
                    before = await self._late_over_recovered(conn, h, final, where)
                    if before is None:
                        log.warning("hold %s was already settled in the ledger", h.id)
                        return []
                    add = final - before
            charge = {(b.id, ps) for b, ps in h.charge}
            for b, ps in h.refs:
                values: dict[str, Any] = {}
                if release_held:
                    values["reserved"] = release(C.c.reserved, h.amount)
                if status == "confirmed" and (b.id, ps) in charge:
                    values["spent"] = C.c.spent + add
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

    async def _late_over_recovered(
        self, conn: Any, h: Hold, final: float, where: dict[str, Any]
    ) -> float | None:
        """A late confirm of a hold crash recovery confirmed at its input estimate (its process
        was only stalled): the row takes the actual cost; returns what recovery had charged
        (None if the row was not recovered)."""
        L = schema.ledger
        mine = (L.c.id == h.id, L.c.status == "confirmed", L.c.reason == "recovered")
        got = (await conn.execute(select(L.c.amount_final).where(*mine))).first()
        if got is None:
            return None
        res = await conn.execute(
            update(L)
            .where(*mine)
            .values(amount_final=final, resolved_at=self.now(), reason="late_confirm", **where)
        )
        return float(got[0] or 0.0) if res.rowcount == 1 else None

    async def retry_unsettled(self) -> None:
        while self.unsettled:
            h, status, final, reason = self.unsettled[0]
            del self.unsettled[0]
            self.inflight[h.id] = h  # tracked while it is retried (the orphan sweep skips it)
            try:
                await self._settle(h, status, final, reason)
            finally:
                self.inflight.pop(h.id, None)
            if self.unsettled and self.unsettled[-1][0] is h:
                return  # the database still refuses: the rest waits for the next round

    def tracked(self) -> set[str]:
        """Ids of the holds this ledger still knows about (in flight, settling, to retry):
        a pending row of this process not among them is an orphan."""
        return set(self.inflight) | {u[0].id for u in self.unsettled}

    async def close(self) -> None:
        """Cancel what is still in flight (reason "shutdown") and retry the unsettled."""
        if self.settling:
            await asyncio.gather(*self.settling, return_exceptions=True)
        for h in list(self.inflight.values()):
            if h.state == "pending":
                h.state = "cancelled"
                await self._settle(h, "cancelled", 0.0, "shutdown")
        self.inflight.clear()
        await self.retry_unsettled()
