"""The test support code: background servers, SSE encode/parse, fixture loading."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiohttp import ClientSession, web
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes import ChatReply, FakeAnthropic, FakeOpenAI, RawStream, Reply
from tests.fakes.sse import anthropic_frame, openai_frame, parse_sse, split_frames
from tests.support import http
from tests.support.fixtures import (
    FIXTURES_DIR,
    load_json,
    load_request,
    load_sse,
    load_sse_frames,
    load_sse_json,
)
from tests.support.plugin import _vllm_server, vllm_upstream  # noqa: F401 (fixtures)
from tests.support.servers import ServerThread, serve, start_server


def _hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


def test_server_thread_context_manager() -> None:
    with ServerThread(_hello_app()) as srv:
        assert srv.url.startswith("http://127.0.0.1:") and srv.port > 0
        assert http.get(srv.url + "/").body == b"hello"
    assert not srv._thread.is_alive()
    srv.stop()  # idempotent


def test_async_factory_builds_in_the_server_loop() -> None:
    events: list[str] = []

    async def make_app() -> web.Application:
        loop = asyncio.get_running_loop()  # loop-bound resources are fine here
        app = _hello_app()

        async def ctx(app: web.Application):  # type: ignore[no-untyped-def]
            session = ClientSession()
            events.append(f"startup:{loop is asyncio.get_running_loop()}")
            yield
            await session.close()
            events.append("cleanup")

        app.cleanup_ctx.append(ctx)
        return app

    srv = start_server(make_app)
    try:
        assert http.get(srv.url + "/").status == 200
        assert srv.run(asyncio.sleep(0, result=42)) == 42
        assert srv.call(threading.get_ident) == srv._thread.ident
    finally:
        srv.stop()
    assert events == ["startup:True", "cleanup"]


def test_startup_errors_are_raised() -> None:
    async def broken() -> web.Application:
        raise ValueError("nope")

    with pytest.raises(RuntimeError) as err:
        ServerThread(broken).start()
    assert isinstance(err.value.__cause__, ValueError)


def test_stop_does_not_hang_on_a_slow_stream() -> None:
    fake = FakeAnthropic().start()
    fake.enqueue(Reply(content="x" * 200, event_delay=5.0))
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    result: list[object] = []

    def call() -> None:
        try:
            result.append(
                http.post(
                    fake.url + "/v1/messages",
                    {**body, "stream": True},
                    {"x-api-key": fake.api_key, "anthropic-version": "2023-06-01"},
                    timeout=30,
                )
            )
        except Exception as exc:
            result.append(exc)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    fake.wait_for_requests(1)
    time.sleep(0.1)
    t0 = time.monotonic()
    fake.stop()
    assert time.monotonic() - t0 < 5
    t.join(5)
    assert result  # the client got an answer or an error, it was not left hanging


async def test_serve_in_the_current_loop() -> None:
    async with (
        serve(_hello_app()) as url,
        ClientSession() as session,
        session.get(url + "/") as resp,
    ):
        assert await resp.text() == "hello"


def test_fakes_can_share_a_loop_with_other_apps() -> None:
    fake = FakeAnthropic()
    with ServerThread(fake.app()) as srv:
        hdrs = {"x-api-key": fake.api_key, "anthropic-version": "2023-06-01"}
        resp = http.get(srv.url + "/v1/models", hdrs)
        assert resp.status == 200 and resp.json()["data"][0]["type"] == "model"


@pytest.mark.parametrize("round_", [1, 2])
def test_plugin_fixture_resets_between_tests(
    vllm_upstream: FakeOpenAI,  # noqa: F811 - the imported fixture
    round_: int,
) -> None:
    assert vllm_upstream.requests == [] and vllm_upstream.pending == 0
    vllm_upstream.enqueue(ChatReply(content="left over"))  # must not leak into round 2
    resp = http.get(vllm_upstream.url + "/health")
    assert resp.status == 200 and len(vllm_upstream.requests) == 1


# ----------------------------------------------------------------------------- SSE


def test_parse_sse_rules() -> None:
    raw = (
        b": keepalive comment\n\n"
        b'event: message_start\r\ndata: {"a":1}\r\n\r\n'
        b"data: line one\ndata:line two\n\n"
        b"id: 7\nretry: 100\ndata: x\n\n"
        b"data: [DONE]\n\n"
        b"data: partial"
    )
    events = parse_sse(raw)
    assert [(e.event, e.data) for e in events] == [
        ("message_start", '{"a":1}'),
        (None, "line one\nline two"),
        (None, "x"),
        (None, "[DONE]"),
        (None, "partial"),
    ]
    assert events[2].id == "7" and events[2].retry == 100 and events[3].is_done
    assert split_frames(b"data: a\n\ndata: b\r\n\r\ndata: c") == [
        b"data: a\n\n",
        b"data: b\r\n\r\n",
        b"data: c",
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), json_values), max_size=6))
def test_frames_round_trip(items: list[tuple[str, object]]) -> None:
    raw = b"".join(anthropic_frame(name, data) for name, data in items)
    raw += b"".join(openai_frame(data) for _, data in items)
    events = parse_sse(raw)
    expected = [(n, d) for n, d in items] + [(None, d) for _, d in items]
    assert [(e.event, e.json()) for e in events] == expected
    assert len(split_frames(raw)) == 2 * len(items)


# ----------------------------------------------------------------------------- fixtures


def test_fixture_loaders() -> None:
    names = sorted(p.name for p in FIXTURES_DIR.iterdir())
    assert "README.md" in names
    for name in names:
        if name.endswith(".json"):
            data = load_json(name)
            assert set(data) >= {"method", "path", "headers", "body"}
            if name.startswith("claude_code_"):
                assert data["headers"]["anthropic-version"] == "2023-06-01"
            else:  # codex_*: recorded from the Codex CLI (tests/fixtures/README.md)
                assert data["codex_version"] == "0.171.0"
        elif name.endswith(".sse"):
            frames = load_sse_frames(name)
            assert frames and all(f.endswith(b"\n\n") for f in frames)
            assert len(load_sse(name)) == len(frames)
    a = load_json("claude_code_main_request.json")
    a["body"]["model"] = "changed"
    assert load_json("claude_code_main_request.json")["body"]["model"] != "changed"


def test_claude_code_fixture_shapes() -> None:
    headers, body = load_request("claude_code_main_request.json")
    betas = headers["anthropic-beta"].split(",")
    assert "mid-conversation-system-2026-04-07" in betas
    assert headers["user-agent"].startswith("claude-cli/2.1.197")
    assert set(body) == {
        "model",
        "messages",
        "system",
        "tools",
        "metadata",
        "max_tokens",
        "thinking",
        "context_management",
        "output_config",
        "stream",
    }
    assert body["system"][0]["text"].startswith("x-anthropic-billing-header:")
    assert "cache_control" in body["system"][1]
    names = [t["name"] for t in body["tools"]]
    assert len(names) == 24 and names[:3] == ["Agent", "AskUserQuestion", "Bash"]
    for tool in body["tools"]:
        assert set(tool) == {"name", "description", "input_schema"}
        schema = tool["input_schema"]
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["additionalProperties"] is False
    assert body["messages"][0]["content"][0]["text"].startswith("<system-reminder>")
    assert body["messages"][-1]["role"] == "system"
    assert isinstance(body["metadata"]["user_id"], str)
    _, turn2 = load_request("claude_code_turn2_request.json")
    assistant, result = turn2["messages"][-2:]
    assert [b["type"] for b in assistant["content"]] == ["thinking", "tool_use"]
    assert result["content"][0]["is_error"] is False
    assert result["content"][0]["tool_use_id"] == assistant["content"][1]["id"]


def test_sse_fixture_shapes() -> None:
    vllm = load_sse_json("vllm_stream_reasoning_tools.sse")
    assert vllm[-1]["choices"] == [] and "usage" in vllm[-1]
    assert vllm[-2]["choices"][0]["finish_reason"] == "tool_calls"
    ollama = load_sse_json("ollama_stream_tools.sse")
    assert ollama[-1]["choices"][0]["finish_reason"] == "stop"
    anthropic_events = load_sse("anthropic_stream_thinking_tools.sse")
    assert all(e.event == e.json()["type"] for e in anthropic_events)


def test_raw_stream_sources(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.sse"
    path.write_bytes(b"data: 1\n\n")
    assert RawStream(path).data() == b"data: 1\n\n"
    assert RawStream(str(path)).data() == b"data: 1\n\n"
    assert RawStream("data: 2\n\n").data() == b"data: 2\n\n"
    assert RawStream(b"data: 3\n\n").frames() == [b"data: 3\n\n"]
    assert RawStream("ollama_stream_tools.sse").data().endswith(b"data: [DONE]\n\n")
