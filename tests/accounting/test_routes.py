"""Admin and analytics HTTP endpoints through aiohttp's test client."""

from __future__ import annotations

import datetime as _dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dragoman.accounting import Accountant, Usage
from dragoman.accounting.budgets import period_start
from dragoman.server.admin import admin_routes
from dragoman.server.app import ACCOUNTANT, AUTH, CONFIG, errors_middleware
from dragoman.server.auth import Auth
from dragoman.store.db import utcnow

from .conftest import make_config, outcome, request_info

ADMIN = {"x-api-key": "admin-secret"}


def admin_app(acct: Accountant) -> web.Application:
    """The admin routes as ``create_app`` serves them: errors rendered by its middleware."""
    app = web.Application(middlewares=[errors_middleware])
    app[CONFIG] = acct.config
    app[ACCOUNTANT] = acct
    app[AUTH] = Auth(acct.config, acct)
    app.add_routes(admin_routes())
    return app


@pytest.fixture
async def served(db_url: str) -> AsyncIterator[tuple[Accountant, TestClient]]:
    acct = await Accountant.create(make_config(db_url))
    client = TestClient(TestServer(admin_app(acct)))
    await client.start_server()
    try:
        yield acct, client
    finally:
        await client.close()
        await acct.close()


@pytest.mark.any_dialect
async def test_admin_auth(served: tuple[Accountant, TestClient]) -> None:
    _, c = served
    for method, path in [
        ("POST", "/admin/keys"),
        ("GET", "/admin/keys"),
        ("GET", "/admin/keys/x"),
        ("PATCH", "/admin/keys/x"),
        ("DELETE", "/admin/keys/x"),
        ("POST", "/admin/credentials"),
    ]:
        for headers in ({}, {"x-api-key": "static-secret-1"}, {"x-api-key": "wrong"}):
            r = await c.request(method, path, headers=headers, json={})
            assert r.status == 401, (method, path, headers)
            body = await r.json()
            assert body["error"]["type"] == "authentication_error"
    r = await c.get("/admin/keys", headers={"Authorization": "Bearer admin-secret"})
    assert r.status == 200


@pytest.mark.any_dialect
async def test_key_lifecycle(served: tuple[Accountant, TestClient]) -> None:
    acct, c = served
    r = await c.post(
        "/admin/keys",
        headers=ADMIN,
        json={
            "alias": "ci",
            "team": "qa",
            "owner": "ops@example.com",
            "models": ["flat"],
            "budget": 0.15,
            "expires_in_days": 2,
            "metadata": {"ticket": 7},
        },
    )
    assert r.status == 201
    made = await r.json()
    secret, kid = made["secret"], made["id"]
    assert secret.startswith("dg-") and made["allowed_models"] == ["flat"]
    assert made["metadata"] == {"ticket": 7} and made["status"] == "active"
    r = await c.get("/admin/keys", headers=ADMIN)
    listed = await r.json()
    assert [k["id"] for k in listed["keys"]] == [kid] and secret not in await r.text()
    info = await acct.authenticate(secret)
    assert info is not None and info.budget_usd == 0.15
    # the key's own budget applies
    await acct.confirm(
        await acct.hold(request_info(key=info, input_tokens=50_000, max_tokens=50_000)),
        outcome(Usage(input_tokens=50_000, output_tokens=50_000)),
    )
    r = await c.get(f"/admin/keys/{kid}", headers=ADMIN)
    got = await r.json()
    assert got["budget"]["spent"] == pytest.approx(0.1)
    assert got["budget"]["remaining"] == pytest.approx(0.05)
    r = await c.patch(f"/admin/keys/{kid}", headers=ADMIN, json={"team": "dev", "budget": 1})
    assert r.status == 200 and (await r.json())["team"] == "dev"
    info = await acct.authenticate(secret)  # the cache was invalidated
    assert info is not None and info.team == "dev" and info.budget_usd == 1
    r = await c.patch(f"/admin/keys/{kid}", headers=ADMIN, json={"colour": "red"})
    assert r.status == 400 and "colour" in (await r.json())["error"]["message"]
    r = await c.delete(f"/admin/keys/{kid}", headers=ADMIN)
    assert r.status == 200 and (await r.json())["status"] == "revoked"
    assert await acct.authenticate(secret) is None
    r = await c.get("/admin/keys/nope", headers=ADMIN)
    assert r.status == 404
    r = await c.post("/admin/keys", headers=ADMIN, data=b"{not json")
    assert r.status == 400


