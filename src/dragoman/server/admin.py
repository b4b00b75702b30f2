"""Admin and analytics HTTP endpoints, over the Accountant's public methods and queries.

Admin (``auth.admin_key`` as ``x-api-key`` or ``Authorization: Bearer``; 401 otherwise, 403
when no admin key is configured): ``POST/GET /admin/keys``, ``GET/PATCH/DELETE /admin/keys/{id}``,
``POST/GET /admin/credentials``, ``DELETE /admin/credentials/{name}``,
``DELETE /admin/budgets/{id}``.

Analytics (any valid client key, or the admin key; open while the gateway is open):
``GET/POST /v1/analytics/budgets``, ``GET /v1/analytics/costs?days=7``, ``GET /stats``. A client
key sees its own usage and the budgets that apply to it, and may create budgets (no webhook) on
itself only; the admin key sees and creates everything; an open gateway's anonymous caller sees
the usage made without a key and creates nothing (docs/security.md).

Errors are ``DragomanError``s: the app's error middleware writes them in the caller's dialect,
like every other error of the gateway. The key is read by the app's one key extractor.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..accounting.budgets import PERIODS, SCOPES, key_budget, key_budget_id, period_start
from ..accounting.queries import empty_costs, iso
from ..accounting.types import Budget, KeyInfo
from ..errors import (
    DragomanError,
    InvalidRequestError,
    PermissionDeniedError,
    ServerError,
    error_for,
)
from ..guard.urls import webhook_refusal
from ..stages.auth import client_secret
from ..store.secrets import MasterKeyMissingError
from . import timeouts
from .app import ACCOUNTANT, AUTH, CONFIG

if TYPE_CHECKING:
    from ..accounting.service import Accountant
    from ..store.keys import KeyRepo

#: who is asking: the admin, a client key, or nobody (an open gateway)
Caller = str | KeyInfo | None
_ADMIN = "admin"
AdminHandler = Callable[[web.Request, "Accountant", "KeyRepo"], Awaitable[web.StreamResponse]]

#: the request's names for the stored key fields
_KEY_FIELDS = {
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
    "rpm": "rpm",
    "tpm": "tpm",
    "max_concurrency": "max_concurrency",
}
_EXPIRY_DAYS = ("expires_in_days", "days", "duration_days")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def _bad(msg: str, code: str = "invalid_request") -> InvalidRequestError:
    return InvalidRequestError(msg, code=code)


def _not_found(msg: str) -> DragomanError:
    return error_for("not_found_error", msg, code="not_found")


def _store_disabled() -> ServerError:
    return ServerError("the store is disabled", status=503, code="store_disabled")


def _acct(request: web.Request) -> Accountant:
    acct: Accountant = request.app[ACCOUNTANT]
    return acct


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        raw = await timeouts.read_body(request, request.app[CONFIG].server.body_timeout)
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise _bad("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad("the body must be a JSON object")
    return data


async def _caller(request: web.Request, acct: Accountant) -> Caller:
    """The admin, a client key, or None on an open gateway; 401 otherwise (429 after too many
    failures from the address; docs/security.md)."""
    auth = request.app[AUTH]
    secret = client_secret(request.headers)
    if auth.admin_ok(secret):
        return _ADMIN
    if not auth.required:
        return None
    auth.refuse_if_blocked(request)
    if secret:
        info = await acct.authenticate(secret)
        if info is not None:
            return info
    raise auth.fail(request, "invalid or missing API key", code="invalid_api_key")


def _needs_admin(what: str) -> PermissionDeniedError:
    """403 for an admin action asked without the admin key (open gateway or client key)."""
    return PermissionDeniedError(
        f"{what} needs the admin key (set auth.admin_key and send it)", code="admin_key_required"
    )


def _admin_only(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        acct = _acct(request)
        auth = request.app[AUTH]
        if not auth.is_admin(request):
            if not acct.config.auth.admin_key:
                raise PermissionDeniedError(
                    "the admin API is disabled: set auth.admin_key", code="admin_key_required"
                )
            auth.refuse_if_blocked(request)
            raise auth.fail(request, "admin key required", code="invalid_api_key")
        if acct.keys is None:
            raise _store_disabled()
        return await handler(request, acct, acct.keys)

    return wrapped


# ---- keys ------------------------------------------------------------------------------------
#: the longest lifetime a key may be given in days (a bigger one overflows a datetime)
_MAX_DAYS = 36600


def _key_fields(data: dict[str, Any], now: _dt.datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in _KEY_FIELDS:
            out[_KEY_FIELDS[k]] = v
        elif k in _EXPIRY_DAYS:
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= _MAX_DAYS:
                raise _bad(f"{k} must be a number of days greater than 0, at most {_MAX_DAYS}")
            out["expires_at"] = now + _dt.timedelta(days=float(v))
        else:
            raise _bad(f"unknown field {k!r}")
    return out


@_admin_only
async def create_key(request: web.Request, acct: Accountant, repo: KeyRepo) -> web.StreamResponse:
    fields = _key_fields(await _body(request), acct.now())
    try:
        pub, secret = await repo.create(**fields)
    except ValueError as e:
        raise _bad(str(e)) from None
    return _json({**pub, "secret": secret}, 201)


@_admin_only
async def list_keys(request: web.Request, acct: Accountant, repo: KeyRepo) -> web.StreamResponse:
    keys = await repo.list()
    return _json({"keys": keys, "total": len(keys)})


@_admin_only
async def get_key(request: web.Request, acct: Accountant, repo: KeyRepo) -> web.StreamResponse:
    kid = request.match_info["id"]
    pub = await repo.get(kid)
    if pub is None:
        raise _not_found(f"no key {kid!r}")
    if pub["budget_usd"] is not None:
        ps = period_start(pub["budget_period"], acct.now())
        spent, reserved = await acct.counters(key_budget_id(pub["id"]), ps)
        pub["budget"] = {
            "period_start": iso(ps),
            "spent": spent,
            "reserved": reserved,
            "remaining": max(pub["budget_usd"] - spent - reserved, 0.0),
        }
    return _json(pub)


@_admin_only
async def patch_key(request: web.Request, acct: Accountant, repo: KeyRepo) -> web.StreamResponse:
    kid = request.match_info["id"]
    fields = _key_fields(await _body(request), acct.now())
    try:
        pub = await repo.update(kid, **fields)
    except ValueError as e:
        raise _bad(str(e)) from None
    acct.invalidate_keys()
    if pub is None:
        raise _not_found(f"no key {kid!r}")
    return _json(pub)


@_admin_only
async def revoke_key(request: web.Request, acct: Accountant, repo: KeyRepo) -> web.StreamResponse:
    kid = request.match_info["id"]
    pub = await repo.revoke(kid)
    acct.invalidate_keys()
    if pub is None:
        raise _not_found(f"no key {kid!r}")
    return _json(pub)


# ---- credentials -----------------------------------------------------------------------------
@_admin_only
async def put_credential(
    request: web.Request, acct: Accountant, repo: KeyRepo
) -> web.StreamResponse:
    data = await _body(request)
    name = data.get("name")
    value = data.get("api_key", data.get("value", data.get("secret")))
    provider = data.get("provider")
    if not isinstance(name, str) or not name:
        raise _bad("'name' is required")
    if not isinstance(value, str) or not value:
        raise _bad("'api_key' is required")
    if provider is not None and not isinstance(provider, str):
        raise _bad("'provider' must be a string")
    try:
        out = await repo.put_credential(name, value, provider)
    except MasterKeyMissingError as e:
        raise _bad(str(e), "master_key_missing") from None
    acct.forget_credential(name)
    return _json(out, 201)


@_admin_only
async def list_credentials(
    request: web.Request, acct: Accountant, repo: KeyRepo
) -> web.StreamResponse:
    return _json({"credentials": await repo.list_credentials()})


@_admin_only
async def delete_credential(
    request: web.Request, acct: Accountant, repo: KeyRepo
) -> web.StreamResponse:
    name = request.match_info["name"]
    acct.forget_credential(name)
    if not await repo.delete_credential(name):
        raise _not_found(f"no credential {name!r}")
    return _json({"name": name, "deleted": True})


@_admin_only
async def delete_budget(
    request: web.Request, acct: Accountant, repo: KeyRepo
) -> web.StreamResponse:
    bid = request.match_info["id"]
    if not await acct.delete_budget(bid):
        raise _not_found(f"no API-created budget {bid!r} (config budgets live in the config)")
    return _json({"id": bid, "deleted": True})


# ---- analytics -------------------------------------------------------------------------------
def _visible(b: Budget, who: Caller) -> bool:
    """The admin sees every budget; a client key the budgets that apply to it (and every
    non-key, non-team one); an open gateway's anonymous caller the non-key, non-team ones."""
    if who == _ADMIN:
        return True
    if b.scope == "key":
        return isinstance(who, KeyInfo) and b.target in (who.id, who.alias)
    if b.scope == "team":
        return isinstance(who, KeyInfo) and who.team is not None and b.target == who.team
    return True


