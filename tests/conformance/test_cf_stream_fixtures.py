"""Recorded upstream streams (tests/fixtures/*.sse) replayed by the fakes through the gateway: the
client-side final message from the SDK accumulators, and the strict wire check."""

from __future__ import annotations

import json

import pytest
from tests.conformance.drive import a_stream, o_stream, raw_a
from tests.conformance.sse_checks import check_anthropic_sse
from tests.e2e.harness import Stack
from tests.fakes import RawStream
from tests.support.fixtures import load_bytes, load_sse_json

TOOLS = [
    {"name": n, "input_schema": {"type": "object", "properties": {}}}
    for n in ("get_weather", "get_time", "list_files", "Bash")
]


def _thinking_of(name: str) -> str:
    out = ""
    for c in load_sse_json(name):
        for ch in c.get("choices") or []:
            d = ch.get("delta") or {}
            out += d.get("reasoning") or d.get("reasoning_content") or ""
    return out


EXPECT = {
    "vllm_stream_reasoning_tools.sse": (
        "coder",
        "Let me check both for you.",
        [
            ("get_weather", {"city": "Paris", "unit": "celsius"}),
            ("get_time", {"timezone": "Europe/Paris"}),
        ],
        (318, 71),
    ),
    "vllm_stream_reasoning_content.sse": (
        "coder",
        "Listing the files now.",
        [("list_files", {"path": ".", "recursive": False})],
        (205, 42),
    ),
    "ollama_stream_tools.sse": (
        "llama",
        None,
        [
            ("get_weather", {"city": "Paris", "unit": "celsius"}),
            ("get_time", {"timezone": "Europe/Paris"}),
        ],
        None,  # Ollama sends no usage: estimated, but never missing or zero
    ),
}


@pytest.mark.parametrize("name", list(EXPECT))
def test_openai_stream_fixture_to_anthropic_client(stack: Stack, name: str) -> None:
    model, text, calls, usage = EXPECT[name]
    fake = stack.ollama if model == "llama" else stack.vllm
    fake.enqueue(RawStream(name))
    r = a_stream(
        stack,
        model=model,
        max_tokens=1000,
        tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "go"}],
    )
    final, wire = r.final, r.wire
    kinds = ["thinking"] + (["text"] if text else []) + ["tool_use"] * len(calls)
    assert [b.type for b in final.content] == kinds
    assert final.content[0].thinking == _thinking_of(name)
    assert final.content[0].signature  # synthetic, but present (and never sent to Anthropic)
    if text:
        assert final.content[1].text == text
    tools = [b for b in final.content if b.type == "tool_use"]
    assert [(t.name, t.input) for t in tools] == calls
    ids = [t.id for t in tools]
    assert len(set(ids)) == len(ids) and all(ids)
    assert final.stop_reason == "tool_use"  # Ollama said "stop"
    assert final.model == model
    if usage:
        assert (final.usage.input_tokens, final.usage.output_tokens) == usage
    else:
        assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    assert wire.start_usage["input_tokens"] > 0


def test_anthropic_stream_fixture_to_openai_client(stack: Stack) -> None:
    stack.anthropic_fake.enqueue(RawStream("anthropic_stream_thinking_tools.sse"))
    r = o_stream(
        stack,
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "list files"}],
        tools=[{"type": "function", "function": {"name": "Bash", "parameters": {}}}],
        stream_options={"include_usage": True},
    )
    w = r.wire
    assert w.reasoning == (
        "The user wants the files in the current directory listed and counted. I'll run "
        "`ls -1` so each entry is on its own line, then count them."
    )
    assert w.content == "I'll list the files in the current directory."
    assert len(w.tool_calls) == 1
    call = w.tool_calls[0]
    assert (call["id"], call["name"]) == ("toolu_01Kq7WfXn3bT9pZcR4vYhL2m", "Bash")
    assert json.loads(call["arguments"]) == {
        "command": "ls -1",
        "description": "List files in current directory",
    }
    assert w.finish_reason == "tool_calls"
    assert w.usage is not None
    assert w.usage["prompt_tokens"] == 412 + 21873
    assert w.usage["prompt_tokens_details"]["cached_tokens"] == 21873
    assert w.usage["completion_tokens"] == 121
    # the SDK iterator saw the same thing
    sdk_args = "".join(
        tc.function.arguments or ""
        for c in r.chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
    )
    assert json.loads(sdk_args)["command"] == "ls -1"


def test_anthropic_stream_fixture_relayed_verbatim_to_anthropic_client(stack: Stack) -> None:
    """A->A: the upstream's bytes are the client's bytes (signature, cache usage, ping...)."""
    stack.anthropic_fake.enqueue(RawStream("anthropic_stream_thinking_tools.sse"))
    r = raw_a(
        stack,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 2048,
            "stream": True,
            "messages": [{"role": "user", "content": "list files"}],
        },
        "/v1/messages?beta=true",
    )
    assert r.status == 200
    assert r.body == load_bytes("anthropic_stream_thinking_tools.sse")
    wire = check_anthropic_sse(r.body)
    assert wire.block_types == ["thinking", "text", "tool_use"]
    assert wire.usage["cache_read_input_tokens"] == 21873
    stack.anthropic_fake.enqueue(RawStream("anthropic_stream_thinking_tools.sse"))
    final = a_stream(
        stack,
        model="claude-sonnet-4-5",
        max_tokens=2048,
        messages=[{"role": "user", "content": "list files"}],
    ).final
    assert final.content[2].input == {
        "command": "ls -1",
        "description": "List files in current directory",
    }
    assert final.usage.cache_read_input_tokens == 21873
