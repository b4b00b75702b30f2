"""Holds that follow the target that serves (``Accountant.retarget``), the unpriced-model rule,
and usage rows without a hold (``record``), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from dragoman.accounting import Accountant, BudgetLimitError, Usage
from dragoman.accounting.budgets import EPOCH, UnpricedModelError
from dragoman.store import schema

from .conftest import make_config, outcome, request_info
from .test_ledger import ledger_consistent, rows

MODELS = {
    "flat": {"provider": "oai", "model": "local-x", "prices": {"input": 1, "output": 1}},
    "flat-a": {"provider": "anth", "model": "local-y", "prices": {"input": 1, "output": 1}},
    "dear": {"provider": "anth", "model": "local-z", "prices": {"input": 10, "output": 10}},
    "nopr": {"provider": "oai", "model": "nobody-priced-this"},
}


def _cfg(url: str, budgets: list[dict[str, Any]]) -> Any:
    return make_config(
        url,
        models={**MODELS, "gpt-4o": {"provider": "oai"}},
        accounting={"budgets": budgets},
    )


def _provider(target: str, limit: float) -> dict[str, Any]:
    return {"scope": "provider", "target": target, "period": "total", "limit_usd": limit}


async def _counter(a: Accountant, target: str) -> tuple[float, float]:
    b = next(b for b in a.budgets() if b.target == target)
    return await a.counters(b.id, EPOCH)


async def test_retarget_moves_the_hold_to_the_provider_that_serves(db_url: str) -> None:
    a = await Accountant.create(_cfg(db_url, [_provider("oai", 1.0), _provider("anth", 1.0)]))
    try:
        h = await a.hold(request_info("flat", provider="oai", input_tokens=1000, max_tokens=1000))
        assert await _counter(a, "oai") == (0.0, pytest.approx(0.002))
        moved = await a.retarget(
            h, request_info("flat-a", provider="anth", input_tokens=1000, max_tokens=1000)
        )
        assert moved is not h and h.state == "cancelled"
        assert await _counter(a, "oai") == (0.0, 0.0)  # released where it no longer goes
        assert await _counter(a, "anth") == (0.0, pytest.approx(0.002))
        await a.confirm(moved, outcome(Usage(500, 100), model="flat-a", provider="anth"))
        assert await _counter(a, "anth") == (pytest.approx(0.0006), 0.0)
        assert await _counter(a, "oai") == (0.0, 0.0)
        led = sorted((r.status, r.provider, r.reason) for r in await rows(a, schema.ledger))
        assert led == [("cancelled", "oai", "rerouted to flat-a"), ("confirmed", "anth", None)]
        await ledger_consistent(a)
    finally:
        await a.close()


async def test_retarget_within_what_is_held_moves_nothing(db_url: str) -> None:
    """Same budgets, smaller worst case: the hold stays, and is charged to the new target only
    on the budgets that apply to it."""
    glob = {"scope": "global", "period": "total", "limit_usd": 1.0}
    a = await Accountant.create(_cfg(db_url, [glob, _provider("anth", 1.0)]))
    try:
        h = await a.hold(request_info("dear", provider="anth", input_tokens=1000, max_tokens=1000))
        moved = await a.retarget(
            h, request_info("flat", provider="oai", input_tokens=1000, max_tokens=1000)
        )
        assert moved is h and h.state == "pending"
        await a.confirm(h, outcome(Usage(1000, 1000), model="flat", provider="oai"))
        g = next(b for b in a.budgets() if b.scope == "global")
        assert await a.counters(g.id, EPOCH) == (pytest.approx(0.002), 0.0)
        assert await _counter(a, "anth") == (0.0, 0.0)  # held there, never charged there
        (row,) = await rows(a, schema.ledger)
        assert (row.status, row.model, row.provider) == ("confirmed", "flat", "oai")
        await ledger_consistent(a)
    finally:
        await a.close()


async def test_retarget_refused_leaves_the_old_hold_to_cancel(db_url: str) -> None:
    a = await Accountant.create(_cfg(db_url, [_provider("anth", 0.001)]))
    try:
        h = await a.hold(request_info("flat", provider="oai", input_tokens=1000, max_tokens=1000))
        with pytest.raises(BudgetLimitError):
            await a.retarget(
                h, request_info("flat-a", provider="anth", input_tokens=1000, max_tokens=1000)
            )
        assert h.state == "pending"
        await a.cancel(h, outcome(None, status=402, error="budget"))
        assert await _counter(a, "anth") == (0.0, 0.0)
    finally:
        await a.close()


async def test_unpriced_model_refused_only_under_a_budget(db_url: str) -> None:
    a = await Accountant.create(_cfg(db_url, [_provider("oai", 5.0)]))
    try:
        with pytest.raises(UnpricedModelError) as e:
            await a.hold(request_info("nopr", provider="oai"))
        assert e.value.status == 402 and e.value.type == "billing_error"
        assert "'nopr'" in e.value.message and "no price" in e.value.message
        # moving a hold onto an unpriced model is refused too (its worst case is unknown)
        h = await a.hold(request_info("flat", provider="oai"))
        with pytest.raises(UnpricedModelError):
            await a.retarget(h, request_info("nopr", provider="oai"))
        await a.cancel(h, outcome(None, status=402))
        # no budget applies (another provider): served, at zero cost
        free = await a.hold(request_info("nopr", provider="anth"))
        await a.confirm(free, outcome(Usage(10, 10), model="nopr", provider="anth"))
        assert free.cost == 0.0
        assert a.prices.unpriced() == ["nopr"]
    finally:
        await a.close()


async def test_record_writes_a_usage_row_and_no_ledger_row(db_url: str) -> None:
    a = await Accountant.create(_cfg(db_url, []))
    try:
        info = request_info("flat", rid="req_refused")
        await a.record(info, outcome(None, status=403, error="not allowed"))
        await a.flush()
        (u,) = await rows(a, schema.usage)
        assert (u.request_id, u.status, u.cost, u.error) == ("req_refused", 403, 0.0, "not allowed")
        assert await rows(a, schema.ledger) == []
    finally:
        await a.close()
