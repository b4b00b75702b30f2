"""The HTTP front: aiohttp routes for both dialects, auth, errors in the caller's dialect.

aiohttp (server and client) was chosen by measurement: see bench/README.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ..config import Config
from ..engine import ANTHROPIC, OPENAI, Engine, Result
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
from . import metrics, openapi, timeouts
from .auth import Auth
from .exposure import check_metrics, public_health, visible_models
from .guard_origin import open_mode_guard

log = logging.getLogger("dragoman.server")

ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)
CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
ACCOUNTANT: web.AppKey[Any] = web.AppKey("accountant", object)
STARTED: web.AppKey[float] = web.AppKey("started", float)
AUTH: web.AppKey[Auth] = web.AppKey("auth", Auth)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ObservedHandler = Callable[[web.Request, metrics.Observation], Awaitable[web.StreamResponse]]


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


def _client_status(dialect: str, status: int) -> int:
    """The HTTP status a client of ``dialect`` gets for a (canonical) status."""
    return status if dialect == ANTHROPIC else po.OPENAI_STATUS.get(status, status)


def observed(endpoint: str, dialect: str, fn: ObservedHandler) -> Handler:
    """An LLM endpoint whose every request is counted once, when what its client receives is
    over (docs/metrics.md): errors with the status they were answered with, streams
    with how they really ended, a client that left as 499."""

    async def handler(request: web.Request) -> web.StreamResponse:
        obs = metrics.Observation(endpoint, dialect)
        try:
            return await fn(request, obs)
        except DragomanError as err:
            obs.status = _client_status(dialect, err.status)
            obs.model = err.headers.get("x-dragoman-model", obs.model)
            raise
        except web.HTTPException as e:
            obs.status = e.status
            raise
        except asyncio.CancelledError:
            obs.status = 499
            raise
        finally:
            obs.finish()

    return handler


async def _json_body(request: web.Request) -> Any:
    raw = await timeouts.read_body(request, request.app[CONFIG].server.body_timeout)
    if not raw:
        raise InvalidRequestError("request body is empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequestError(f"request body is not valid JSON: {e}") from None


async def _respond(
    request: web.Request, result: Result, obs: metrics.Observation
) -> web.StreamResponse:
    obs.model = result.headers.get("x-dragoman-model", "")
    obs.status = result.status
    if result.stream is None:
        return web.Response(
            body=result.body,
            status=result.status,
            content_type="application/json",
            headers=result.headers,
        )
    obs.stream = True
    resp = web.StreamResponse(status=result.status, headers={**SSE_HEADERS, **result.headers})
    gen = result.stream
    wt = request.app[CONFIG].server.write_timeout
    try:
        await resp.prepare(request)
        async for chunk in gen:
            # a stalled client: 499
            await timeouts.client_write(request, resp.write(chunk), wt, len(chunk))
            if obs.ttft is None:
                obs.first_bytes()
        await timeouts.client_write(request, resp.write_eof(), wt, 0)
    except (ConnectionResetError, ConnectionError):
        log.info("client went away during a stream (%s)", request.get(REQUEST_ID))
        obs.status = 499
    finally:
        await gen.aclose()  # type: ignore[attr-defined]  # the relay's books run here at the latest
        ending = result.ending
        if ending is not None and ending.done:
            obs.status = _client_status(obs.dialect, ending.status)
            if ending.status not in (200, 499) and ending.error_type:
                obs.error_type = ending.error_type
    return resp


def make_handlers(app: web.Application, auth: Auth) -> list[web.RouteDef]:
    engine = app[ENGINE]

    async def messages(request: web.Request, obs: metrics.Observation) -> web.StreamResponse:
        key = await auth.check(request)
        body = await _json_body(request)
        result = await engine.messages(
            body,
            request.headers,
            key=key,
            request_id=request[REQUEST_ID],
            query=upstream_query(request.rel_url.raw_query_string),
        )
        return await _respond(request, result, obs)

    async def count_tokens(request: web.Request, obs: metrics.Observation) -> web.StreamResponse:
        key = await auth.check(request)
        body = await _json_body(request)
        obs.model = _model_served(engine, body)
        got = await engine.count_tokens(
            body, request.headers, key=key, query=upstream_query(request.rel_url.raw_query_string)
        )
        obs.status = 200
        return web.Response(body=orjson.dumps(got), content_type="application/json")

    async def chat(request: web.Request, obs: metrics.Observation) -> web.StreamResponse:
        key = await auth.check(request)
        body = await _json_body(request)
        result = await engine.chat(body, request.headers, key=key, request_id=request[REQUEST_ID])
        return await _respond(request, result, obs)

    async def completions(request: web.Request, obs: metrics.Observation) -> web.StreamResponse:
        key = await auth.check(request)
        body = await _json_body(request)
        result = await engine.completions(
            body, request.headers, key=key, request_id=request[REQUEST_ID]
        )
        return await _respond(request, result, obs)

    async def models(request: web.Request) -> web.StreamResponse:
        key = await auth.check(request)
        items = visible_models(engine.list_models(), key, _route_name(engine))
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
        key = await auth.check(request)
        mid = request.match_info["model_id"]
        items = {m["id"]: m for m in visible_models(engine.list_models(), key, _route_name(engine))}
        m = items.get(mid)
        if m is None:
            route = engine.models.resolve(mid)  # 404 in the caller's dialect when unknown
            if route.name not in items:  # a model this key may not use is not there for it
                raise ModelNotFoundError(f"model: {mid!r} is not served here", param="model")
            m = {**items[route.name], "id": mid}
        out = _anthropic_model(m) if dialect_of(request) == ANTHROPIC else _openai_model(m)
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    async def health(request: web.Request) -> web.StreamResponse:
        states = engine.deployment_states()
        providers = {
            n: {"ok": ok, "detail": detail} for n, (ok, detail) in engine.provider_health.items()
        }
        body = {
            "status": _health_status(states, providers),
            "uptime_s": round(time.time() - app[STARTED], 1),
            "providers": providers,
            "deployments": states,
            # what each provider's server is, and why dragoman thinks so (flavor: auto)
            "flavors": {n: d.as_dict() for n, d in engine.detections.items()},
        }
        body = public_health(body, auth, request)  # details for the admin key only
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def ping(request: web.Request) -> web.StreamResponse:
        return web.Response(text="pong")

    async def metrics_handler(request: web.Request) -> web.StreamResponse:
        check_metrics(auth, request)
        return await metrics.handler(request)

    async def root(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b'{"name":"dragoman","status":"ok"}', content_type="application/json"
        )

    return [
        web.post("/v1/messages", observed("messages", ANTHROPIC, messages)),
        web.post("/v1/messages/count_tokens", observed("count_tokens", ANTHROPIC, count_tokens)),
        web.post("/v1/chat/completions", observed("chat_completions", OPENAI, chat)),
        web.post("/v1/completions", observed("completions", OPENAI, completions)),
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


def _route_name(engine: Engine) -> Callable[[str], str]:
    """The configured model a listed name stands for (itself, or an alias's target)."""

    def resolve(name: str) -> str:
        try:
            return engine.models.resolve(name).name
        except DragomanError:
            return name

    return resolve


def _model_served(engine: Engine, body: Any) -> str:
    """The configured model a request names (metrics label; never the client's free text)."""
    name = body.get("model") if isinstance(body, dict) else None
    if not isinstance(name, str):
        return ""
    try:
        return engine.models.resolve(name).name
    except DragomanError:
        return ""


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
    config: Config, engine: Engine | None = None, accountant: Any = None
) -> web.Application:
    """The aiohttp application. ``engine``/``accountant`` are built from config when omitted."""
    auth = Auth(config, accountant)
    guard = open_mode_guard(lambda: auth.open, config.server)  # docs/security.md
    app = web.Application(
        middlewares=[errors_middleware, guard], client_max_size=config.server.max_body_bytes
    )
    app[CONFIG] = config
    app[ACCOUNTANT] = accountant
    app[ENGINE] = engine or Engine(config, accountant=accountant)
    app[STARTED] = time.time()
    app[AUTH] = auth
    app.add_routes(make_handlers(app, auth))
    if accountant is not None:
        from .admin import admin_routes  # admin.py reads ACCOUNTANT and the key extractor here

        app.add_routes(admin_routes())

    async def _close(app: web.Application) -> None:
        await app[ENGINE].close()
        if app[ACCOUNTANT] is not None:
            await app[ACCOUNTANT].close()  # flushes the usage rows still queued

    async def _detect(app: web.Application) -> None:
        # flavor: auto asks each server once, with short timeouts, before the first request
        await app[ENGINE].detect_flavors()

    app.on_startup.append(_detect)
    app.on_cleanup.append(_close)
    return app
