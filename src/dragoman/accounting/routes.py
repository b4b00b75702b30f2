"""Admin and analytics HTTP endpoints (aiohttp).

Admin (``auth.admin_key`` as ``x-api-key`` or ``Authorization: Bearer``; 401 otherwise):
``POST/GET /admin/keys``, ``GET/PATCH/DELETE /admin/keys/{id}``,
``POST/GET /admin/credentials``, ``DELETE /admin/credentials/{name}``,
``DELETE /admin/budgets/{id}``.

Analytics (any valid client key, or the admin key; open when the gateway has neither static keys
nor an admin key): ``GET/POST /v1/analytics/budgets``, ``GET /v1/analytics/costs?days=7``,
``GET /stats``. A client key sees its own costs and the budgets that apply to it, and may create
budgets on itself only; the admin key sees and creates everything.

Errors: ``{"error": {"message", "type", "code"}}``.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from sqlalchemy import case, func, select

from dragoman.accounting.budgets import (
    PERIODS,
    SCOPES,
    Budget,
    key_budget,
    period_end,
    period_start,
)
from dragoman.accounting.types import KeyInfo
from dragoman.store import schema
from dragoman.store.db import utcnow
from dragoman.store.secrets import MasterKeyMissingError

if TYPE_CHECKING:
    from dragoman.accounting.accountant import Accountant

_ADMIN = "admin"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def _error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    return _json({"error": {"message": message, "type": type_, "code": code}}, status)


def _unauthorized(msg: str = "invalid or missing API key") -> web.Response:
    return _error(401, msg, "authentication_error", "invalid_api_key")


def _bad(msg: str) -> web.Response:
    return _error(400, msg, "invalid_request_error", "invalid_request")


def _not_found(msg: str) -> web.Response:
    return _error(404, msg, "not_found_error", "not_found")


def _secret(request: web.Request) -> str | None:
    k = request.headers.get("x-api-key")
    if k:
        return k.strip()
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return auth.strip() or None


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        data = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        return _bad("the body is not valid JSON")
    if not isinstance(data, dict):
        return _bad("the body must be a JSON object")
    return data


def _iso(d: _dt.datetime | None) -> str | None:
    return None if d is None else d.replace(tzinfo=_dt.UTC).isoformat()


def make_routes(acct: Accountant) -> list[web.RouteDef]:
    cfg = acct.config

    def is_admin(request: web.Request) -> bool:
        return acct.admin_ok(_secret(request))

    async def caller(request: web.Request) -> str | KeyInfo | web.Response | None:
        """ "admin", a KeyInfo, None (open gateway), or a 401 response."""
        secret = _secret(request)
        if acct.admin_ok(secret):
            return _ADMIN
        if secret:
            info = await acct.authenticate(secret)
            if info is not None:
                return info
        if not cfg.auth.keys and not cfg.auth.admin_key:
            return None
        return _unauthorized()

    def admin_only(handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not is_admin(request):
                if not cfg.auth.admin_key:
                    return _unauthorized("the admin API is disabled: set auth.admin_key")
                return _unauthorized("admin key required")
            if acct.keys is None:
                return _error(503, "the store is disabled", "api_error", "store_disabled")
            return await handler(request)

        return wrapped

    # ---- keys ------------------------------------------------------------------------------
    def key_fields(data: dict[str, Any], creating: bool) -> dict[str, Any] | web.Response:
        out: dict[str, Any] = {}
        names = {
            "alias": "alias",
            "team": "team",
            "owner": "owner",
            "models": "allowed_models",
            "allowed_models": "allowed_models",
            "budget": "budget_usd",
            "budget_usd": "budget_usd",
            "max_budget": "budget_usd",
            "budget_period": "budget_period",
            "metadata": "metadata",
            "expires_at": "expires_at",
        }
        for k, v in data.items():
            if k in names:
                out[names[k]] = v
            elif k in ("expires_in_days", "days", "duration_days"):
                if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                    return _bad(f"{k} must be a positive number of days")
                out["expires_at"] = utcnow() + _dt.timedelta(days=float(v))
            else:
                return _bad(f"unknown field {k!r}")
        return out

    @admin_only
    async def create_key(request: web.Request) -> web.StreamResponse:
        data = await _body(request)
        if isinstance(data, web.Response):
            return data
        fields = key_fields(data, True)
        if isinstance(fields, web.Response):
            return fields
        assert acct.keys is not None
        try:
            pub, secret = await acct.keys.create(**fields)
        except ValueError as e:
            return _bad(str(e))
        return _json({**pub, "secret": secret}, 201)

    @admin_only
    async def list_keys(request: web.Request) -> web.StreamResponse:
        assert acct.keys is not None
        keys = await acct.keys.list()
        return _json({"keys": keys, "total": len(keys)})

    @admin_only
    async def get_key(request: web.Request) -> web.StreamResponse:
        assert acct.keys is not None
        pub = await acct.keys.get(request.match_info["id"])
        if pub is None:
            return _not_found(f"no key {request.match_info['id']!r}")
        if pub["budget_usd"] is not None:
            ps = period_start(pub["budget_period"], utcnow())
            spent, reserved = await acct.counters(f"key-{pub['id']}"[:64], ps)
            pub["budget"] = {
                "period_start": _iso(ps),
                "spent": spent,
                "reserved": reserved,
                "remaining": max(pub["budget_usd"] - spent - reserved, 0.0),
            }
        return _json(pub)

    @admin_only
    async def patch_key(request: web.Request) -> web.StreamResponse:
        data = await _body(request)
        if isinstance(data, web.Response):
            return data
        fields = key_fields(data, False)
        if isinstance(fields, web.Response):
            return fields
        assert acct.keys is not None
        try:
            pub = await acct.keys.update(request.match_info["id"], **fields)
        except ValueError as e:
            return _bad(str(e))
        acct.invalidate_keys()
        if pub is None:
            return _not_found(f"no key {request.match_info['id']!r}")
        return _json(pub)

    @admin_only
    async def revoke_key(request: web.Request) -> web.StreamResponse:
        assert acct.keys is not None
        pub = await acct.keys.revoke(request.match_info["id"])
        acct.invalidate_keys()
        if pub is None:
            return _not_found(f"no key {request.match_info['id']!r}")
        return _json(pub)

    # ---- credentials -----------------------------------------------------------------------
    @admin_only
    async def put_credential(request: web.Request) -> web.StreamResponse:
        data = await _body(request)
        if isinstance(data, web.Response):
            return data
        name = data.get("name")
        value = data.get("api_key", data.get("value", data.get("secret")))
        provider = data.get("provider")
        if not isinstance(name, str) or not name:
            return _bad("'name' is required")
        if not isinstance(value, str) or not value:
            return _bad("'api_key' is required")
        if provider is not None and not isinstance(provider, str):
            return _bad("'provider' must be a string")
        assert acct.keys is not None
        try:
            out = await acct.keys.put_credential(name, value, provider)
        except MasterKeyMissingError as e:
            return _error(400, str(e), "invalid_request_error", "master_key_missing")
        acct._cred_cache.pop(name, None)
        return _json(out, 201)

    @admin_only
    async def list_credentials(request: web.Request) -> web.StreamResponse:
        assert acct.keys is not None
        return _json({"credentials": await acct.keys.list_credentials()})

    @admin_only
    async def delete_credential(request: web.Request) -> web.StreamResponse:
        assert acct.keys is not None
        name = request.match_info["name"]
        acct._cred_cache.pop(name, None)
        if not await acct.keys.delete_credential(name):
            return _not_found(f"no credential {name!r}")
        return _json({"name": name, "deleted": True})

    @admin_only
    async def delete_budget(request: web.Request) -> web.StreamResponse:
        bid = request.match_info["id"]
        if not await acct.delete_budget(bid):
            return _not_found(f"no API-created budget {bid!r} (config budgets live in the config)")
        return _json({"id": bid, "deleted": True})

    # ---- analytics -------------------------------------------------------------------------
    def visible(b: Budget, who: str | KeyInfo | None) -> bool:
        if not isinstance(who, KeyInfo):
            return True
        if b.scope == "key":
            return b.target in (who.id, who.alias)
        if b.scope == "team":
            return who.team is not None and b.target == who.team
        return True

    async def budget_views(budgets: list[Budget]) -> list[dict[str, Any]]:
        assert acct.engine is not None
        now = utcnow()
        C = schema.budget_counters
        starts = {b.id: period_start(b.period, now) for b in budgets}
        counters: dict[tuple[str, _dt.datetime], tuple[float, float]] = {}
        if budgets:
            async with acct.engine.connect() as conn:
                rows = await conn.execute(
                    select(C.c.budget_id, C.c.period_start, C.c.spent, C.c.reserved).where(
                        C.c.budget_id.in_(list(starts))
                    )
                )
                for r in rows:
                    counters[(r.budget_id, r.period_start)] = (float(r.spent), float(r.reserved))
        out = []
        for b in budgets:
            ps = starts[b.id]
            spent, reserved = counters.get((b.id, ps), (0.0, 0.0))
            pct = spent / b.limit_usd * 100.0 if b.limit_usd > 0 else 0.0
            alerts = [
                {
                    "type": "critical" if t >= 90 else "warning",
                    "message": f"{b.describe()} at {pct:.1f}% (threshold {t:g}%)",
                    "threshold": t,
                    "current_usage": spent,
                }
                for t in sorted(b.alert_thresholds)
                if pct >= t
            ]
            pe = period_end(b.period, ps)
            out.append(
                {
                    "id": b.id,
                    "budget_type": b.period,
                    "budget_limit": b.limit_usd,
                    "current_usage": spent,
                    "reserved": reserved,
                    "usage_percentage": round(pct, 4),
                    "remaining_budget": max(b.limit_usd - spent - reserved, 0.0),
                    "provider": b.target if b.scope == "provider" else None,
                    "model": b.target if b.scope == "model" else None,
                    "scope": b.scope,
                    "target": b.target,
                    "source": b.source,
                    "alert_thresholds": list(b.alert_thresholds),
                    "alerts": alerts,
                    "period_start": _iso(ps) if b.period != "total" else None,
                    "period_end": _iso(pe),
                }
            )
        return out

    async def get_budgets(request: web.Request) -> web.StreamResponse:
        who = await caller(request)
        if isinstance(who, web.Response):
            return who
        if acct.engine is None:
            return _json({"message": "Budgets retrieved", "budgets": [], "total_budgets": 0})
        budgets = [b for b in acct.budgets() if visible(b, who)]
        if isinstance(who, KeyInfo):
            kb = key_budget(who)
            if kb is not None:
                budgets.append(kb)
        elif acct.keys is not None:
            async with acct.engine.connect() as conn:
                K = schema.keys
                rows = await conn.execute(
                    select(K.c.id, K.c.budget_usd, K.c.budget_period).where(
                        K.c.budget_usd.is_not(None), K.c.revoked_at.is_(None)
                    )
                )
                for r in rows:
                    budgets.append(
                        Budget(
                            id=f"key-{r.id}"[:64],
                            scope="key",
                            target=r.id,
                            period=r.budget_period,
                            limit_usd=float(r.budget_usd),
                            source="key",
                        )
                    )
        views = await budget_views(budgets)
        return _json(
            {"message": "Budgets retrieved", "budgets": views, "total_budgets": len(views)}
        )

    async def post_budget(request: web.Request) -> web.StreamResponse:
        who = await caller(request)
        if isinstance(who, web.Response):
            return who
        if acct.engine is None:
            return _error(503, "the store is disabled", "api_error", "store_disabled")
        data = await _body(request)
        if isinstance(data, web.Response):
            return data
        period = data.get("budget_type", data.get("period"))
        limit = data.get("budget_limit", data.get("limit_usd"))
        if period not in PERIODS:
            return _bad(f"budget_type must be one of {', '.join(PERIODS)}")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
            return _bad("budget_limit must be a number > 0")
        model, provider = data.get("model"), data.get("provider")
        scope = data.get("scope")
        target = data.get("target")
        if scope is None:
            if model:
                scope, target = "model", model
            elif provider:
                scope, target = "provider", provider
            else:
                scope = "global"
        if scope not in SCOPES:
            return _bad(f"scope must be one of {', '.join(SCOPES)}")
        if scope != "global" and not isinstance(target, str | type(None)):
            return _bad("target must be a string")
        if isinstance(who, KeyInfo):
            if scope != "key" or target not in (None, who.id, who.alias):
                return _error(
                    403,
                    "a client key may only create budgets on itself (scope 'key')",
                    "permission_error",
                    "forbidden",
                )
            target = who.id
        if scope != "global" and not target:
            return _bad(f"a {scope} budget needs a target")
        thresholds = data.get("alert_thresholds", [50, 80, 95])
        if not isinstance(thresholds, list) or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 100
            for t in thresholds
        ):
            return _bad("alert_thresholds must be a list of percentages (0-100]")
        webhook = data.get("webhook")
        if webhook is not None and not isinstance(webhook, str):
            return _bad("webhook must be a URL")
        if isinstance(who, KeyInfo):
            webhook = None
        b = await acct.create_budget(
            scope=scope,
            target=target,
            period=period,
            limit_usd=float(limit),
            alert_thresholds=[float(t) for t in thresholds],
            webhook=webhook,
        )
        view = (await budget_views([b]))[0]
        return _json({"message": "Budget created", "budget": view}, 201)

    async def costs(request: web.Request) -> web.StreamResponse:
        who = await caller(request)
        if isinstance(who, web.Response):
            return who
        try:
            days = int(request.query.get("days", "7"))
            if not 1 <= days <= 3660:
                raise ValueError
        except ValueError:
            return _bad("days must be an integer from 1 to 3660")
        empty = {
            "period_days": days,
            "total_cost": 0.0,
            "total_requests": 0,
            "cost_by_provider": {},
            "cost_by_model": {},
            "cost_by_key": {},
            "daily_breakdown": [],
        }
        if acct.engine is None:
            return _json(empty)
        await acct.flush()
        U = schema.usage
        conds = [U.c.ts >= utcnow() - _dt.timedelta(days=days)]
        if isinstance(who, KeyInfo):
            conds.append(U.c.key_id == who.id)
        if request.query.get("provider"):
            conds.append(U.c.provider == request.query["provider"])
        if request.query.get("model"):
            conds.append(U.c.model == request.query["model"])
        total, n = func.coalesce(func.sum(U.c.cost), 0.0), func.count()
        out = dict(empty)
        async with acct.engine.connect() as conn:
            row = (await conn.execute(select(total, n).where(*conds))).one()
            out["total_cost"], out["total_requests"] = float(row[0]), int(row[1])
            for col, name in ((U.c.provider, "cost_by_provider"), (U.c.model, "cost_by_model")):
                rows = await conn.execute(select(col, total).where(*conds).group_by(col))
                out[name] = {r[0]: float(r[1]) for r in rows}
            rows = await conn.execute(
                select(U.c.key_id, func.max(U.c.key_alias), total)
                .where(*conds)
                .group_by(U.c.key_id)
            )
            out["cost_by_key"] = {(r[1] or r[0] or "anonymous"): float(r[2]) for r in rows}
            day = func.date(U.c.ts)
            rows = await conn.execute(
                select(day, total, n).where(*conds).group_by(day).order_by(day)
            )
            out["daily_breakdown"] = [
                {"date": str(r[0])[:10], "cost": float(r[1]), "requests": int(r[2])} for r in rows
            ]
        return _json(out)

    async def stats(request: web.Request) -> web.StreamResponse:
        who = await caller(request)
        if isinstance(who, web.Response):
            return who
        models: dict[str, dict[str, int]] = {}
        total = 0
        if acct.engine is not None:
            await acct.flush()
            U = schema.usage
            async with acct.engine.connect() as conn:
                rows = await conn.execute(
                    select(
                        U.c.model,
                        func.count(),
                        func.coalesce(func.sum(U.c.input_tokens), 0),
                        func.coalesce(func.sum(U.c.output_tokens), 0),
                        func.coalesce(func.sum(U.c.cache_read_input_tokens), 0),
                        func.coalesce(func.sum(U.c.cache_creation_input_tokens), 0),
                        func.coalesce(func.sum(case((U.c.status >= 400, 1), else_=0)), 0),
                    ).group_by(U.c.model)
                )
                for r in rows:
                    models[r[0]] = {
                        "requests": int(r[1]),
                        "input_tokens": int(r[2]),
                        "output_tokens": int(r[3]),
                        "cache_read_input_tokens": int(r[4]),
                        "cache_creation_input_tokens": int(r[5]),
                        "errors": int(r[6]),
                    }
                    total += int(r[1])
        return _json({"models": models, "total_requests": total, "uptime_s": acct.uptime()})

    return [
        web.post("/admin/keys", create_key),
        web.get("/admin/keys", list_keys),
        web.get("/admin/keys/{id}", get_key),
        web.patch("/admin/keys/{id}", patch_key),
        web.delete("/admin/keys/{id}", revoke_key),
        web.post("/admin/credentials", put_credential),
        web.get("/admin/credentials", list_credentials),
        web.delete("/admin/credentials/{name}", delete_credential),
        web.delete("/admin/budgets/{id}", delete_budget),
        web.get("/v1/analytics/budgets", get_budgets),
        web.post("/v1/analytics/budgets", post_budget),
        web.get("/v1/analytics/costs", costs),
        web.get("/stats", stats),
    ]
