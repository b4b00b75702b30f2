"""The HTTP front: aiohttp routes for both dialects, auth, errors in the caller's dialect.

aiohttp (server and client) was chosen by measurement: see bench/README.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from ..config import Config
from ..core.exchange import ANTHROPIC, OPENAI, Reply
from ..core.gateway import Gateway
from ..errors import (
    DragomanError,
    InvalidRequestError,
    ModelNotFoundError,
    RequestTooLargeError,
    ServerError,
)
from ..guard.query import upstream_query
from ..ids import request_id
from ..protocols import anthropic as pa
from ..protocols import openai as po
from ..protocols.sse import SSE_HEADERS
from ..stages.auth import Auth
from . import metrics, openapi, timeouts
from .exposure import check_metrics, public_health, visible_models
from .guard_origin import open_mode_guard

log = logging.getLogger("dragoman.server")

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
AUTH: web.AppKey[Auth] = web.AppKey("auth", Auth)
CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
ACCOUNTANT: web.AppKey[Any] = web.AppKey("accountant", object)
STARTED: web.AppKey[float] = web.AppKey("started", float)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dialect_of(request: web.Request) -> str:
    """Which dialect an error for this request must be written in."""
    path = request.path
    if path.startswith("/v1/messages"):
        return ANTHROPIC
    if path.startswith(("/v1/chat", "/v1/completions")):
        return OPENAI
    h = request.headers
    if "anthropic-version" in h or "x-api-key" in h:
        return ANTHROPIC
    return OPENAI


def error_response(request: web.Request, err: DragomanError) -> web.Response:
    rid = request.get(REQUEST_ID)
    headers = dict(err.headers)
    if rid:
        headers["request-id"] = rid
        headers["x-request-id"] = rid
    if dialect_of(request) == ANTHROPIC:
        body = pa.error_body(err, rid)
        status = err.status
    else:
        body = po.error_body(err)
        status = po.status_for(err)
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = request_id()
    try:
        return await handler(request)
    except DragomanError as err:
        return _error(request, err)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].server.max_body_bytes
        return _error(
            request,
            RequestTooLargeError(f"request body is larger than the limit of {limit} bytes"),
        )
    except web.HTTPException as e:
        if e.status == 404:
            return _error(request, ModelNotFoundError(f"no route for {request.path}"))
        if e.status == 405:
            bad = InvalidRequestError(f"method {request.method} not allowed on {request.path}")
            bad.status = 405
            return _error(request, bad)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(request, ServerError("internal error in the gateway"))


def _error(request: web.Request, err: DragomanError) -> web.Response:
    metrics.count_error(err.type)
    return error_response(request, err)


async def _read(request: web.Request) -> bytes:
    """The raw body; one over ``server.max_body_bytes`` is a 413 in the caller's dialect."""
    try:
        return await timeouts.read_body(request, request.app[CONFIG].server.body_timeout)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].server.max_body_bytes
        raise RequestTooLargeError(
            f"request body is larger than the limit of {limit} bytes"
        ) from None


async def _respond(request: web.Request, reply: Reply) -> web.StreamResponse:
    if reply.stream is None:
        return web.Response(
            body=reply.body,
            status=reply.status,
            content_type="application/json",
            headers=reply.headers,
        )
    resp = web.StreamResponse(status=reply.status, headers={**SSE_HEADERS, **reply.headers})
    gen = reply.stream
    wt = request.app[CONFIG].server.write_timeout
    try:
        await resp.prepare(request)
        async for chunk in gen:
            # a stalled client: 499
            await timeouts.client_write(request, resp.write(chunk), wt, len(chunk))
        await timeouts.client_write(request, resp.write_eof(), wt, 0)
    except (ConnectionResetError, ConnectionError):
        log.info("client went away during a stream (%s)", request.get(REQUEST_ID))
    finally:
        # the stream's end hooks (books, health, metrics) run here at the latest
        await gen.aclose()  # type: ignore[attr-defined]
    return resp


async def messages(request: web.Request) -> web.StreamResponse:
    reply = await request.app[GATEWAY].messages(
        headers=request.headers,
        remote=request.remote,
        path=request.path,
        read=partial(_read, request),
        request_id=request[REQUEST_ID],
        query=upstream_query(request.rel_url.raw_query_string),
    )
    return await _respond(request, reply)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    reply = await request.app[GATEWAY].count_tokens(
        headers=request.headers,
        remote=request.remote,
        path=request.path,
        read=partial(_read, request),
        request_id=request[REQUEST_ID],
        query=upstream_query(request.rel_url.raw_query_string),
    )
    return web.Response(body=reply.body, content_type="application/json")


async def chat(request: web.Request) -> web.StreamResponse:
    reply = await request.app[GATEWAY].chat(
        headers=request.headers,
        remote=request.remote,
        path=request.path,
        read=partial(_read, request),
        request_id=request[REQUEST_ID],
    )
    return await _respond(request, reply)


async def completions(request: web.Request) -> web.StreamResponse:
    reply = await request.app[GATEWAY].completions(
        headers=request.headers,
        remote=request.remote,
        path=request.path,
        read=partial(_read, request),
        request_id=request[REQUEST_ID],
    )
    return await _respond(request, reply)