@pytest.mark.any_dialect
async def test_credentials_endpoint(
    served: tuple[Accountant, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    acct, c = served
    r = await c.post(
        "/admin/credentials",
        headers=ADMIN,
        json={"name": "anth-prod", "provider": "anth", "api_key": "sk-ant-xyz"},
    )
    assert r.status == 201 and "sk-ant-xyz" not in await r.text()
    assert await acct.credential("anth-prod") == "sk-ant-xyz"
    r = await c.get("/admin/credentials", headers=ADMIN)
    assert [x["name"] for x in (await r.json())["credentials"]] == ["anth-prod"]
    r = await c.post("/admin/credentials", headers=ADMIN, json={"name": "x"})
    assert r.status == 400
    acct.keys.master = None  # type: ignore[union-attr]  # as if DRAGOMAN_MASTER_KEY were unset
    r = await c.post("/admin/credentials", headers=ADMIN, json={"name": "y", "api_key": "k"})
    assert r.status == 400
    assert "DRAGOMAN_MASTER_KEY" in (await r.json())["error"]["message"]
    r = await c.delete("/admin/credentials/anth-prod", headers=ADMIN)
    assert r.status == 200


@pytest.mark.any_dialect
async def test_budgets_endpoints(served: tuple[Accountant, TestClient]) -> None:
    acct, c = served
    r = await c.get("/v1/analytics/budgets")
    assert r.status == 401
    r = await c.post(
        "/v1/analytics/budgets",
        headers=ADMIN,
        json={
            "budget_type": "daily",
            "budget_limit": 1.0,
            "model": "flat",
            "alert_thresholds": [50, 95],
        },
    )
    assert r.status == 201
    made = (await r.json())["budget"]
    assert (made["scope"], made["target"], made["model"], made["budget_type"]) == (
        "model",
        "flat",
        "flat",
        "daily",
    )
    r = await c.post(
        "/v1/analytics/budgets", headers=ADMIN, json={"budget_type": "hourly", "budget_limit": 1}
    )
    assert r.status == 400
    r = await c.post(
        "/v1/analytics/budgets", headers=ADMIN, json={"budget_type": "daily", "budget_limit": -1}
    )
    assert r.status == 400
    for _ in range(6):  # $0.60 of the $1.00
        await acct.confirm(
            await acct.hold(request_info(input_tokens=50_000, max_tokens=50_000)),
            outcome(Usage(input_tokens=50_000, output_tokens=50_000)),
        )
    r = await c.get("/v1/analytics/budgets", headers={"x-api-key": "static-secret-1"})
    assert r.status == 200
    body = await r.json()
    assert body["total_budgets"] == 1 and body["message"]
    (b,) = body["budgets"]
    assert b["current_usage"] == pytest.approx(0.6)
    assert b["usage_percentage"] == pytest.approx(60.0)
    assert b["remaining_budget"] == pytest.approx(0.4)
    assert b["budget_limit"] == 1.0 and b["provider"] is None
    assert b["alerts"] == [
        {
            "type": "warning",
            "message": b["alerts"][0]["message"],
            "threshold": 50.0,
            "current_usage": pytest.approx(0.6),
        }
    ]
    ps = period_start("daily", utcnow())
    assert b["period_start"].startswith(ps.date().isoformat())
    assert b["period_end"].startswith((ps + _dt.timedelta(days=1)).date().isoformat())


@pytest.mark.any_dialect
async def test_client_budget_on_itself(served: tuple[Accountant, TestClient]) -> None:
    acct, c = served
    assert acct.keys is not None
    _, secret = await acct.keys.create(alias="me")
    _, other = await acct.keys.create(alias="other")
    me = {"Authorization": f"Bearer {secret}"}
    r = await c.post(
        "/v1/analytics/budgets", headers=me, json={"budget_type": "monthly", "budget_limit": 5}
    )
    assert r.status == 403  # global: admin only
    r = await c.post(
        "/v1/analytics/budgets",
        headers=me,
        json={"budget_type": "monthly", "budget_limit": 5, "scope": "key"},
    )
    assert r.status == 201
    r = await c.get("/v1/analytics/budgets", headers=me)
    assert (await r.json())["total_budgets"] == 1
    r = await c.get("/v1/analytics/budgets", headers={"x-api-key": other})
    assert (await r.json())["total_budgets"] == 0
    r = await c.get("/v1/analytics/budgets", headers=ADMIN)
    assert (await r.json())["total_budgets"] == 1


async def test_costs_and_stats(served: tuple[Accountant, TestClient]) -> None:
    acct, c = served
    assert acct.keys is not None
    _, secret = await acct.keys.create(alias="alice")
    alice = await acct.authenticate(secret)
    static = await acct.authenticate("static-secret-1")
    plan: list[tuple[Any, str, str, Usage, int]] = [
        (alice, "flat", "oai", Usage(input_tokens=1_000_000), 200),
        (
            alice,
            "claude-sonnet-4-5",
            "anth",
            Usage(input_tokens=1000, output_tokens=100, cache_read_input_tokens=5000),
            200,
        ),
        (static, "flat", "oai", Usage(output_tokens=500_000), 200),
        (static, "gpt-4o", "oai", None, 500),
    ]
    for key, model, prov, usage, status in plan:
        h = await acct.hold(request_info(model, key, provider=prov))
        o = outcome(usage, model=model, provider=prov, status=status)
        if status == 200:
            await acct.confirm(h, o)
        else:
            await acct.cancel(h, o)
    sonnet = (1000 * 3 + 100 * 15 + 5000 * 0.3) / 1e6
    r = await c.get("/v1/analytics/costs?days=7", headers=ADMIN)
    assert r.status == 200
    body = await r.json()
    assert body["period_days"] == 7 and body["total_requests"] == 4
    assert body["total_cost"] == pytest.approx(1.5 + sonnet)
    assert body["cost_by_provider"] == {"oai": pytest.approx(1.5), "anth": pytest.approx(sonnet)}
    assert body["cost_by_model"]["flat"] == pytest.approx(1.5)
    assert body["cost_by_key"]["alice"] == pytest.approx(1.0 + sonnet)
    assert body["cost_by_key"]["static-1"] == pytest.approx(0.5)
    (day,) = body["daily_breakdown"]
    assert day["date"] == utcnow().date().isoformat() and day["requests"] == 4
    # a client key sees its own costs only
    r = await c.get("/v1/analytics/costs", headers={"x-api-key": secret})
    mine = await r.json()
    assert mine["total_requests"] == 2 and mine["total_cost"] == pytest.approx(1.0 + sonnet)
    r = await c.get("/v1/analytics/costs?days=zero", headers=ADMIN)
    assert r.status == 400
    r = await c.get("/v1/analytics/costs?model=flat", headers=ADMIN)
    assert (await r.json())["total_requests"] == 2

    # a client key's /stats counts its own requests only (audit #22)
    r = await c.get("/stats", headers={"x-api-key": "static-secret-1"})
    assert r.status == 200
    st = await r.json()
    assert st["total_requests"] == 2 and set(st["models"]) == {"flat", "gpt-4o"}
    r = await c.get("/stats", headers=ADMIN)
    assert r.status == 200
    st = await r.json()
    assert st["total_requests"] == 4 and st["uptime_s"] >= 0
    assert st["models"]["flat"] == {
        "requests": 2,
        "input_tokens": 1_000_000,
        "output_tokens": 500_000,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "errors": 0,
    }
    assert st["models"]["gpt-4o"]["errors"] == 1
    assert st["models"]["claude-sonnet-4-5"]["cache_read_input_tokens"] == 5000
    r = await c.get("/stats")
    assert r.status == 401


async def test_open_gateway_analytics(db_url: str) -> None:
    acct = await Accountant.create(make_config(db_url, auth={"keys": [], "admin_key": None}))
    async with TestClient(TestServer(admin_app(acct))) as c:
        assert (await c.get("/stats")).status == 200
        assert (await c.get("/v1/analytics/costs")).status == 200
        r = await c.get("/admin/keys", headers={"x-api-key": "anything"})
        assert r.status == 403 and "disabled" in (await r.json())["error"]["message"]
        # an open gateway's anonymous caller creates no budget (a global one would stop
        # every request, audit #2): the admin key is needed, and there is none
        r = await c.post(
            "/v1/analytics/budgets", json={"budget_type": "total", "budget_limit": 1e-6}
        )
        assert r.status == 403 and "auth.admin_key" in (await r.json())["error"]["message"]
        assert acct.budgets() == []
    await acct.close()


@pytest.mark.any_dialect
async def test_errors_in_the_callers_dialect(served: tuple[Accountant, TestClient]) -> None:
    """Admin and analytics errors are the gateway's errors, written by its middleware: the
    Anthropic envelope for an x-api-key caller, the OpenAI one for a Bearer caller; the key is
    read like on the LLM endpoints (a bare Authorization value is not a key)."""
    _, c = served
    r = await c.get("/admin/keys", headers={"x-api-key": "wrong"})
    assert r.status == 401
    assert await r.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "admin key required"},
        "request_id": r.headers["request-id"],
    }
    r = await c.get("/admin/keys/nope", headers={"Authorization": "Bearer admin-secret"})
    assert r.status == 404
    assert await r.json() == {
        "error": {
            "message": "no key 'nope'",
            "type": "not_found_error",
            "param": None,
            "code": "not_found",
        }
    }
    r = await c.get("/v1/analytics/costs?days=0", headers={"Authorization": "Bearer admin-secret"})
    assert r.status == 400
    assert (await r.json())["error"]["code"] == "invalid_request"
    r = await c.get("/admin/keys", headers={"Authorization": "admin-secret"})
    assert r.status == 401


