"""Stored bodies replayed as streams and recorded from streams, checked with the official SDKs:
what a client accumulates from a replayed stream is exactly the stored body."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from tests.support.fixtures import load_bytes

from dragoman.cache import (
    AnthropicRecorder,
    OpenAIRecorder,
    ResponseCache,
    anthropic_stream,
    decode,
    encode,
    fresh_body,
    openai_stream,
)
from dragoman.config import CacheConfig
from dragoman.state import MemoryState


def _client_stream(kind: str, sse: bytes) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    if kind == "anthropic":
        return anthropic.Anthropic(api_key="k", base_url="http://gw", http_client=http)
    return openai.OpenAI(api_key="k", base_url="http://gw/v1", http_client=http)


def sdk_anthropic(sse: bytes) -> dict[str, Any]:
    client = _client_stream("anthropic", sse)
    with client.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as s:
        return s.get_final_message().model_dump(exclude_none=True)


def sdk_openai(sse: bytes) -> dict[str, Any]:
    client = _client_stream("openai", sse)
    with client.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "x"}]
    ) as s:
        return s.get_final_completion().model_dump(exclude_none=True, exclude_unset=True)


def record(rec: AnthropicRecorder | OpenAIRecorder, sse: bytes, step: int = 7) -> None:
    for i in range(0, len(sse), step):  # in odd pieces, as a network delivers them
        rec.feed(sse[i : i + step])


def joined(frames: Iterator[bytes]) -> bytes:
    return b"".join(frames)


def test_anthropic_fixture_recorded_then_replayed() -> None:
    sse = load_bytes("anthropic_stream_thinking_tools.sse")
    rec = AnthropicRecorder(1 << 20)
    record(rec, sse)
    body = rec.body()
    assert body is not None
    # what we rebuilt is what the SDK rebuilds from the same upstream stream (which drops
    # the fields that are null)
    sdk = sdk_anthropic(sse)
    assert {k: v for k, v in body.items() if v is not None} == sdk
    kinds = [b["type"] for b in body["content"]]
    assert "thinking" in kinds and "tool_use" in kinds
    # replayed: the SDK gets the stored body back, block for block
    replayed = sdk_anthropic(joined(anthropic_stream(body)))
    for k in ("id", "role", "model", "content", "stop_reason", "stop_sequence"):
        assert replayed.get(k) == body[k]
    assert replayed["usage"]["output_tokens"] == body["usage"]["output_tokens"]
    assert replayed["usage"]["cache_read_input_tokens"] == body["usage"]["cache_read_input_tokens"]
    again = AnthropicRecorder(1 << 20)
    record(again, joined(anthropic_stream(body)))
    assert again.body() == body


CHAT: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-bench",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Calling both.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "time", "arguments": "{}"},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
}


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_replayed_then_recorded(include_usage: bool) -> None:
    sse = joined(openai_stream(CHAT, include_usage))
    assert sse.endswith(b"data: [DONE]\n\n")
    assert (b'"usage":{"prompt_tokens"' in sse) is include_usage
    got = sdk_openai(sse)
    assert got["choices"][0]["message"]["content"] == "Calling both."
    calls = got["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("call_a", "weather", '{"city": "Paris"}'),
        ("call_b", "time", "{}"),
    ]
    assert got["choices"][0]["finish_reason"] == "tool_calls"
    assert (got.get("usage") == CHAT["usage"]) is include_usage
    rec = OpenAIRecorder(1 << 20)
    record(rec, sse)
    # without the usage chunk, the gateway's own usage fills in
    assert rec.body(usage=CHAT["usage"]) == CHAT


def test_openai_fixture_recorded_like_the_sdk() -> None:
    sse = load_bytes("vllm_stream_reasoning_tools.sse")
    rec = OpenAIRecorder(1 << 20)
    record(rec, sse)
    body = rec.body()
    assert body is not None
    sdk = sdk_openai(sse)
    msg, sdk_msg = body["choices"][0]["message"], sdk["choices"][0]["message"]
    assert msg["tool_calls"] == [
        {k: v for k, v in c.items() if k != "index"} for c in sdk_msg["tool_calls"]
    ]
    assert body["choices"][0]["finish_reason"] == sdk["choices"][0]["finish_reason"]
    assert body["usage"] == sdk["usage"]
    assert msg["reasoning"]  # vLLM's reasoning field kept, for a replay to carry it back
    rec2 = OpenAIRecorder(1 << 20)
    record(rec2, joined(openai_stream(body, include_usage=True)))
    assert rec2.body() == body


def test_incomplete_or_failed_streams_are_not_recorded() -> None:
    sse = load_bytes("anthropic_stream_thinking_tools.sse")
    cut = AnthropicRecorder(1 << 20)
    record(cut, sse[: sse.index(b"event: message_stop")])
    assert cut.body() is None
    failed = AnthropicRecorder(1 << 20)
    record(
        failed,
        sse[: sse.index(b"event: message_delta")]
        + b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n',
    )
    assert failed.body() is None
    o = joined(openai_stream(CHAT))
    no_done = OpenAIRecorder(1 << 20)
    record(no_done, o[: o.index(b"data: [DONE]")])
    assert no_done.body() is None
    err = OpenAIRecorder(1 << 20)
    record(err, o[:200] + b'\n\ndata: {"error": {"message": "boom"}}\n\n' + b"data: [DONE]\n\n")
    assert err.body() is None
    small = AnthropicRecorder(100)  # a stream far over the entry size stops being parsed
    record(small, sse)
    assert small.body() is None and small.failed


def test_fresh_ids_on_every_replay() -> None:
    a = fresh_body("openai", CHAT)
    b = fresh_body("openai", CHAT)
    assert a["id"] != b["id"] != CHAT["id"] and a["id"].startswith("chatcmpl-")
    assert {k: v for k, v in a.items() if k not in ("id", "created")} == {
        k: v for k, v in CHAT.items() if k not in ("id", "created")
    }
    m = fresh_body("anthropic", {"id": "msg_1", "content": []})
    assert m["id"].startswith("msg_") and m["id"] != "msg_1"


async def test_store_size_limit_ttl_and_dialect() -> None:
    t = [0.0]
    st = MemoryState(clock=lambda: t[0])
    cfg = CacheConfig(ttl=10, max_entry_bytes=len(encode("openai", CHAT, now=0)) + 40)
    cache = ResponseCache(cfg, st)
    assert await cache.put("k", "openai", CHAT)
    hit = await cache.lookup("k", "openai")
    assert hit is not None and hit.body == CHAT and hit.dialect == "openai"
    assert await cache.lookup("k", "anthropic") is None  # never replayed across dialects
    big = copy.deepcopy(CHAT)
    big["choices"][0]["message"]["content"] = "x" * 100
    assert not await cache.put("big", "openai", big)
    assert await cache.lookup("big", "openai") is None
    t[0] = 10.0
    assert await cache.lookup("k", "openai") is None
    await st.set("junk", b"not an entry", 10)
    assert await cache.lookup("junk", "openai") is None
    assert decode(b"\xff") is None
