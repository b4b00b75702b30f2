"""Issue items 8 (library API, typed errors) and 7 (``dragoman route``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner
from tests.fakes import ErrorReply, OpenAIErrorReply, error_reply
from tests.routing.harness import (
    A_HEADERS,
    CLIENT_KEY,
    DRIVERS,
    Fakes,
    FakeTime,
    JitterRandom,
    base_config,
    make_config,
)
from tests.support import http
from tests.support.servers import ServerThread

import dragoman
from dragoman.cli import main
from dragoman.config import load_config_dict
from dragoman.server.app import create_app

# -- construction --------------------------------------------------------------------------------


def _gw(fakes: Fakes, **kw: Any) -> dragoman.Gateway:
    t = FakeTime()
    return dragoman.Gateway.from_config(base_config(fakes), sleep=t.sleep, clock=t.clock, **kw)


def test_from_dict_yaml_and_seed_objects(fakes: Fakes, tmp_path: Path) -> None:
    p = tmp_path / "dragoman.yaml"
    p.write_text(yaml.safe_dump(base_config(fakes)))
    with dragoman.Gateway.from_config(p) as gw:
        assert (
            gw.get_model_instance("claude").invoke_llm(
                {"messages": [{"role": "user", "content": "hi"}]}
            )["object"]
            == "chat.completion"
        )
    providers = [
        {
            "name": "anthropic",
            "provider_type": "anthropic",
            "support_model_type": ["LLM"],
            "provider_config": {"api_key": fakes.anth.api_key, "api_base": fakes.anth.url + "/v1"},
        }
    ]
    models = [
        {
            "name": "claude-sonnet-4-5",
            "type": "LLM",
            "provider_name": "anthropic",
            "max_tokens": 8192,
        }
    ]
    with dragoman.Gateway.from_objects(providers, models) as gw:
        out = gw.get_model_instance("claude-sonnet-4-5").invoke_llm(
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                ]
            }
        )
        assert out["choices"][0]["message"]["content"] == fakes.anth.default_text
    req = fakes.anth.last_request
    assert req.path == "/v1/messages" and req.body["system"] in (
        "be brief",
        [{"type": "text", "text": "be brief"}],
    )
    assert req.headers["x-api-key"] == fakes.anth.api_key and req.headers["anthropic-version"]


@pytest.mark.parametrize("model", ["coder", "claude"])
def test_server_and_library_send_the_same_upstream_request(fakes: Fakes, model: str) -> None:
    """One engine behind both fronts: the same request reaches the upstream identical (here
    translated A->O for ``coder``, passed through for ``claude``)."""
    body = {
        "model": model,
        "max_tokens": 64,
        "system": "be brief",
        "messages": [{"role": "user", "content": "weather in Oslo?"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    }
    fake = fakes.vllm if model == "coder" else fakes.anth
    sent = []
    for kind in ("server", "library"):
        drv = DRIVERS[kind](make_config(fakes), FakeTime(), JitterRandom())
        try:
            assert drv.messages(dict(body)).status == 200
        finally:
            drv.close()
        got = dict(fake.last_request.body)
        if got.get("stream") is False:
            del got["stream"]  # the library says `stream: false` out loud; same meaning
        sent.append(got)
    assert sent[0] == sent[1]
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("front", "model", "fake"),
    [
        ("anthropic", "claude", "anth"),
        ("anthropic", "coder", "vllm"),
        ("openai", "claude", "anth"),
        ("openai", "coder", "vllm"),
    ],
)
def test_server_and_library_send_and_answer_the_same(
    fakes: Fakes, front: str, model: str, fake: str
) -> None:
    """The same request through the server (HTTP) and the library reaches the upstream as the
    same JSON and comes back as the same answer (ids and timestamps aside): one pipeline."""
    cfg = base_config(fakes)
    upstream = getattr(fakes, fake)
    req: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 64,
        "temperature": 0.5,
        "stop": ["\n\n"],
    }
    if front == "anthropic":
        req = {
            "system": "be brief",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 64,
            "temperature": 0.5,
            "stop_sequences": ["\n\n"],
        }
    config = load_config_dict(cfg)

    async def app() -> Any:
        return create_app(config)

    server = ServerThread(app, shutdown_timeout=0.3).start()
    try:
        path = "/v1/messages" if front == "anthropic" else "/v1/chat/completions"
        r = http.post(
            server.url + path, {**req, "model": model}, {**A_HEADERS, "x-api-key": CLIENT_KEY}
        )
        assert r.status == 200, r.body
        via_server, sent_by_server = r.json(), upstream.last_request.body
    finally:
        server.stop()
    with dragoman.Gateway(config) as gw:
        m = gw.get_model_instance(model)
        via_library = m.invoke_messages(req) if front == "anthropic" else m.invoke_llm(req)
    assert upstream.last_request.body == sent_by_server
    assert len(upstream.requests) == 2

    def same(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in ("id", "created")}

    assert same(dict(via_library)) == same(via_server)
    assert r.headers["x-dragoman-model"] == via_library.meta.model == model
    assert r.headers["x-dragoman-deployment"] == via_library.meta.deployment


def test_sync_async_and_streaming_twins(fakes: Fakes) -> None:
    with _gw(fakes) as gw:
        m = gw.get_model_instance("coder")
        req = {"messages": [{"role": "user", "content": "hi"}]}
        assert m.invoke_llm(req)["choices"][0]["message"]["content"] == fakes.vllm.default_text
        chunks = list(m.stream_llm(req))
        text = "".join(
            (c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"]
        )
        assert text == fakes.vllm.default_text
        a = gw.get_model_instance("claude")
        areq = {**req, "max_tokens": 64}
        assert a.invoke_messages(areq)["content"][0]["text"] == fakes.anth.default_text
        events = list(a.stream_messages(areq))
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"

    async def run() -> None:
        gw = _gw(fakes)
        m = gw.get_model_instance("claude")
        got = await m.ainvoke_llm(req)
        assert got["object"] == "chat.completion"
        got2 = await m.ainvoke_messages({**req, "max_tokens": 64})
        assert got2["type"] == "message"
        n = [c async for c in m.astream_llm(req)]
        assert n and n[-1]["object"] == "chat.completion.chunk"
        e = [c async for c in m.astream_messages({**req, "max_tokens": 64})]
        assert e[-1]["type"] == "message_stop"
        await gw.aclose()

    asyncio.run(run())


# -- typed errors --------------------------------------------------------------------------------

REQ = {"messages": [{"role": "user", "content": "hi"}]}
AREQ = {**REQ, "max_tokens": 64}


@pytest.mark.parametrize(
    ("reply", "exc", "status"),
    [
        (error_reply(429, headers={"retry-after": "300"}), dragoman.RateLimitError, 429),
        # our provider credentials refused: a bad gateway (a ServerError), never the caller's
        (error_reply(401), dragoman.UpstreamCredentialsRejected, 502),
        (error_reply(404), dragoman.ModelNotFoundError, 404),
        (error_reply(400), dragoman.InvalidRequestError, 400),
        (error_reply(500), dragoman.ServerError, 500),
        (error_reply(529), dragoman.OverloadedError, 529),
        # the error type first: an Anthropic-style body says rate limit behind a 400
        (ErrorReply(400, "rate_limit_error", "slow down"), dragoman.RateLimitError, 400),
    ],
)
def test_typed_errors_from_an_anthropic_upstream(
    fakes: Fakes, reply: Any, exc: type[Exception], status: int
) -> None:
    fakes.anth.default_reply = reply
    with _gw(fakes) as gw, pytest.raises(exc) as ei:
        gw.get_model_instance("claude").invoke_llm(REQ)
    assert isinstance(ei.value, dragoman.DragomanError) and ei.value.status == status
    if exc is dragoman.OverloadedError:
        assert isinstance(ei.value, dragoman.ServerError)


@pytest.mark.parametrize(
    ("reply", "exc"),
    [
        (OpenAIErrorReply(429, "slow", headers={"retry-after": "300"}), dragoman.RateLimitError),
        (
            OpenAIErrorReply(401, "bad key", type="AuthenticationError"),
            dragoman.UpstreamCredentialsRejected,
        ),
        (OpenAIErrorReply(404, "no such model", type="NotFoundError"), dragoman.ModelNotFoundError),
        (OpenAIErrorReply(400, "bad", type="BadRequestError"), dragoman.InvalidRequestError),
        (OpenAIErrorReply(500, "oops"), dragoman.ServerError),
        # type first, status second: a proxy's 400 whose type names the real problem
        (OpenAIErrorReply(400, "model gone", type="not_found_error"), dragoman.ModelNotFoundError),
        (OpenAIErrorReply(500, "quota", type="rate_limit_error"), dragoman.RateLimitError),
    ],
)
def test_typed_errors_from_an_openai_upstream(
    fakes: Fakes, reply: Any, exc: type[Exception]
) -> None:
    fakes.vllm.default_reply = reply
    with _gw(fakes, rng=None) as gw, pytest.raises(exc):
        gw.get_model_instance("coder").invoke_messages(AREQ)
    assert fakes.vllm.requests  # the upstream's error, not a refusal of ours


def test_unknown_model_is_model_not_found(fakes: Fakes) -> None:
    cfg = base_config(fakes)
    cfg["aliases"] = {}
    with dragoman.Gateway.from_config(cfg) as gw, pytest.raises(dragoman.ModelNotFoundError):
        gw.get_model_instance("no-such-model")


def test_stream_error_mid_way_raises_typed(fakes: Fakes) -> None:
    from tests.fakes import Reply

    fakes.anth.enqueue(
        Reply("long answer here", error_after=4, pauses={2: 0.2}, error_type="overloaded_error")
    )
    with _gw(fakes) as gw:
        got = []
        with pytest.raises(dragoman.OverloadedError) as ei:
            for ev in gw.get_model_instance("claude").stream_messages(AREQ):
                got.append(ev)
        assert got and got[0]["type"] == "message_start"
        assert (ei.value.model, ei.value.deployment, ei.value.attempts) == (
            "claude",
            "claude/anth",
            1,
        )


# -- dragoman route ------------------------------------------------------------------------------

# `dragoman route` never connects; the .invalid names (RFC 2606) could not be reached anyway
ROUTE_CONFIG = {
    "providers": {
        "anthropic": {"kind": "anthropic", "base_url": "http://anthropic.invalid", "api_key": "k"},
        "local": {"kind": "openai", "base_url": "http://local.invalid/v1", "flavor": "vllm"},
    },
    "models": {
        "sonnet": {
            "strategy": "lowest_latency",
            "deployments": [
                {"provider": "anthropic", "model": "claude-sonnet-4-5", "weight": 2},
                {"provider": "local", "model": "qwen3-coder", "weight": 1, "rpm": 600},
            ],
            "fallbacks": ["qwen"],
            "context_window_fallbacks": ["big"],
        },
        "big": {"provider": "anthropic", "model": "claude-opus-4-5"},
        "qwen": {
            "provider": "local",
            "model": "qwen3-coder",
            "vision": False,
            "vision_model": "sonnet",
        },
        "blind": {"provider": "local", "model": "tiny", "vision": False},
    },
    "aliases": {"claude-*": "sonnet"},
    "routing": {
        "rules": [
            {"name": "background", "match_model": "*haiku*", "model": "qwen"},
            {"name": "long-context", "min_input_tokens": 5000, "model": "big"},
            {"name": "think", "thinking": True, "model": "big"},
        ]
    },
}


def _route(tmp_path: Path, body: dict[str, Any], *extra: str) -> Any:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(ROUTE_CONFIG))
    req = tmp_path / "req.json"
    req.write_bytes(orjson.dumps(body))
    return CliRunner().invoke(main, ["route", "--config", str(cfg), *extra, str(req)])


def test_route_explains_alias_and_deployments(tmp_path: Path) -> None:
    r = _route(
        tmp_path,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert r.exit_code == 0, r.output
    assert "alias pattern 'claude-*' matches -> 'sonnet'" in r.output
    assert "model:       sonnet" in r.output and "strategy:    lowest_latency" in r.output
    assert "translated anthropic -> openai" in r.output and "pass-through" in r.output
    assert "rpm 600" in r.output and "fallbacks:   qwen" in r.output
    assert "on context overflow: big" in r.output


def test_route_explains_rules(tmp_path: Path) -> None:
    r = _route(
        tmp_path,
        {
            "model": "claude-3-5-haiku",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert (
        r.exit_code == 0
        and "rule background: model 'claude-3-5-haiku' matches '*haiku*'" in r.output
    )
    assert "model:       qwen" in r.output
    r = _route(
        tmp_path,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 2000,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert "rule think: thinking requested -> 'big'" in r.output and "thinking yes" in r.output
    r = _route(tmp_path, {"model": "x", "messages": [{"role": "user", "content": "word " * 8000}]})
    assert (
        "rule long-context: ~" in r.output
        and ">= 5000" in r.output
        and "(openai dialect)" in r.output
    )


def test_route_explains_vision(tmp_path: Path) -> None:
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    r = _route(
        tmp_path,
        {"model": "qwen", "max_tokens": 10, "messages": [{"role": "user", "content": [img]}]},
        "--dialect",
        "anthropic",
    )
    assert r.exit_code == 0, r.output
    assert (
        "vision: false -> vision_model 'sonnet'" in r.output and "model:       sonnet" in r.output
    )
    r = _route(
        tmp_path,
        {"model": "blind", "max_tokens": 10, "messages": [{"role": "user", "content": [img]}]},
        "--dialect",
        "anthropic",
    )
    assert r.exit_code != 0
    assert "400 invalid_request_error" in r.output and "'blind' cannot take images" in r.output
