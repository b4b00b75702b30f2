"""The books of one request: a hold on the deployment each attempt goes to, settled exactly once
on the deployment that served, at the cost of what was delivered (a stream's at its end).

The hold is taken per attempt (``ex.on_attempt``, run by ``dispatch`` once the deployment is
chosen): the first attempt holds, a retry or fallback elsewhere moves the hold
(``Accountant.retarget``), so every budget the request is charged to was checked first, and
none it is not charged to keeps it (docs/accounting.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from ..accounting.types import Outcome, RequestInfo
from ..core.exchange import Exchange, Reply
from ..core.pipeline import Next
from ..core.runtime import Runtime
from ..core.streams import StreamOutcome
from ..errors import DragomanError
from ..routing.deployments import Deployment
from ..routing.models import ModelRoute
from ..store.brief import brief
from ..usage import Usage

log = logging.getLogger("dragoman.ledger")


class Ledger:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        #: settlements still being written (see settle)
        self._books: set[asyncio.Future[None]] = set()

    async def __call__(self, ex: Exchange, next: Next) -> Reply:
        if self.rt.accountant is None:
            return await next(ex)
        ex.on_attempt.append(self.cover)
        try:
            reply = await next(ex)
        except DragomanError as err:
            await self.settle(ex, None, err.status, err.message)
            raise
        except Exception as exc:
            await self.settle(ex, None, 500, f"internal error: {type(exc).__name__}")
            raise
        except BaseException:
            await self.settle(ex, None, 499, "cancelled")
            raise
        if reply.stream is None:
            await self.settle(ex, ex.usage, 200, None)
        else:

            async def ended(o: StreamOutcome) -> None:
                await self.settle(ex, o.usage, o.status, o.error)

            reply.on_close(ended)
        return reply

    async def refused(self, ex: Exchange, status: int, message: str) -> None:
        """A request refused before it reached this stage (its body read: validation, an
        unknown model, the model ACL): its usage row alone."""
        if ex.parsed:
            await self.settle(ex, None, status, message)

    async def drain(self) -> None:
        """Wait (bounded) for the settlements still being written (shutdown)."""
        if self._books:
            await asyncio.wait(list(self._books), timeout=10)

    def request_info(
        self, ex: Exchange, route: ModelRoute | None, dep: Deployment | None
    ) -> RequestInfo:
        """What the ledger needs to know about a request on ``dep`` (the deployment it is
        tried on); no route: a request refused before routing (its usage row only)."""
        body = ex.body if isinstance(ex.body, dict) else {}
        requested = ex.requested_model or _model_name(body)
        return RequestInfo(
            request_id=ex.request_id,
            key=ex.key,
            requested_model=requested,
            model=route.name if route else requested,
            provider=dep.provider.name if dep else "",
            deployment=dep.name if dep else None,
            dialect=ex.front,
            streamed=bool(body.get("stream")),
            input_tokens_estimate=ex.input_estimate() if route else 0,
            max_tokens=_output_cap(body, route, ex) if route else 0,
        )

    async def cover(self, ex: Exchange, route: ModelRoute, dep: Deployment) -> None:
        """Hold the worst case for this attempt's deployment before calling it (re-reserving
        on a move only when the new target's budgets or worst case are not covered already)."""
        acct = self.rt.accountant
        info = self.request_info(ex, route, dep)
        ex.hold = await (acct.hold(info) if ex.hold is None else acct.retarget(ex.hold, info))

    async def settle(
        self, ex: Exchange, usage: Usage | None, status: int, error: str | None
    ) -> None:
        """Write the books for this request, exactly once: confirm the hold at the cost of
        what was delivered (an upstream working on the request when it was cancelled is
        charged at least the input estimate), cancel it when nothing was, and without a hold
        (refused before any attempt) record the usage row alone."""
        acct = self.rt.accountant
        if acct is None or ex.settled:
            return
        ex.settled = True
        if usage is None and ex.busy:
            usage = Usage(ex.input_estimate(), 0, estimated=True)
        route = ex.route or (ex.decision.route if ex.decision else None)
        dep = ex.deployment
        outcome = Outcome(
            status=status,
            usage=usage,
            model=route.name if route else (ex.requested_model or _model_name(ex.body)),
            provider=dep.provider.name if dep else "",
            deployment=dep.name if dep else None,
            latency_ms=(time.perf_counter() - ex.started) * 1000,
            ttft_ms=ex.ttft * 1000 if ex.ttft is not None else None,
            attempts=ex.attempts,
            error=error,
        )
        hold, ex.hold = ex.hold, None
        if hold is None:
            books = acct.record(self.request_info(ex, route, dep), outcome)
        elif status < 300 or (usage is not None and usage.billable):
            books = acct.confirm(hold, outcome)
        else:
            books = acct.cancel(hold, outcome)
        if hold is None or not hold.persisted:
            await self._write(books, ex.request_id)
            return
        # a database transaction: it must complete even if this request is cancelled meanwhile
        # (a client that leaves right after the last byte cancels its handler), or the hold
        # would stay pending with its reservation
        task = asyncio.ensure_future(self._write(books, ex.request_id))
        self._books.add(task)
        task.add_done_callback(self._books.discard)
        await asyncio.shield(task)

    async def _write(self, books: Awaitable[None], request_id: str) -> None:
        try:
            await books
        except Exception as e:  # the books must never break a response
            # type and short message only: no SQL, no bound values (audit #30)
            log.error("ledger settle failed for %s: %s", request_id, brief(e))
            log.debug("ledger settle failure for %s", request_id, exc_info=True)


def _model_name(body: Any) -> str:
    m = body.get("model") if isinstance(body, dict) else None
    return m[:200] if isinstance(m, str) else ""


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _output_cap(body: dict[str, Any], route: ModelRoute, ex: Exchange) -> int:
    """The most output tokens the upstream may produce for this request: the larger of
    ``max_tokens`` and ``max_completion_tokens`` (an upstream may honour either) times ``n``;
    without either, the model's output cap, else what is left of its context window."""
    caps = [v for v in (_int(body.get("max_tokens")), _int(body.get("max_completion_tokens"))) if v]
    if caps:
        most = max(caps)
    else:
        mc = route.config
        most = mc.max_output_tokens or mc.default_max_tokens or 0
        if not most and mc.context_window:
            most = mc.context_window - ex.input_estimate()
        most = most if most > 0 else 4096
    n = _int(body.get("n")) or 1
    return max(most, 0) * max(n, 1)
