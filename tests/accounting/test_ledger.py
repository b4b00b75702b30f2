"""Holds, budgets, alerts and crash recovery, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as _dt
import random
from typing import Any

import pytest
from sqlalchemy import func, select

from dragoman.accounting import (
    Accountant,
    BudgetLimitError,
    HoldSettledError,
    KeyInfo,
    Usage,
)
from dragoman.accounting import recovery as recovery_mod
from dragoman.accounting.budgets import EPOCH, period_end, period_start
from dragoman.errors import BudgetExceededError, DragomanError
from dragoman.store import schema
from dragoman.store.db import utcnow

from .conftest import make_config, outcome, request_info

# "flat" costs $1 per million tokens in and out: 50k + 50k tokens = $0.10
TENTH = {"input_tokens": 50_000, "max_tokens": 50_000}
FULL_TENTH = Usage(input_tokens=50_000, output_tokens=50_000)


def budget_cfg(limit: float, **kw: Any) -> dict[str, Any]:
    return {"budgets": [{"scope": "global", "period": "total", "limit_usd": limit, **kw}]}


async def rows(acct: Accountant, table: Any, *where: Any) -> list[Any]:
    assert acct.engine is not None
    async with acct.engine.connect() as conn:
        return list((await conn.execute(select(table).where(*where))).all())


async def crash(a: Accountant) -> None:
    """Stop like a killed process: nothing settled, nothing flushed, its instance row left
    behind (and, in this process, no longer counted as alive)."""
    assert a.recovery is not None and a.recovery.task is not None and a.writer is not None
    a.recovery.task.cancel()
    a.writer.abandon()
    recovery_mod.LIVE.discard(a.instance_id)
    assert a.engine is not None
    await a.engine.dispose()


async def ledger_consistent(acct: Accountant) -> None:
    """spent == sum(confirmed) and reserved == sum(pending) for every budget counter."""
    spent: dict[tuple[str, _dt.datetime], float] = {}
    held: dict[tuple[str, _dt.datetime], float] = {}
    for r in await rows(acct, schema.ledger):
        for part in (r.budget_refs or "").split(","):
            if not part:
                continue
            bid, ps = part.rsplit("@", 1)
            k = (bid, _dt.datetime.fromisoformat(ps))
            if r.status == "confirmed":
                spent[k] = spent.get(k, 0.0) + r.amount_final
            elif r.status == "pending":
                held[k] = held.get(k, 0.0) + r.amount_held
    for c in await rows(acct, schema.budget_counters):
        k = (c.budget_id, c.period_start)
        assert c.spent == pytest.approx(spent.get(k, 0.0), abs=1e-9), k
        assert c.reserved == pytest.approx(held.get(k, 0.0), abs=1e-9), k


# ---- the unbudgeted (hot) path --------------------------------------------------------------


class _NoDB:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the database was touched: engine.{name}")


@pytest.mark.any_dialect
async def test_unbudgeted_hold_touches_no_database(acct: Accountant) -> None:
    assert acct.db is not None
    engine, acct.db.engine = acct.db.engine, _NoDB()  # type: ignore[assignment]
    try:
        h = await acct.hold(request_info(**TENTH))
    finally:
        acct.db.engine = engine
    assert not h.persisted and h.amount == pytest.approx(0.1)
    assert await rows(acct, schema.ledger) == []
    await acct.confirm(h, outcome(Usage(input_tokens=1000, output_tokens=2000)))
    await acct.flush()
    (led,) = await rows(acct, schema.ledger)
    assert (led.status, led.amount_held, led.amount_final) == ("confirmed", h.amount, 0.003)
    (u,) = await rows(acct, schema.usage)
    assert (u.input_tokens, u.output_tokens, u.cost) == (1000, 2000, pytest.approx(0.003))


async def test_usage_row_fields(acct: Accountant) -> None:
    key = await acct.authenticate("static-secret-1")
    info = request_info(
        "claude-sonnet-4-5",
        key,
        provider="anth",
        streamed=True,
        dialect="anthropic",
        rid="req-fields",
    )
    info.requested_model = "sonnet"
    h = await acct.hold(info)
    usage = Usage(
        input_tokens=100,
        output_tokens=200,
        cache_creation_input_tokens=300,
        cache_read_input_tokens=4000,
    )
    await acct.confirm(
        h,
        outcome(
            usage,
            model="claude-sonnet-4-5",
            provider="anth",
            latency_ms=321.0,
            ttft_ms=45.0,
            attempts=2,
        ),
    )
    await acct.flush()
    (u,) = await rows(acct, schema.usage)
    assert u.request_id == "req-fields" and u.key_id == key.id and u.key_alias == key.alias
    assert (u.requested_model, u.model, u.provider, u.dialect) == (
        "sonnet",
        "claude-sonnet-4-5",
        "anth",
        "anthropic",
    )
    assert u.streamed is True and u.status == 200 and u.attempts == 2
    assert (u.latency_ms, u.ttft_ms) == (321.0, 45.0)
    assert (
        u.input_tokens,
        u.output_tokens,
        u.cache_creation_input_tokens,
        u.cache_read_input_tokens,
    ) == (100, 200, 300, 4000)
    assert u.cost == pytest.approx((100 * 3 + 200 * 15 + 300 * 3.75 + 4000 * 0.3) / 1e6)
    assert h.cost == pytest.approx(u.cost)


@pytest.mark.any_dialect
async def test_stream_cut_short_charges_delivered(acct: Accountant) -> None:
    h = await acct.hold(request_info(streamed=True, **TENTH))
    delivered = Usage(input_tokens=50_000, output_tokens=1234)
    await acct.confirm(h, outcome(delivered, status=502, error="upstream closed the stream"))
    await acct.flush()
    (u,) = await rows(acct, schema.usage)
    assert u.status == 502 and u.output_tokens == 1234
    assert u.cost == pytest.approx((50_000 + 1234) / 1e6)


# ---- exactly once ---------------------------------------------------------------------------


@pytest.mark.parametrize("budgeted", [False, True])
async def test_exactly_once(db_url: str, budgeted: bool) -> None:
    extra = {"accounting": budget_cfg(10.0)} if budgeted else {}
    acct = await Accountant.create(make_config(db_url, **extra))
    try:
        h1 = await acct.hold(request_info(**TENTH))
        h2 = await acct.hold(request_info(**TENTH))
        assert h1.persisted is budgeted
        await acct.confirm(h1, outcome(FULL_TENTH))
        with pytest.raises(HoldSettledError):
            await acct.confirm(h1, outcome(FULL_TENTH))
        with pytest.raises(HoldSettledError):
            await acct.cancel(h1, outcome(None, status=500))
        await acct.cancel(h2, outcome(None, status=503, error="overloaded"))
        with pytest.raises(HoldSettledError):
            await acct.confirm(h2, outcome(FULL_TENTH))
        await acct.flush()
        led = {r.id: r for r in await rows(acct, schema.ledger)}
        assert len(led) == 2
        assert (led[h1.id].status, led[h1.id].amount_final) == ("confirmed", pytest.approx(0.1))
        assert (led[h2.id].status, led[h2.id].reason) == ("cancelled", "overloaded")
        usage = await rows(acct, schema.usage)
        assert sorted(u.status for u in usage) == [200, 503]
        assert sum(u.cost for u in usage) == pytest.approx(0.1)  # the failure costs nothing
        if budgeted:
            b = acct.budgets()[0]
            assert await acct.counters(b.id, EPOCH) == (pytest.approx(0.1), 0.0)
            await ledger_consistent(acct)
    finally:
        await acct.close()


async def test_concurrent_settle_is_exactly_once(db_url: str) -> None:
    acct = await Accountant.create(make_config(db_url, accounting=budget_cfg(10.0)))
    try:
        h = await acct.hold(request_info(**TENTH))
        res = await asyncio.gather(
            acct.confirm(h, outcome(FULL_TENTH)),
            acct.cancel(h, outcome(None, status=500)),
            acct.confirm(h, outcome(FULL_TENTH)),
            return_exceptions=True,
        )
        assert sum(r is None for r in res) == 1
        assert all(isinstance(r, HoldSettledError) for r in res if r is not None)
        await ledger_consistent(acct)
    finally:
        await acct.close()


# ---- budgets --------------------------------------------------------------------------------


async def _race(accts: list[Accountant], n: int) -> tuple[int, int]:
    admitted = refused = 0
    rng = random.Random(n)  # the same staggered confirms on every run (reproducible failures)

    async def one(a: Accountant) -> None:
        nonlocal admitted, refused
        try:
            h = await a.hold(request_info(**TENTH))
        except BudgetExceededError:
            refused += 1
            return
        admitted += 1
        await asyncio.sleep(rng.random() * 0.05)
        await a.confirm(h, outcome(FULL_TENTH))  # costs exactly what was held

    await asyncio.gather(*(one(accts[i % len(accts)]) for i in range(n)))
    return admitted, refused


async def test_50_concurrent_against_budget_for_10(db_url: str) -> None:
    acct = await Accountant.create(make_config(db_url, accounting=budget_cfg(1.0)))
    try:
        admitted, refused = await _race([acct], 50)
        assert admitted == 10 and refused == 40
        b = acct.budgets()[0]
        spent, reserved = await acct.counters(b.id, EPOCH)
        assert spent <= 1.0 + 1e-9 and spent == pytest.approx(1.0) and reserved == 0
        await ledger_consistent(acct)
        await acct.flush()
        assert len(await rows(acct, schema.usage)) == 10
    finally:
        await acct.close()


async def test_two_accountants_share_one_budget(db_url: str) -> None:
    """Two instances (as two processes would) on one database never overspend together."""
    cfg = make_config(db_url, accounting=budget_cfg(1.0))
    a = await Accountant.create(cfg)
    b = await Accountant.create(cfg)
    try:
        admitted, refused = await _race([a, b], 50)
        assert admitted == 10 and refused == 40
        spent, reserved = await a.counters(a.budgets()[0].id, EPOCH)
        assert spent == pytest.approx(1.0) and spent <= 1.0 + 1e-9 and reserved == 0
        await ledger_consistent(a)
    finally:
        await a.close()
        await b.close()


@pytest.mark.any_dialect
async def test_holds_without_confirm_block_admission(acct: Accountant, db_url: str) -> None:
    a = await Accountant.create(make_config(db_url, accounting=budget_cfg(0.35)))
    try:
        holds = [await a.hold(request_info(**TENTH)) for _ in range(3)]
        with pytest.raises(BudgetExceededError):
            await a.hold(request_info(**TENTH))
        await a.cancel(holds[0], outcome(None, status=500))  # releases 0.1
        holds.append(await a.hold(request_info(**TENTH)))
        # confirming below the hold releases the difference
        await a.confirm(holds[1], outcome(Usage(input_tokens=10_000)))  # $0.01
        h = await a.hold(request_info(input_tokens=40_000, max_tokens=40_000))  # $0.08
        spent, reserved = await a.counters(a.budgets()[0].id, EPOCH)
        assert spent == pytest.approx(0.01) and reserved == pytest.approx(0.28)
        for x in (holds[2], holds[3], h):
            await a.cancel(x, outcome(None, status=500))
        await ledger_consistent(a)
    finally:
        await a.close()


@pytest.mark.any_dialect
async def test_refusal_names_the_budget(db_url: str) -> None:
    cfg = make_config(
        db_url,
        accounting={
            "budgets": [
                {"scope": "model", "target": "flat", "period": "monthly", "limit_usd": 100},
                {"scope": "team", "target": "red", "period": "daily", "limit_usd": 0.15},
                {"scope": "provider", "target": "anth", "period": "weekly", "limit_usd": 0.05},
            ]
        },
    )
    acct = await Accountant.create(cfg)
    try:
        red = KeyInfo("k1", "alice", "red", None, None, {}, False, None)
        blue = KeyInfo("k2", "bob", "blue", None, None, {}, False, 0.12, "total")
        h = await acct.hold(request_info(key=red, **TENTH))
        with pytest.raises(BudgetExceededError) as e:
            await acct.hold(request_info(key=red, **TENTH))
        err = e.value
        assert isinstance(err, BudgetLimitError) and isinstance(err, DragomanError)
        assert err.status == 402 and err.type == "billing_error" and err.code == "budget_exceeded"
        assert "team 'red' daily budget" in err.message and "limit $0.1500" in err.message
        assert "remaining $0.0500" in err.message
        assert err.budget["scope"] == "team" and err.budget["remaining"] == pytest.approx(0.05)
        # another team is not affected; its key's own budget is
        h2 = await acct.hold(request_info(key=blue, **TENTH))
        with pytest.raises(BudgetExceededError, match="key 'k2' total budget"):
            await acct.hold(request_info(key=blue, input_tokens=10_000, max_tokens=20_000))
        with pytest.raises(BudgetExceededError, match="provider 'anth' weekly budget"):
            await acct.hold(request_info("claude-sonnet-4-5", provider="anth", max_tokens=8000))
        # nothing was reserved by the refused requests (all-or-nothing over budgets)
        model_b = next(b for b in acct.budgets() if b.scope == "model")
        ps = period_start("monthly", utcnow())
        assert (await acct.counters(model_b.id, ps))[1] == pytest.approx(0.2)
        await acct.confirm(h, outcome(FULL_TENTH))
        await acct.confirm(h2, outcome(FULL_TENTH))
        await ledger_consistent(acct)
    finally:
        await acct.close()


def test_period_math() -> None:
    t = _dt.datetime(2025, 3, 13, 15, 4, 5)  # a Thursday
    assert period_start("daily", t) == _dt.datetime(2025, 3, 13)
    assert period_start("weekly", t) == _dt.datetime(2025, 3, 10)  # Monday
    assert period_start("monthly", t) == _dt.datetime(2025, 3, 1)
    assert period_start("yearly", t) == _dt.datetime(2025, 1, 1)
    assert period_start("total", t) == EPOCH
    assert period_end("monthly", _dt.datetime(2025, 12, 1)) == _dt.datetime(2026, 1, 1)
    assert period_end("monthly", _dt.datetime(2025, 1, 1)) == _dt.datetime(2025, 2, 1)
    assert period_end("weekly", _dt.datetime(2025, 3, 10)) == _dt.datetime(2025, 3, 17)
    assert period_end("total", EPOCH) is None


@pytest.mark.parametrize(
    ("period", "now", "later"),
    [
        ("daily", _dt.datetime(2025, 3, 13, 23, 59), _dt.datetime(2025, 3, 14, 0, 1)),
        ("weekly", _dt.datetime(2025, 3, 16, 22, 0), _dt.datetime(2025, 3, 17, 0, 0)),
        ("monthly", _dt.datetime(2025, 2, 28, 12, 0), _dt.datetime(2025, 3, 1, 0, 0)),
    ],
)
async def test_period_rollover(db_url: str, period: str, now: Any, later: Any) -> None:
    clock = [now]
    acct = await Accountant.create(
        make_config(db_url, accounting=budget_cfg(0.25, period=period)), now=lambda: clock[0]
    )
    try:
        for _ in range(2):
            await acct.confirm(await acct.hold(request_info(**TENTH)), outcome(FULL_TENTH))
        with pytest.raises(BudgetExceededError):
            await acct.hold(request_info(**TENTH))
        clock[0] = later
        h = await acct.hold(request_info(**TENTH))  # a new period: a fresh budget
        await acct.confirm(h, outcome(FULL_TENTH))
        bid = acct.budgets()[0].id
        assert (await acct.counters(bid, period_start(period, now)))[0] == pytest.approx(0.2)
        assert (await acct.counters(bid, period_start(period, later)))[0] == pytest.approx(0.1)
        await ledger_consistent(acct)
    finally:
        await acct.close()


@pytest.mark.any_dialect
async def test_fail_closed_when_database_fails(db_url: str) -> None:
    acct = await Accountant.create(make_config(db_url, accounting=budget_cfg(10.0)))
    try:

        def broken() -> Any:
            raise OSError("connection refused")

        assert acct.db is not None
        real = acct.db.tx
        acct.db.tx = broken  # type: ignore[method-assign,assignment]
        with pytest.raises(DragomanError) as e:
            await acct.hold(request_info(**TENTH))
        assert e.value.status == 503 and not isinstance(e.value, BudgetExceededError)
        acct.db.tx = real  # type: ignore[method-assign]
    finally:
        await acct.close()


async def test_api_budget_seen_by_other_instance(db_url: str) -> None:
    cfg = make_config(db_url)
    a = await Accountant.create(cfg)
    b = await Accountant.create(cfg)
    try:
        await a.create_budget(scope="model", target="flat", period="daily", limit_usd=0.05)
        assert b.budget_book is not None
        await b.budget_book.load()  # what b's maintenance loop does every few seconds
        with pytest.raises(BudgetExceededError):
            await b.hold(request_info(**TENTH))
        # config budgets are re-synced at start: removed ones disappear, API ones stay
        c = await Accountant.create(make_config(db_url, accounting=budget_cfg(5.0)))
        assert sorted(x.source for x in c.budgets()) == ["api", "config"]
        await c.close()
        d = await Accountant.create(cfg)
        assert [x.source for x in d.budgets()] == ["api"]
        await d.close()
    finally:
        await a.close()
        await b.close()


# ---- alerts ---------------------------------------------------------------------------------


@pytest.mark.any_dialect
async def test_alerts_fire_once_per_threshold_per_period(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a webhook is https to a public host (tests/accounting/test_webhooks.py): the receiver
    # here is the Webhooks seam, recording what would be POSTed
    hooks = _RecordingWebhooks()
    hits = hooks.payloads
    clock = [_dt.datetime(2025, 5, 5, 10, 0)]
    cfg = make_config(
        db_url,
        accounting={
            "budgets": [{"scope": "global", "period": "daily", "limit_usd": 1.0}],
            "alert_webhook": "https://hooks.example.com/budget",
        },
    )

    async def spend(a: Accountant, usd: float) -> None:
        n = round(usd * 1e6)
        await a.confirm(
            await a.hold(request_info(input_tokens=n, max_tokens=0)),
            outcome(Usage(input_tokens=n)),
        )
        assert a.alerts is not None
        await a.alerts.drain()

    a = await Accountant.create(cfg, now=lambda: clock[0], webhooks=hooks)
    try:
        await spend(a, 0.3)
        assert hits == []
        await spend(a, 0.3)  # 60 %
        assert [h["threshold"] for h in hits] == [50.0]
        await spend(a, 0.1)  # 70 %: nothing new
        assert len(hits) == 1
        await spend(a, 0.2)  # 90 %
        assert [h["threshold"] for h in hits] == [50.0, 80.0]
        assert hits[1]["type"] == "warning" and hits[1]["spent_usd"] == pytest.approx(0.9)
    finally:
        await a.close()
    hooks.closed = False
    # a restart does not fire them again
    b = await Accountant.create(cfg, now=lambda: clock[0], webhooks=hooks)
    try:
        await spend(b, 0.01)
        assert len(hits) == 2
        await spend(b, 0.05)  # 96 %
        assert [h["threshold"] for h in hits] == [50.0, 80.0, 95.0]
        assert hits[2]["type"] == "critical" and hits[2]["scope"] == "global"
        clock[0] = _dt.datetime(2025, 5, 6, 9, 0)  # next day: a new period
        await spend(b, 0.55)
        assert [h["threshold"] for h in hits] == [50.0, 80.0, 95.0, 50.0]
        assert hits[3]["period_start"].startswith("2025-05-06")
    finally:
        await b.close()
    assert {u for u, _ in hooks.posted} == {"https://hooks.example.com/budget"}
    logged = [r for r in caplog.records if r.name == "dragoman.budget"]
    assert len(logged) == 4 and all(r.levelname == "WARNING" for r in logged)
    assert logged[0].budget_alert["threshold"] == 50.0


class _RecordingWebhooks:
    """A receiver that answers 200 (the Webhooks seam of alerts.py)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self.payloads: list[dict[str, Any]] = []
        self.closed = False

    async def post(self, url: str, payload: dict[str, Any]) -> int:
        self.posted.append((url, payload))
        self.payloads.append(payload)
        return 200

    async def close(self) -> None:
        self.closed = True


