"""The library says what the server says, and keeps the same books.

* who answered (``Reply.meta``, ``Stream.meta``) and who failed (``DragomanError.model``,
  ``.deployment``, ``.attempts``, ``.retry_after``), next to the server's ``x-dragoman-*``;
* requests are taken as the server takes them (``max_tokens`` is required in the Anthropic shape);
* the store: usage rows, the ledger and budgets (SQLite file per test), provider keys kept as
  credentials, budgets without a store refused;
* a stream left early closes the upstream, frees the deployment and settles the books.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.fakes import ChatReply, Reply, error_reply
from tests.routing.harness import CLIENT_KEY, Fakes, FakeTime, base_config
from tests.support import http
from tests.support.servers import ServerThread

import dragoman
from dragoman.config import ConfigError, load_config_dict
from dragoman.protocols import openai as po
from dragoman.server.app import create_app
from dragoman.store import create_engine, schema

A = {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
OA = {"messages": [{"role": "user", "content": "hi"}]}


def _gw(fakes: Fakes, **over: Any) -> dragoman.Gateway:
    t = FakeTime()
    cfg = base_config(fakes)
    cfg.update(over)
    return dragoman.Gateway.from_config(cfg, sleep=t.sleep, clock=t.clock)


# -- who answered ----------------------------------------------------------------------------


def test_replies_and_streams_say_who_answered(fakes: Fakes) -> None:
    with _gw(fakes) as gw:
        m = gw.get_model_instance("primary")  # primary -> fallbacks: [coder]
        # 1 + 2 retries: the third failure cools primary's only deployment, and a cooling model
        # gives way to its fallback at once
        fakes.anth.enqueue(*[error_reply(500) for _ in range(3)])
        got = m.invoke_messages(A)
        assert got["type"] == "message" and type(got) is dragoman.Reply
        assert isinstance(got, dict) and dict(got) == got  # the wire shape, unchanged
        assert (got.meta.model, got.meta.deployment, got.meta.attempts) == (
            "coder",
            "coder/vllm",
            4,
        )
        assert got.meta.request_id.startswith("req_")
        s = gw.get_model_instance("claude").stream_llm(OA)
        assert s.meta is None  # nothing sent yet
        chunks = list(s)
        assert chunks[-1]["object"] == "chat.completion.chunk"
        assert s.meta is not None
        assert (s.meta.model, s.meta.deployment, s.meta.attempts) == ("claude", "claude/anth", 1)

    async def run() -> None:
        async with _gw(fakes) as agw:
            a = agw.get_model_instance("coder")
            r = await a.ainvoke_llm(OA)
            assert (r.meta.model, r.meta.deployment) == ("coder", "coder/vllm")
            async with a.astream_messages(A) as st:
                events = [e async for e in st]
            assert events[-1]["type"] == "message_stop"
            assert st.meta is not None and st.meta.deployment == "coder/vllm"

    asyncio.run(run())


def test_errors_say_who_failed_and_when_to_retry(fakes: Fakes) -> None:
    fakes.anth.default_reply = error_reply(429, headers={"retry-after": "300"})
    with _gw(fakes) as gw, pytest.raises(dragoman.RateLimitError) as ei:
        gw.get_model_instance("claude").invoke_llm(OA)
    e = ei.value
    assert (e.model, e.deployment, e.attempts, e.retry_after) == ("claude", "claude/anth", 1, 300)
    assert e.status == 429 and len(fakes.anth.requests) == 1  # 300 s is over the 60 s cap


def test_the_canonical_status_and_the_openai_front(fakes: Fakes) -> None:
    """An overloaded upstream is ``OverloadedError`` (529) whichever shape the library was
    called in; the server's OpenAI front answers it as 503, since OpenAI clients know no 529.
    Both facts, side by side on one fake, through ``protocols.openai.status_for``."""
    fakes.anth.default_reply = error_reply(529)
    cfg = base_config(fakes)
    cfg["routing"]["retries"] = {"max_retries": 0}
    with dragoman.Gateway.from_config(cfg) as gw, pytest.raises(dragoman.OverloadedError) as ei:
        gw.get_model_instance("claude").invoke_llm(OA)
    assert ei.value.status == 529 and po.status_for(ei.value) == 503
    config = load_config_dict(cfg)
    server = ServerThread(lambda: _app(config), shutdown_timeout=0.3).start()
    try:
        r = http.post(
            server.url + "/v1/chat/completions",
            {"model": "claude", **OA},
            {"x-api-key": CLIENT_KEY},
        )
        assert r.status == 503 and r.json()["error"]["code"] == "overloaded"
        assert r.headers["x-dragoman-model"] == "claude"
        assert r.headers["x-dragoman-deployment"] == "claude/anth"
        assert r.headers["x-dragoman-attempts"] == "1"
    finally:
        server.stop()


async def _app(config: Any) -> Any:
    return create_app(config)


# -- taken as the server takes them --------------------------------------------------------------


def test_anthropic_shape_needs_max_tokens_as_from_the_server(fakes: Fakes) -> None:
    with _gw(fakes) as gw, pytest.raises(dragoman.InvalidRequestError) as ei:
        gw.get_model_instance("claude").invoke_messages({"messages": OA["messages"]})
    assert ei.value.param == "max_tokens" and ei.value.message == "max_tokens: Field required"
    assert not fakes.anth.requests


def test_count_tokens_and_models_as_the_server_answers_them(fakes: Fakes) -> None:
    with _gw(fakes) as gw:
        got = gw.get_model_instance("claude").count_tokens(OA)  # no max_tokens: as the API
        sent = fakes.anth.last_request
        assert sent.path == "/v1/messages/count_tokens"
        assert sent.body == {**OA, "model": "claude-sonnet-4-5"}
        assert got == {"input_tokens": fakes.anth.count_tokens(sent.body)}
        models = {m["id"]: m for m in gw.list_models()}
    assert set(models) == {*base_config(fakes)["models"], "sonnet"}  # and the plain alias
    assert models["coder"]["max_input_tokens"] == 32768 and models["coder"]["owned_by"] == "vllm"


# -- the books ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DRAGOMAN_MASTER_KEY", "library-test-master-key-0123456789abcdefghijklm")
    return {"url": f"sqlite:///{tmp_path}/books.db", "flush_interval": 0.05}


def _rows(url: str, table: Any) -> list[Any]:
    async def q() -> list[Any]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(select(table))).all())
        finally:
            await engine.dispose()

    return asyncio.run(q())


PRICED = {"prices": {"claude": {"input": 1.0, "output": 1.0}}}


def test_the_library_keeps_the_books(fakes: Fakes, store: dict[str, Any]) -> None:
    fakes.anth.enqueue(Reply("counted", usage={"input_tokens": 1000, "output_tokens": 2000}))
    with _gw(fakes, store=store, accounting=PRICED) as gw:
        assert gw.accountant is None  # opened at the first request, in the loop it serves
        got = gw.get_model_instance("claude").invoke_messages(A)
        assert got["content"][0]["text"] == "counted"
        assert gw.accountant is not None
    (usage,) = _rows(store["url"], schema.usage)
    assert (usage.model, usage.deployment, usage.provider, usage.status, usage.attempts) == (
        "claude",
        "claude/anth",
        "anth",
        200,
        1,
    )
    assert (usage.input_tokens, usage.output_tokens, usage.dialect) == (1000, 2000, "anthropic")
    assert usage.cost == pytest.approx(0.003)  # 3000 tokens at $1 per million
    (held,) = _rows(store["url"], schema.ledger)
    assert held.status == "confirmed" and held.amount_final == pytest.approx(0.003)


def test_the_library_enforces_budgets(fakes: Fakes, store: dict[str, Any]) -> None:
    budget = {"scope": "global", "period": "total", "limit_usd": 0.00001}
    with (
        _gw(fakes, store=store, accounting={**PRICED, "budgets": [budget]}) as gw,
        pytest.raises(dragoman.BudgetExceededError) as ei,
    ):
        gw.get_model_instance("claude").invoke_messages(A)  # holds 64+ tokens: over $0.00001
    assert ei.value.status == 402 and "budget" in ei.value.message
    assert not fakes.anth.requests


def test_budgets_without_a_store_are_refused(fakes: Fakes) -> None:
    budget = {"scope": "global", "period": "total", "limit_usd": 10}
    with pytest.raises(ConfigError, match=r"accounting\.budgets needs the store"):
        _gw(fakes, accounting={"budgets": [budget]})


def test_provider_keys_kept_as_credentials_reach_the_upstream(
    fakes: Fakes, store: dict[str, Any]
) -> None:
    from dragoman.accounting import Accountant

    async def put() -> None:
        acct = await Accountant.create(load_config_dict({"store": store}))
        assert acct.keys is not None
        await acct.keys.put_credential("anth-key", fakes.anth.api_key, provider="anthropic")
        await acct.close()

    asyncio.run(put())
    providers = base_config(fakes)["providers"]
    providers["anth"] = {"kind": "anthropic", "base_url": fakes.anth.url, "credential": "anth-key"}
    with _gw(fakes, store=store, providers=providers) as gw:
        got = gw.get_model_instance("claude").invoke_messages(A)
        assert got["type"] == "message"
    assert fakes.anth.last_request.headers["x-api-key"] == fakes.anth.api_key


def test_a_missing_credential_is_a_config_error(fakes: Fakes, store: dict[str, Any]) -> None:
    providers = base_config(fakes)["providers"]
    providers["anth"] = {"kind": "anthropic", "base_url": fakes.anth.url, "credential": "nope"}
    with (
        _gw(fakes, store=store, providers=providers) as gw,
        pytest.raises(ConfigError, match="no stored credential named 'nope'"),
    ):
        gw.get_model_instance("claude").invoke_messages(A)
    assert not fakes.anth.requests


# -- leaving a stream early ------------------------------------------------------------------


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def _inflight(gw: dragoman.Gateway, model: str) -> int:
    return sum(d.inflight for d in gw.engine.models.get(model).deployments)


LONG = Reply("tok " * 200, text_chunk=4, event_delay=0.05)


@pytest.mark.parametrize("how", ["break", "close", "with"])
def test_leaving_a_stream_closes_the_upstream_and_settles(
    fakes: Fakes, store: dict[str, Any], how: str
) -> None:
    fakes.anth.enqueue(LONG)
    with _gw(fakes, store=store, accounting=PRICED) as gw:
        m = gw.get_model_instance("claude")
        if how == "break":
            for ev in m.stream_messages(A):
                assert ev["type"] == "message_start"
                break
        elif how == "close":
            s = m.stream_messages(A)
            assert next(s)["type"] == "message_start"
            s.close()
        else:
            with m.stream_messages(A) as s:
                assert next(s)["type"] == "message_start"
        assert _inflight(gw, "claude") == 0  # freed before the loop or close() returned
        _wait_for(
            lambda: "client disconnected" in fakes.anth.last_request.notes,
            "the upstream stream was not closed",
        )
    ledger = _rows(store["url"], schema.ledger)
    assert [r.status for r in ledger if r.status == "pending"] == []
    assert len(ledger) == 1
    (usage,) = _rows(store["url"], schema.usage)
    assert (usage.status, usage.error) == (499, "client disconnected")


def test_leaving_an_async_stream_closes_the_upstream(fakes: Fakes) -> None:
    fakes.vllm.enqueue(_long_chat())

    async def run() -> None:
        async with _gw(fakes) as gw:
            s = gw.get_model_instance("coder").astream_llm(OA)
            async for _ in s:
                break
            await s.aclose()
            assert _inflight(gw, "coder") == 0

    asyncio.run(run())
    _wait_for(
        lambda: "client disconnected" in fakes.vllm.last_request.notes,
        "the upstream stream was not closed",
    )


def _long_chat() -> Any:
    return ChatReply("tok " * 200, text_chunk=4, event_delay=0.05)