@pytest.mark.any_dialect
async def test_store_off(db_url: str) -> None:
    """Without the store the admin API answers 503 and the analytics are empty, not errors."""
    acct = await Accountant.create(make_config(db_url, store={"enabled": False}))
    assert acct.engine is None and acct.keys is None
    async with TestClient(TestServer(admin_app(acct))) as c:
        r = await c.get("/admin/keys", headers=ADMIN)
        assert r.status == 503
        assert (await r.json())["error"]["message"] == "the store is disabled"
        body = {"budget_type": "daily", "budget_limit": 1}
        r = await c.post("/v1/analytics/budgets", headers=ADMIN, json=body)
        assert r.status == 503
        r = await c.get("/v1/analytics/budgets", headers=ADMIN)
        assert (r.status, (await r.json())["total_budgets"]) == (200, 0)
        r = await c.get("/v1/analytics/costs?days=3", headers=ADMIN)
        costs = await r.json()
        assert (r.status, costs["period_days"], costs["total_requests"]) == (200, 3, 0)
        r = await c.get("/stats", headers={"x-api-key": "static-secret-1"})
        st = await r.json()
        assert (r.status, st["models"], st["total_requests"]) == (200, {}, 0)
        r = await c.get("/stats", headers={"x-api-key": "not-a-key"})
        assert r.status == 401
    await acct.close()


@pytest.mark.any_dialect
async def test_key_lifetime_too_long_is_a_400(served: tuple[Accountant, TestClient]) -> None:
    """Found by tests/fuzz/test_schemathesis.py: ``days: 5.8e16`` overflowed a timedelta (500)."""
    _, c = served
    for field in ("days", "expires_in_days", "duration_days"):
        r = await c.post("/admin/keys", headers=ADMIN, json={field: 5.872604906424338e16})
        assert r.status == 400, await r.text()
        body = await r.json()
        assert (
            body["error"]["type"] == "invalid_request_error" and "36600" in body["error"]["message"]
        )
        r = await c.patch("/admin/keys/nope", headers=ADMIN, json={field: 1e300})
        assert r.status == 400, await r.text()
    r = await c.post("/admin/keys", headers=ADMIN, json={"days": 36600})
    assert r.status == 201