async def get_budgets(request: web.Request) -> web.StreamResponse:
    acct = _acct(request)
    who = await _caller(request, acct)
    if acct.queries is None:
        return _json({"message": "Budgets retrieved", "budgets": [], "total_budgets": 0})
    budgets = [b for b in acct.budgets() if _visible(b, who)]
    if isinstance(who, KeyInfo):
        kb = key_budget(who)
        if kb is not None:
            budgets.append(kb)
    elif who == _ADMIN:
        budgets.extend(await acct.queries.key_budgets())
    views = await acct.queries.budget_views(budgets)
    return _json({"message": "Budgets retrieved", "budgets": views, "total_budgets": len(views)})


def _new_budget(data: dict[str, Any], who: Caller, acct: Accountant) -> dict[str, Any]:
    """The ``create_budget`` arguments a request asks for; 400/403 when it may not: only the
    admin key sets budgets on anything but the caller's own key, and webhooks (audit #2, #11).
    """
    if who is None:
        raise _needs_admin("creating a budget on an open gateway")
    period = data.get("budget_type", data.get("period"))
    limit = data.get("budget_limit", data.get("limit_usd"))
    if period not in PERIODS:
        raise _bad(f"budget_type must be one of {', '.join(PERIODS)}")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
        raise _bad("budget_limit must be a number > 0")
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
        raise _bad(f"scope must be one of {', '.join(SCOPES)}")
    if scope != "global" and not isinstance(target, str | type(None)):
        raise _bad("target must be a string")
    if isinstance(who, KeyInfo):
        if scope != "key" or target not in (None, who.id, who.alias):
            raise PermissionDeniedError(
                "a client key may only create budgets on itself (scope 'key')", code="forbidden"
            )
        target = who.id
    if scope != "global" and not target:
        raise _bad(f"a {scope} budget needs a target")
    thresholds = data.get("alert_thresholds", [50, 80, 95])
    cap = acct.config.accounting.max_alert_thresholds
    if isinstance(thresholds, list) and len(thresholds) > cap:
        raise _bad(
            f"alert_thresholds has {len(thresholds)} entries; at most {cap} "
            "(accounting.max_alert_thresholds)",
            "too_many_thresholds",
        )
    if not isinstance(thresholds, list) or not all(
        isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 100 for t in thresholds
    ):
        raise _bad("alert_thresholds must be a list of percentages (0-100]")
    webhook = data.get("webhook")
    if webhook is not None and not isinstance(webhook, str):
        raise _bad("webhook must be a URL")
    if webhook is not None and who != _ADMIN:
        raise _needs_admin("a budget webhook")
    why = webhook_refusal(webhook) if webhook is not None else None
    if why is not None:  # https to a public address only (docs/accounting.md, "Alerts")
        raise _bad(f"webhook: {why}")
    if scope == "key":
        per_key = acct.config.accounting.max_budgets_per_key
        have = sum(1 for b in acct.budgets() if b.scope == "key" and b.target == target)
        if have >= per_key:
            raise _bad(
                f"key {target!r} already has {have} budgets; at most {per_key} "
                "(accounting.max_budgets_per_key)",
                "too_many_budgets",
            )
    return {
        "scope": scope,
        "target": target,
        "period": period,
        "limit_usd": float(limit),
        "alert_thresholds": [float(t) for t in thresholds],
        "webhook": webhook,
    }