class _DownWebhooks:
    """A receiver that cannot be reached (the Webhooks seam of alerts.py)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self.closed = False

    async def post(self, url: str, payload: dict[str, Any]) -> int:
        self.posted.append((url, payload))
        raise OSError("connection refused")

    async def close(self) -> None:
        self.closed = True


@pytest.mark.any_dialect
async def test_alert_delivery_failure_never_fails_the_request(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = _DownWebhooks()
    cfg = make_config(
        db_url,
        accounting={
            **budget_cfg(1.0, alert_thresholds=[50]),
            "alert_webhook": "http://hooks.invalid/budget",
        },
    )
    a = await Accountant.create(cfg, webhooks=hooks)
    assert a.alerts is not None
    a.alerts.retry_delays = (0.0, 0.0)
    try:
        h = await a.hold(request_info(input_tokens=600_000, max_tokens=0))
        await a.confirm(h, outcome(Usage(input_tokens=600_000)))  # 60 %: the alert fires
        assert h.state == "confirmed" and h.cost == pytest.approx(0.6)
        assert a.alerts is not None
        await a.alerts.drain()
        # three attempts (retried with backoff), then given up; the request was never held up
        assert len(hooks.posted) == 3
        url, payload = hooks.posted[0]
        assert url == "http://hooks.invalid/budget" and payload["threshold"] == 50.0
        assert "budget alert webhook http://hooks.invalid/budget failed" in caplog.text
        await ledger_consistent(a)
    finally:
        await a.close()
    assert hooks.closed


# ---- crash recovery -------------------------------------------------------------------------


async def test_crash_recovery(db_url: str) -> None:
    cfg = make_config(db_url, accounting=budget_cfg(1.0))
    a = await Accountant.create(cfg)
    done = [await a.hold(request_info(**TENTH)) for _ in range(2)]
    for h in done:
        await a.confirm(h, outcome(Usage(input_tokens=50_000, output_tokens=10_000)))
    pending = [await a.hold(request_info(**TENTH)) for _ in range(5)]
    free = await a.hold(request_info("gpt-4o", provider="oai"))  # budgeted too (global)
    assert all(h.persisted for h in [*pending, free])
    bid = a.budgets()[0].id
    assert (await a.counters(bid, EPOCH))[1] == pytest.approx(0.5 + free.amount)
    await crash(a)  # no close(): nothing settled, nothing flushed

    b = await Accountant.create(cfg)
    try:
        assert b.recovered == 6
        led = await rows(b, schema.ledger)
        assert not [r for r in led if r.status == "pending"]
        # in flight when the process died: confirmed at their input estimate, not $0
        rec = {r.id: r for r in led if r.reason == "recovered"}
        assert len(rec) == 6 and {r.status for r in rec.values()} == {"confirmed"}
        for h in pending:
            assert rec[h.id].amount_final == pytest.approx(0.05)  # 50k input tokens at $1/M
        free_charge = rec[free.id].amount_final
        assert 0 < free_charge < free.amount
        spent, reserved = await b.counters(bid, EPOCH)
        assert spent == pytest.approx(0.12 + 0.25 + free_charge) and reserved == 0.0
        await ledger_consistent(b)
        # each has a usage row, flagged estimated, at that cost
        used = {u.request_id: u for u in await rows(b, schema.usage)}
        for h in pending:
            u = used[h.info.request_id]
            assert (u.input_tokens, u.output_tokens, u.usage_estimated) == (50_000, 0, True)
            assert u.cost == pytest.approx(0.05)
        # the budget is usable again
        admitted, _ = await _race([b], 12)
        assert admitted == int((1.0 - spent + 1e-9) / 0.1)
        # a late confirm of a recovered hold charges the work done instead of the estimate
        await b.confirm(pending[0], outcome(Usage(input_tokens=10_000)))  # $0.01
        await ledger_consistent(b)
        late = (await rows(b, schema.ledger, schema.ledger.c.id == pending[0].id))[0]
        assert (late.reason, late.amount_final) == ("late_confirm", pytest.approx(0.01))
    finally:
        await b.close()


async def test_recovery_leaves_live_instances_alone(db_url: str) -> None:
    cfg = make_config(db_url, accounting=budget_cfg(1.0))
    live = await Accountant.create(cfg)
    try:
        h = await live.hold(request_info(**TENTH))
        other = await Accountant.create(cfg)  # starts while `live` has a request in flight
        assert other.recovered == 0
        assert other.recovery is not None
        await other.recovery.recover(at_start=False)
        assert other.recovered == 0
        await other.close()
        assert [r.status for r in await rows(live, schema.ledger)] == ["pending"]
        await live.confirm(h, outcome(FULL_TENTH))
        await ledger_consistent(live)
    finally:
        await live.close()


async def test_graceful_close_settles_inflight(db_url: str) -> None:
    cfg = make_config(db_url, accounting=budget_cfg(1.0))
    a = await Accountant.create(cfg)
    await a.hold(request_info(**TENTH))
    await a.hold(request_info("gpt-4o", provider="oai"))
    await a.close()
    b = await Accountant.create(cfg)
    try:
        assert b.recovered == 0
        led = await rows(b, schema.ledger)
        assert [(r.status, r.reason) for r in led] == [("cancelled", "shutdown")] * 2
        await ledger_consistent(b)
        assert (await b.counters(b.budgets()[0].id, EPOCH)) == (0.0, 0.0)
    finally:
        await b.close()


def test_dead_process_detection() -> None:
    import os
    import subprocess
    import time

    p = subprocess.Popen(["sleep", "30"])
    try:
        assert recovery_mod.pid_alive(p.pid)
        p.kill()
        # killed but not yet reaped (a zombie: nothing waits for it yet) counts as dead, as soon
        # as the kernel has made it one
        deadline = time.monotonic() + 10
        while recovery_mod.pid_alive(p.pid):
            assert time.monotonic() < deadline, "a killed process still looks alive after 10 s"
            time.sleep(0.01)
    finally:
        p.wait()
    assert recovery_mod.pid_alive(os.getpid())
    assert not recovery_mod.pid_alive(p.pid)


@pytest.mark.any_dialect
async def test_ledger_count(acct: Accountant) -> None:
    for _ in range(3):
        await acct.cancel(await acct.hold(request_info()), outcome(None, status=429))
    await acct.flush()
    assert acct.engine is not None
    async with acct.engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(schema.ledger))).scalar_one()
    assert n == 3


def test_reused_pid_counts_as_dead() -> None:
    """An owner whose pid now belongs to another process (started at another time) is dead:
    its holds are recovered (audit #34), while the process it names, alive, is not."""
    import subprocess
    import uuid

    host, ns = recovery_mod.HOST, recovery_mod.PIDNS
    p = subprocess.Popen(["sleep", "30"])
    try:
        start = recovery_mod.proc_start(p.pid)
        assert start is not None
        rec = recovery_mod.Recovery(None, "me", now=utcnow)  # type: ignore[arg-type]
        tag = uuid.uuid4().hex[:12]
        assert not rec.is_dead(f"{host}|{ns}|{p.pid}|{start}|{tag}", {})
        reused = f"{host}|{ns}|{p.pid}|{int(start) - 1000}|{tag}"  # an earlier holder of the pid
        assert rec.is_dead(reused, {})
    finally:
        p.kill()
        p.wait()
    assert recovery_mod.new_instance_id().split("|")[3] == recovery_mod.proc_start(
        __import__("os").getpid()
    )