async def models(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    key = await request.app[AUTH].check(request)
    items = visible_models(gateway.list_models(), key, _route_name(gateway))
    if dialect_of(request) == ANTHROPIC:
        data = [_anthropic_model(m) for m in items]
        body: dict[str, Any] = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    else:
        body = {"object": "list", "data": [_openai_model(m) for m in items]}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def model(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    key = await request.app[AUTH].check(request)
    mid = request.match_info["model_id"]
    items = {m["id"]: m for m in visible_models(gateway.list_models(), key, _route_name(gateway))}
    m = items.get(mid)
    if m is None:
        route = gateway.models.resolve(mid)  # 404 in the caller's dialect when unknown
        if route.name not in items:  # a model this key may not use is not there for it
            raise ModelNotFoundError(f"model: {mid!r} is not served here", param="model")
        m = {**items[route.name], "id": mid}
    out = _anthropic_model(m) if dialect_of(request) == ANTHROPIC else _openai_model(m)
    return web.Response(body=orjson.dumps(out), content_type="application/json")


async def health(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    states = gateway.deployment_states()
    providers = {
        n: {"ok": ok, "detail": detail} for n, (ok, detail) in gateway.provider_health.items()
    }
    body = {
        "status": _health_status(states, providers),
        "uptime_s": round(time.time() - request.app[STARTED], 1),
        "providers": providers,
        "deployments": states,
        # what each provider's server is, and why dragoman thinks so (flavor: auto)
        "flavors": {n: d.as_dict() for n, d in gateway.detections.items()},
    }
    body = public_health(body, request.app[AUTH], request)  # details for the admin key only
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def ping(request: web.Request) -> web.StreamResponse:
    return web.Response(text="pong")


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    check_metrics(request.app[AUTH], request)
    return await metrics.handler(request)


async def root(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b'{"name":"dragoman","status":"ok"}', content_type="application/json")


ROUTES = [
    web.post("/v1/messages", messages),
    web.post("/v1/messages/count_tokens", count_tokens),
    web.post("/v1/chat/completions", chat),
    web.post("/v1/completions", completions),
    web.get("/v1/models", models),
    web.get("/v1/models/{model_id:.+}", model),
    web.get("/health", health),
    web.get("/ping", ping),
    web.get("/", root),
    web.get("/metrics", metrics_handler),
    web.get("/openapi.json", openapi.handler),
]


def _health_status(
    states: dict[str, list[dict[str, object]]], providers: dict[str, dict[str, Any]]
) -> str:
    """ "degraded" when some model has no usable deployment (every one cooling down, or on a
    provider whose health check failed), else "ok"."""
    down = {n for n, p in providers.items() if not p["ok"]}
    for deps in states.values():
        if not any(d["state"] == "ok" and d["provider"] not in down for d in deps):
            return "degraded"
    return "ok"


def _route_name(gateway: Gateway) -> Callable[[str], str]:
    """The configured model a listed name stands for (itself, or an alias's target)."""

    def resolve(name: str) -> str:
        try:
            return gateway.models.resolve(name).name
        except DragomanError:
            return name

    return resolve


def _anthropic_model(m: dict[str, Any]) -> dict[str, Any]:
    out = {
        "type": "model",
        "id": m["id"],
        "display_name": m.get("display_name") or m["id"],
        "created_at": "2025-01-01T00:00:00Z",
    }
    if m.get("max_input_tokens"):
        out["max_input_tokens"] = m["max_input_tokens"]
    if m.get("max_tokens"):
        out["max_tokens"] = m["max_tokens"]
    return out


def _openai_model(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": m["id"],
        "object": "model",
        "created": 1735689600,
        "owned_by": m.get("owned_by") or "dragoman",
    }


def create_app(
    config: Config, gateway: Gateway | None = None, accountant: Any = None
) -> web.Application:
    """The aiohttp application; the gateway is built by ``bootstrap`` when not given."""
    if gateway is None:
        from ..bootstrap import build_gateway

        gateway = build_gateway(config, accountant=accountant)
    auth = gateway.auth or Auth(gateway.runtime)
    guard = open_mode_guard(lambda: auth.open, config.server)  # docs/security.md
    app = web.Application(
        middlewares=[errors_middleware, guard], client_max_size=config.server.max_body_bytes
    )
    app[CONFIG] = config
    app[ACCOUNTANT] = accountant
    app[GATEWAY] = gateway
    app[AUTH] = auth
    app[STARTED] = time.time()
    app.add_routes(ROUTES)
    if accountant is not None:
        from .admin import admin_routes  # admin.py reads ACCOUNTANT and the auth stage's extractor

        app.add_routes(admin_routes())

    async def _close(app: web.Application) -> None:
        await app[GATEWAY].close()
        if app[ACCOUNTANT] is not None:
            await app[ACCOUNTANT].close()  # flushes the usage rows still queued

    async def _detect(app: web.Application) -> None:
        # flavor: auto asks each server once, with short timeouts, before the first request
        await app[GATEWAY].detect_flavors()

    app.on_startup.append(_detect)
    app.on_cleanup.append(_close)
    return app