async def post_budget(request: web.Request) -> web.StreamResponse:
    acct = _acct(request)
    who = await _caller(request, acct)
    if acct.queries is None:
        raise _store_disabled()
    b = await acct.create_budget(**_new_budget(await _body(request), who, acct))
    view = (await acct.queries.budget_views([b]))[0]
    return _json({"message": "Budget created", "budget": view}, 201)


async def costs(request: web.Request) -> web.StreamResponse:
    acct = _acct(request)
    who = await _caller(request, acct)
    try:
        days = int(request.query.get("days", "7"))
        if not 1 <= days <= 3660:
            raise ValueError
    except ValueError:
        raise _bad("days must be an integer from 1 to 3660") from None
    if acct.queries is None:
        return _json(empty_costs(days))
    out = await acct.queries.costs(
        days,
        # the admin sees every key; a client key its own rows; an open gateway's caller the
        # rows of no key (audit #22)
        key_id=who.id if isinstance(who, KeyInfo) else None,
        only_key=who != _ADMIN,
        provider=request.query.get("provider") or None,
        model=request.query.get("model") or None,
    )
    return _json(out)


async def stats(request: web.Request) -> web.StreamResponse:
    acct = _acct(request)
    who = await _caller(request, acct)
    models = (
        {}
        if acct.queries is None
        else await acct.queries.model_stats(
            key_id=who.id if isinstance(who, KeyInfo) else None, only_key=who != _ADMIN
        )
    )
    total = sum(m["requests"] for m in models.values())
    return _json({"models": models, "total_requests": total, "uptime_s": acct.uptime()})


def admin_routes() -> list[web.RouteDef]:
    """The admin and analytics routes (they read the Accountant from ``app[ACCOUNTANT]``)."""
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
