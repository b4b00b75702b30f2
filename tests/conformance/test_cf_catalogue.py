"""The translation failure catalogue (docs/failure-catalogue.md), one test per item, over every
path the item applies to. Each test drives the gateway with an official SDK (and/or raw HTTP),
holds every Anthropic-dialect stream to the strict grammar of sse_checks.py, and asserts on what
the upstream fake received.

Paths (drive.py): A->A (Anthropic SDK -> Anthropic fake), A->O/{vllm,ollama,openai} (Anthropic
SDK -> OpenAI-compatible fakes, translated), O->A (OpenAI SDK -> Anthropic fake, translated),
O->O/{vllm,ollama,openai} (OpenAI SDK -> OpenAI-compatible fakes, pass-through).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from tests.conformance.drive import (
    A2A,
    A2O_OLLAMA,
    A2O_OPENAI,
    A2O_VLLM,
    A_PATHS,
    ALL_PATHS,
    O2A,
    O2O_OLLAMA,
    O2O_OPENAI,
    O2O_VLLM,
    Path,
    RecordingAccountant,
    a_create,
    a_stream,
    anthropic_client,
    ids,
    keys_anywhere,
    last_sent,
    o_create,
    o_stream,
    raw_a,
    raw_o,
    script,
    start_custom_stack,
    tool_args,
)
from tests.conformance.sse_checks import check_anthropic_sse, check_openai_sse
from tests.e2e.harness import Stack, stop_stack
from tests.fakes import (
    ChatReply,
    OpenAIErrorReply,
    RawStream,
    Reply,
    error_reply,
    text_block,
    thinking_block,
    tool_use_block,
)
from tests.fakes import tokens as fake_tokens
from tests.fakes.sse import OPENAI_DONE, anthropic_frame, openai_frame

from dragoman.accounting.prices import PriceBook, cost

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {
    "name": "get_time",
    "description": "Local time in a timezone",
    "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}},
}
O_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER["input_schema"],
    },
}
O_TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": TIME["input_schema"]},
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
REASONING = "Need the weather and the time, so both tools."
CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"timezone": "Europe/Paris"})]
PROMPT_TOO_LONG = re.compile(r"^prompt is too long: (\d+) tokens > (\d+) maximum$")


def a_req(path: Path, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": path.model,
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": "Weather and time in Paris?"}],
        "tools": [WEATHER, TIME],
    }
    body.update(kw)
    return body


def o_req(path: Path, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": path.model,
        "messages": [{"role": "user", "content": "Weather and time in Paris?"}],
        "tools": [O_WEATHER, O_TIME],
    }
    body.update(kw)
    return body


def tool_reply(
    stack: Stack,
    path: Path,
    *,
    text: str | None = "Let me check both.",
    reasoning: str | None = REASONING,
    calls: list[tuple[str, dict[str, Any]]] = CALLS,
    finish: str | None = None,
    **chat_kw: Any,
) -> None:
    blocks: list[dict[str, Any]] = []
    if reasoning:
        blocks.append(thinking_block(reasoning))
    if text:
        blocks.append(text_block(text))
    blocks += [tool_use_block(n, a) for n, a in calls]
    script(
        stack,
        path,
        anthropic_reply=Reply(content=blocks),
        openai_reply=ChatReply(
            content=text,
            reasoning=reasoning,
            tool_calls=[(f"call_{i}x", n, a) for i, (n, a) in enumerate(calls)],
            finish_reason=finish,
            **chat_kw,
        ),
    )


def vllm_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    return openai_frame(
        {
            "id": "chatcmpl-raw",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "qwen3-coder",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
    )


def raw_vllm_stream(*frames: bytes, usage: dict[str, int] | None = None) -> RawStream:
    body = b"".join(frames)
    if usage:
        body += openai_frame(
            {
                "id": "chatcmpl-raw",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "qwen3-coder",
                "choices": [],
                "usage": usage,
            }
        )
    return RawStream(body + OPENAI_DONE)


def tc(index: int, *, id: str | None = None, name: str | None = None, args: Any = None) -> dict:
    call: dict[str, Any] = {"index": index}
    fn: dict[str, Any] = {}
    if id:
        call["id"] = id
        call["type"] = "function"
    if name:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    call["function"] = fn
    return call


@pytest.fixture(scope="module")
def _acct_stack() -> Iterator[tuple[Stack, RecordingAccountant]]:
    acct = RecordingAccountant()
    s = start_custom_stack(accountant=acct)
    yield s, acct
    stop_stack(s)


@pytest.fixture
def acct_stack(
    _acct_stack: tuple[Stack, RecordingAccountant],
) -> tuple[Stack, RecordingAccountant]:
    _acct_stack[0].reset()
    _acct_stack[1].settled.clear()
    return _acct_stack


# =============================================================================== 1


def _interleaved_raw() -> RawStream:
    """A vLLM stream that interleaves everything: reasoning after text, text after a tool call,
    parallel tool-call fragments alternating between two calls, whole-call chunks."""
    return raw_vllm_stream(
        vllm_chunk({"role": "assistant", "content": ""}),
        vllm_chunk({"content": "First "}),
        vllm_chunk({"reasoning": "hmm, "}),
        vllm_chunk({"content": "text."}),
        vllm_chunk({"tool_calls": [tc(0, id="call_a", name="get_weather", args="")]}),
        vllm_chunk({"tool_calls": [tc(0, args='{"city": ')]}),
        vllm_chunk({"tool_calls": [tc(1, id="call_b", name="get_time", args="")]}),
        vllm_chunk({"tool_calls": [tc(1, args='{"timezone": "UTC"}')]}),
        vllm_chunk({"tool_calls": [tc(0, args='"Paris"}')]}),
        vllm_chunk({"content": "More text after tools."}),
        vllm_chunk({"reasoning": "late thought"}),
        vllm_chunk({}, "tool_calls"),
        usage={"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    )


SHAPES = [pytest.param(p, "sequential", id=f"{p.id}-sequential") for p in ALL_PATHS] + [
    pytest.param(p, "interleaved-raw", id=f"{p.id}-interleaved-raw") for p in (A2O_VLLM, O2O_VLLM)
]


@pytest.mark.parametrize(("path", "shape"), SHAPES)
def test_01_content_block_not_found__deltas_only_for_started_blocks(
    stack: Stack, path: Path, shape: str
) -> None:
    """Reasoning + text + two tool calls, streamed: no delta for a block that was not started,
    blocks closed before the next opens, indices 0..n in start order (OpenAI clients: tool-call
    indices 0..n, id and name on each call's first fragment, one finish chunk)."""
    if shape == "interleaved-raw":
        stack.vllm.enqueue(_interleaved_raw())
    else:
        tool_reply(stack, path)
    if path.client == "anthropic":
        r = a_stream(stack, **a_req(path, thinking={"type": "enabled", "budget_tokens": 1024}))
        wire = r.wire
        assert [b["index"] for _, b in wire.events if _ == "content_block_start"] == list(
            range(len(wire.content))
        )
        tools = wire.blocks("tool_use")
        assert [t["name"] for t in tools] == ["get_weather", "get_time"]
        if shape == "interleaved-raw":
            assert [t["input"] for t in tools] == [{"city": "Paris"}, {"timezone": "UTC"}]
            texts = "".join(b["text"] for b in wire.blocks("text"))
            assert texts == "First text.More text after tools."
            thinking = "".join(b["thinking"] for b in wire.blocks("thinking"))
            assert thinking == "hmm, late thought"
        else:
            assert [t["input"] for t in tools] == [a for _, a in CALLS]
            assert [b.input for b in r.final.content if b.type == "tool_use"] == [
                a for _, a in CALLS
            ]
    else:
        r2 = o_stream(stack, **o_req(path))
        assert [c["name"] for c in r2.wire.tool_calls] == ["get_weather", "get_time"]
        if shape == "interleaved-raw":
            assert [json.loads(c["arguments"]) for c in r2.wire.tool_calls] == [
                {"city": "Paris"},
                {"timezone": "UTC"},
            ]
        else:
            assert [json.loads(c["arguments"]) for c in r2.wire.tool_calls] == [a for _, a in CALLS]


# =============================================================================== 2


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("path", ALL_PATHS, ids=ids(ALL_PATHS))
def test_02_tool_call_ignored__stop_reason_tool_use(stack: Stack, path: Path, stream: bool) -> None:
    """A turn with text and a tool call whose upstream says ``finish_reason: "stop"`` (Ollama
    always, api.openai.com for forced calls) must end with ``stop_reason: tool_use`` for
    Anthropic clients and ``finish_reason: tool_calls`` for OpenAI clients of Anthropic."""
    calls = CALLS[:1]
    # openai-compatible upstreams say "stop" although they called a tool
    tool_reply(stack, path, reasoning=None, calls=calls, finish="stop")
    if path.client == "anthropic":
        body = a_req(path)
        final = a_stream(stack, **body).final if stream else a_create(stack, **body)
        assert final.stop_reason == "tool_use"
        tool = [b for b in final.content if b.type == "tool_use"]
        assert len(tool) == 1 and tool[0].name == "get_weather"
        assert tool[0].input == {"city": "Paris"}
        return
    if stream:
        r = o_stream(stack, **o_req(path))
        names = [c["name"] for c in r.wire.tool_calls]
        args = [json.loads(c["arguments"]) for c in r.wire.tool_calls]
        finish = r.wire.finish_reason
    else:
        resp = o_create(stack, **o_req(path))
        names = [c.function.name for c in resp.choices[0].message.tool_calls or []]
        args = [tool_args(c) for c in resp.choices[0].message.tool_calls or []]
        finish = resp.choices[0].finish_reason
    assert names == ["get_weather"] and args == [{"city": "Paris"}]
    if path.to_anthropic:
        assert finish == "tool_calls"
    else:  # pass-through: the upstream's own finish_reason, tool calls intact
        assert finish == "stop"


# =============================================================================== 3


_LEAKED_THINK = raw_vllm_stream(
    vllm_chunk({"role": "assistant", "content": ""}),
    vllm_chunk({"content": "<thi"}),
    vllm_chunk({"content": "nk>secret plan"}),
    vllm_chunk({"content": " continues</th"}),
    vllm_chunk({"content": "ink>\nThe answer."}),
    vllm_chunk({}, "stop"),
    usage={"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
)


@pytest.mark.parametrize(
    "case",
    [
        "A->A",
        "A->O/vllm:reasoning",
        "A->O/vllm:reasoning_content",
        "A->O/vllm:leaked-think-tags",
        "A->O/ollama",
        "O->A",
        "O->O/vllm",
    ],
)
def test_03_reasoning_not_streamed_as_text(stack: Stack, case: str) -> None:
    """Chain of thought arrives in ``reasoning``/``reasoning_content`` (or leaked ``<think>``
    tags): it must become a thinking block (OpenAI clients: reasoning field), never text, and
    there is exactly one ``message_start`` (checked by the strict checker)."""
    thought, answer = "secret plan continues", "The answer."
    if case == "A->O/vllm:leaked-think-tags":
        stack.vllm.enqueue(_LEAKED_THINK)
    elif case == "A->O/vllm:reasoning_content":
        stack.vllm.enqueue(RawStream("vllm_stream_reasoning_content.sse"))
    elif case in ("A->A", "O->A"):
        stack.anthropic_fake.enqueue(Reply(content=[thinking_block(thought), text_block(answer)]))
    else:
        fake = stack.ollama if "ollama" in case else stack.vllm
        fake.enqueue(ChatReply(content=answer, reasoning=thought))
    if case.startswith("A->"):
        model = {"A->A": "claude-sonnet-4-5", "A->O/ollama": "llama"}.get(case, "coder")
        r = a_stream(
            stack,
            model=model,
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "think"}],
        )
        assert r.wire.names.count("message_start") == 1
        texts = "".join(b["text"] for b in r.wire.blocks("text"))
        thinking = "".join(b["thinking"] for b in r.wire.blocks("thinking"))
        assert r.wire.block_types[0] == "thinking"
        if case == "A->O/vllm:reasoning_content":  # the recorded DeepSeek-style stream
            assert thinking == "Okay, the user wants the file list. I'll call list_files."
            assert texts == "Listing the files now."
        else:
            assert thinking == thought
            assert texts == answer
        assert "<think>" not in texts and "</think>" not in texts
        assert [b.thinking for b in r.final.content if b.type == "thinking"] == [thinking]
        return
    model = "claude-sonnet-4-5" if case == "O->A" else "coder"
    r2 = o_stream(
        stack,
        model=model,
        messages=[{"role": "user", "content": "think"}],
        **({"reasoning_effort": "low", "max_tokens": 4000} if case == "O->A" else {}),
    )
    assert r2.wire.content == answer
    assert r2.wire.reasoning == thought


# =============================================================================== 4


def _history_with_thinking(signature: str = "sig-from-somewhere") -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": signature},
                {
                    "type": "tool_use",
                    "id": "toolu_01A",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"}],
        },
    ]


@pytest.fixture
def deepseek_stack(_deepseek_stack: Stack) -> Stack:
    _deepseek_stack.reset()
    return _deepseek_stack


@pytest.fixture(scope="module")
def _deepseek_stack() -> Iterator[Stack]:
    """A DeepSeek-flavoured provider (reasoning must go back as ``reasoning_content``), served by
    a vLLM-mode fake that speaks ``reasoning_content``."""

    def edit(cfg: dict[str, Any], fakes: dict[str, Any]) -> None:
        cfg["providers"]["deepseek"] = {
            "kind": "openai",
            "base_url": fakes["vllm"].base_url,
            "api_key": fakes["vllm"].api_key,
            "flavor": "deepseek",
        }
        cfg["models"]["ds"] = {"provider": "deepseek", "model": "qwen3-coder"}

    s = start_custom_stack(edit, vllm={"reasoning_field": "reasoning_content"})
    yield s
    stop_stack(s)


@pytest.mark.parametrize(
    "case",
    ["A->O/vllm", "A->O/ollama", "A->O/deepseek", "A->O/openai", "O->A", "O->O/vllm"],
)
def test_04_reasoning_content_passed_back(stack: Stack, deepseek_stack: Stack, case: str) -> None:
    """Multi-turn tool use with thinking in history: the reasoning goes back on the assistant
    message in the backend's own field (vLLM/Ollama ``reasoning``, DeepSeek
    ``reasoning_content``); api.openai.com gets no unknown field; Anthropic gets no unsigned
    thinking built from OpenAI reasoning; O->O passes the field through untouched."""
    if case == "A->O/deepseek":
        s, model, fake, field = deepseek_stack, "ds", deepseek_stack.vllm, "reasoning_content"
    else:
        s = stack
        model, fake, field = {
            "A->O/vllm": ("coder", stack.vllm, "reasoning"),
            "A->O/ollama": ("llama", stack.ollama, "reasoning"),
            "A->O/openai": ("gpt-4.1", stack.oai, None),
            "O->A": ("claude-sonnet-4-5", stack.anthropic_fake, None),
            "O->O/vllm": ("coder", stack.vllm, "reasoning_content"),
        }[case]
    if case.startswith("A->"):
        msg = a_create(
            s,
            model=model,
            max_tokens=1024,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=_history_with_thinking(),
            tools=[WEATHER],
        )
        assert msg.content[-1].type == "text"
        sent = fake.last_request.body
        assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
        assert assistant["tool_calls"][0]["id"] == "toolu_01A"
        if field:
            assert assistant[field] == "I should call the tool."
            other = {"reasoning", "reasoning_content"} - {field}
            assert not other & set(assistant)
        else:  # api.openai.com: strict fake accepted it, and no reasoning key was sent
            assert not {"reasoning", "reasoning_content"} & set(assistant)
        assert "signature" not in keys_anywhere(sent)
        assert "thinking" not in keys_anywhere(sent["messages"])
        # only DeepSeek takes a top-level thinking switch (its own, not Anthropic's object)
        assert sent.get("thinking") == ({"type": "enabled"} if case == "A->O/deepseek" else None)
        return
    resp = o_create(
        s,
        model=model,
        max_tokens=1024,
        tools=[O_WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "I should call the tool.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ],
    )
    assert resp.choices[0].message.content
    sent = fake.last_request.body
    if case == "O->A":
        blocks = [b for m in sent["messages"] for b in m["content"] if isinstance(b, dict)]
        assert "thinking" not in [b["type"] for b in blocks]
        assert [b["type"] for b in blocks] == ["text", "tool_use", "tool_result"]
    else:
        assert sent["messages"][1]["reasoning_content"] == "I should call the tool."


# =============================================================================== 5


@pytest.mark.parametrize(
    "case",
    [
        "A->A:history-forwarded-verbatim",
        "A->A:stream-signature-relayed",
        "A->O then A->A:synthetic-stripped",
        "A->O:signature-never-sent",
        "O->A:unsigned-reasoning-dropped",
    ],
)
def test_05_thinking_signature_untouched_or_stripped(stack: Stack, case: str) -> None:
    """Thinking signatures reach Anthropic byte-exact; signatures the gateway minted for
    non-Anthropic reasoning never do (channel switch mid-conversation); no signature ever goes
    to an OpenAI-compatible upstream."""
    fake = stack.anthropic_fake
    if case == "A->A:history-forwarded-verbatim":
        sig = fake.issue_signature()
        fake.enqueue(Reply(content="ok"))
        a_stream(
            stack,
            **a_req(
                A2A,
                thinking={"type": "enabled", "budget_tokens": 1024},
                messages=_history_with_thinking(sig),
            ),
        )
        sent = fake.last_request.body
        assert sent["messages"][1]["content"][0] == {
            "type": "thinking",
            "thinking": "I should call the tool.",
            "signature": sig,
        }
        assert f'"signature":"{sig}"'.encode() in fake.last_request.raw
    elif case == "A->A:stream-signature-relayed":
        fake.enqueue(RawStream("anthropic_stream_thinking_tools.sse"))
        r = a_stream(stack, **a_req(A2A, thinking={"type": "enabled", "budget_tokens": 1024}))
        upstream_sig = next(
            e.json()["delta"]["signature"]
            for e in _fixture_events("anthropic_stream_thinking_tools.sse")
            if e.event == "content_block_delta" and e.json()["delta"]["type"] == "signature_delta"
        )
        assert r.wire.blocks("thinking")[0]["signature"] == upstream_sig
        assert r.final.content[0].signature == upstream_sig
    elif case == "A->O then A->A:synthetic-stripped":
        sig = fake.issue_signature()
        stack.vllm.enqueue(
            ChatReply(reasoning="local thought", tool_calls=[("call_9", "get_weather", {})])
        )
        turn1 = a_stream(
            stack,
            **a_req(A2O_VLLM, thinking={"type": "enabled", "budget_tokens": 1024}, tools=[WEATHER]),
        ).final
        history = [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "real thought", "signature": sig},
                    {"type": "text", "text": "Asking the other model."},
                ],
            },
            {"role": "user", "content": "go on"},
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in turn1.content],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_9", "content": "18C"}],
            },
        ]
        fake.enqueue(Reply(content="Done."))
        final = a_stream(
            stack,
            model="claude-sonnet-4-5",
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            tools=[WEATHER],
            messages=history,
        ).final
        assert final.content[0].text == "Done."
        sent = fake.last_request.body
        sigs = [
            b.get("signature")
            for m in sent["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "thinking"
        ]
        assert sigs == [sig]  # the real one kept verbatim, the minted one gone
    elif case == "A->O:signature-never-sent":
        stack.vllm.enqueue(ChatReply(content="ok"))
        a_create(stack, **a_req(A2O_VLLM, messages=_history_with_thinking("EqREALsig==")))
        assert b"EqREALsig==" not in stack.vllm.last_request.raw
    else:
        fake.enqueue(Reply(content="fine"))
        resp = o_create(
            stack,
            model="claude-sonnet-4-5",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello", "reasoning_content": "unsigned"},
                {"role": "user", "content": "again"},
            ],
            reasoning_effort="low",
            max_tokens=3000,
        )
        assert resp.choices[0].message.content == "fine"
        assert b"unsigned" not in fake.last_request.raw


def _fixture_events(name: str) -> list[Any]:
    from tests.support.fixtures import load_sse

    return load_sse(name)


# =============================================================================== 6


CACHED = {"prompt_tokens": 3000, "completion_tokens": 12, "total_tokens": 3012}


def _cache_request_a(path: Path) -> dict[str, Any]:
    cc = {"type": "ephemeral"}
    return a_req(
        path,
        system=[{"type": "text", "text": "You are terse.", "cache_control": cc}],
        tools=[{**WEATHER, "cache_control": cc}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Weather?", "cache_control": cc}],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "-3C",
                        "cache_control": cc,
                    }
                ],
            },
        ],
    )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("path", ALL_PATHS, ids=ids(ALL_PATHS))
def test_06_cache_control_kept_and_cache_usage_mapped(
    stack: Stack, path: Path, stream: bool
) -> None:
    """``cache_control`` on system, tools, tool_use/tool_result reaches Anthropic untouched and
    never reaches an OpenAI-compatible backend; cache usage is mapped back: Anthropic
    ``cache_read_input_tokens`` <-> OpenAI ``prompt_tokens_details.cached_tokens``, with
    ``input_tokens`` excluding the cached part and ``prompt_tokens`` including it."""
    a_usage = {
        "input_tokens": 100,
        "cache_read_input_tokens": 2800,
        "cache_creation_input_tokens": 100,
        "output_tokens": 12,
    }
    o_usage = {**CACHED, "prompt_tokens_details": {"cached_tokens": 2800}}
    script(
        stack,
        path,
        anthropic_reply=Reply(content="Cold.", usage=a_usage),
        openai_reply=ChatReply(content="Cold.", usage=o_usage),
    )
    if path.client == "anthropic":
        body = _cache_request_a(path)
        if stream:
            r = a_stream(stack, **body)
            usage = r.final.usage
            assert r.wire.usage["cache_read_input_tokens"] == usage.cache_read_input_tokens
        else:
            usage = a_create(stack, **body).usage
        sent = last_sent(stack, path)
        if path.to_anthropic:
            assert sent["system"] == body["system"]
            assert sent["tools"] == body["tools"]
            assert sent["messages"] == body["messages"]
            assert (usage.input_tokens, usage.cache_read_input_tokens) == (100, 2800)
            assert usage.cache_creation_input_tokens == 100
        else:
            assert "cache_control" not in keys_anywhere(sent)
            assert usage.cache_read_input_tokens == 2800
            assert usage.input_tokens == 200  # 3000 prompt - 2800 cached
            assert usage.output_tokens == 12
        return
    msgs = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather?"},
    ]
    if stream:
        r2 = o_stream(
            stack, model=path.model, messages=msgs, stream_options={"include_usage": True}
        )
        usage_d = r2.wire.usage
        assert usage_d is not None
        prompt = usage_d["prompt_tokens"]
        cached = (usage_d.get("prompt_tokens_details") or {}).get("cached_tokens")
    else:
        resp = o_create(stack, model=path.model, messages=msgs)
        assert resp.usage is not None
        prompt = resp.usage.prompt_tokens
        details = resp.usage.prompt_tokens_details
        cached = details.cached_tokens if details else None
    assert prompt == 3000  # O->A: 100 + 2800 read + 100 written; O->O: upstream's own
    assert cached == 2800


# =============================================================================== 7


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("path", ALL_PATHS, ids=ids(ALL_PATHS))
def test_07_usage_split_and_streamed_cost(
    acct_stack: tuple[Stack, RecordingAccountant], path: Path, stream: bool
) -> None:
    """Usage is present and right everywhere: ``message_start`` carries a non-zero
    ``input_tokens`` (Claude Code's context meter), the final usage equals the upstream's split
    (input excludes cache), and the usage the gateway settles for a *streamed* request (what
    cost is computed from) is the upstream's real usage, so a streamed cost is never 0."""
    stack, acct = acct_stack
    a_usage = {"input_tokens": 700, "cache_read_input_tokens": 300, "output_tokens": 40}
    o_usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 40,
        "total_tokens": 1040,
        "prompt_tokens_details": {"cached_tokens": 300},
    }
    script(
        stack,
        path,
        anthropic_reply=Reply(content="A fine answer.", usage=a_usage),
        openai_reply=ChatReply(content="A fine answer.", usage=o_usage),
    )
    messages = [{"role": "user", "content": "Tell me something about Paris, briefly."}]
    if path.client == "anthropic":
        if stream:
            r = a_stream(stack, model=path.model, max_tokens=500, messages=messages)
            assert r.wire.start_usage["input_tokens"] > 0, "zero input_tokens in message_start"
            final_usage = r.final.usage
        else:
            final_usage = a_create(stack, model=path.model, max_tokens=500, messages=messages).usage
        assert final_usage.input_tokens == 700
        assert final_usage.cache_read_input_tokens == 300
        assert final_usage.output_tokens == 40
    else:
        if stream:
            r2 = o_stream(
                stack,
                model=path.model,
                messages=messages,
                max_tokens=500,
                stream_options={"include_usage": True},
            )
            u = r2.wire.usage
            assert u is not None
            assert (u["prompt_tokens"], u["completion_tokens"]) == (1000, 40)
            assert u["total_tokens"] == 1040
        else:
            resp = o_create(stack, model=path.model, messages=messages, max_tokens=500)
            assert resp.usage is not None
            assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (1000, 40)
    # what the books see (a stream settles when its generator finishes, just after the bytes)
    for _ in range(200):
        if acct.settled:
            break
        time.sleep(0.01)
    assert len(acct.settled) == 1
    kind, info, outcome = acct.settled[0]
    assert kind == "confirm"
    assert info.streamed is stream
    assert outcome.usage is not None and not outcome.usage.estimated
    assert (outcome.usage.input_tokens, outcome.usage.cache_read_input_tokens) == (700, 300)
    assert outcome.usage.output_tokens == 40
    price = PriceBook(stack.gateway.config).price_for(outcome.model, outcome.deployment)
    if price.input or price.output:
        assert cost(price, outcome.usage) > 0


# =============================================================================== 8


def _count_bodies() -> dict[str, dict[str, Any]]:
    from tests.support.fixtures import load_request

    _, cc = load_request("claude_code_count_tokens.json")
    loop = {
        "model": "x",
        "system": "Be helpful and brief.",
        "tools": [WEATHER, TIME],
        "messages": _history_with_thinking("EqSig"),
    }
    return {"claude-code-fixture": cc, "tool-loop": loop}


COUNT_CASES = [
    pytest.param(
        p,
        kind,
        id=f"{p.id}-{kind}",
    )
    for p in A_PATHS
    for kind in ("claude-code-fixture", "tool-loop")
]


@pytest.mark.parametrize(("path", "body_kind"), COUNT_CASES)
def test_08_count_tokens_honest(stack: Stack, path: Path, body_kind: str) -> None:
    """``POST /v1/messages/count_tokens?beta=true`` answers (never 404) with: the Anthropic
    upstream's number exactly; vLLM's ``/tokenize`` count exactly; on backends without a
    tokenizer (Ollama, api.openai.com) an estimate that is never below the backend's own count
    for the same messages (compaction must not fire late), never 0."""
    from tests.support.fixtures import load_request

    headers, _ = load_request("claude_code_count_tokens.json")
    body = {**_count_bodies()[body_kind], "model": path.model}
    if path is A2A:
        stack.anthropic_fake.trust_signatures_in(body)
    hdrs = {k: v for k, v in headers.items() if k not in ("x-api-key", "accept-encoding")}
    r = raw_a(stack, body, "/v1/messages/count_tokens?beta=true", **hdrs)
    assert r.status == 200, r.body
    got = r.json()["input_tokens"]
    assert isinstance(got, int) and got > 0
    if path is A2A:
        sent = stack.anthropic_fake.last_request
        assert sent.path == "/v1/messages/count_tokens"
        assert sent.headers["anthropic-beta"] == headers["anthropic-beta"]
        assert got == stack.anthropic_fake.count_tokens(sent.body)
        assert sent.body == body | {"model": "claude-sonnet-4-5"}
        return
    if path is A2O_VLLM:
        tok = stack.vllm.requests_to("/tokenize")
        assert len(tok) == 1
        assert got == fake_tokens.openai_prompt_tokens(
            tok[0].body["messages"], tok[0].body.get("tools")
        )
        return
    # no tokenizer upstream: compare with the backend's own count of the same request
    fake = path.fake(stack)
    assert not fake.requests, "count_tokens should not call a generation endpoint"
    chat_body = {**body, "max_tokens": 16}
    fake.enqueue(ChatReply(content="ok"))
    a_create(stack, **chat_body)
    upstream_count = fake.count_prompt_tokens(fake.last_request.body)
    anthropic_count = fake_tokens.anthropic_input_tokens(body)
    assert got >= upstream_count, f"estimate {got} < backend count {upstream_count}"
    assert got >= anthropic_count, f"estimate {got} < Anthropic-side count {anthropic_count}"


# =============================================================================== 9


ANTHROPIC_ONLY = {
    "context_management",
    "output_config",
    "thinking",
    "metadata",
    "cache_control",
    "service_tier",
    "container",
    "mcp_servers",
    "signature",
    "anthropic_beta",
}


@pytest.mark.parametrize("path", [*A_PATHS, O2A], ids=ids([*A_PATHS, O2A]))
def test_09_anthropic_only_fields_never_leak(stack: Stack, path: Path) -> None:
    """Newest Claude Code fields (``context_management`` + its beta, ``output_config.effort``,
    adaptive thinking, a JSON-string ``metadata.user_id``, ``cache_control`` with ttl, obsolete
    betas) reach Anthropic unchanged and never an OpenAI-compatible backend (api.openai.com's
    fake rejects unknown params; the vLLM fake notes ignored fields). OpenAI-only parameters
    never reach Anthropic (its fake rejects extra inputs)."""
    betas = (
        "claude-code-20250219,context-1m-2025-08-07,context-management-2025-06-27,effort-2025-11-24"
    )
    if path is O2A:
        stack.anthropic_fake.enqueue(Reply(content="ok"))
        resp = o_create(
            stack,
            model=path.model,
            messages=[{"role": "user", "content": "hi"}],
            seed=7,
            logit_bias={"50256": -100},
            frequency_penalty=0.5,
            presence_penalty=0.1,
            n=1,
            logprobs=False,
            user="someone",
            store=False,
            temperature=1.5,
            extra_body={"top_k": 5},
        )
        assert resp.choices[0].message.content == "ok"
        sent = stack.anthropic_fake.last_request.body
        assert not {"seed", "logit_bias", "frequency_penalty", "n", "logprobs", "store"} & set(sent)
        assert sent["temperature"] <= 1
        return
    script(stack, path, anthropic_reply=Reply(content="ok"), openai_reply=ChatReply(content="ok"))
    body = {
        "model": path.model,
        "max_tokens": 1024,
        "system": [
            {
                "type": "text",
                "text": "Be brief.",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ],
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "session_id": "s"})},
        "stream": True,
    }
    r = raw_a(stack, body, "/v1/messages?beta=true", **{"anthropic-beta": betas})
    assert r.status == 200, r.body
    wire = check_anthropic_sse(r.body)
    assert wire.block_types[-1] == "text"
    rec = path.fake(stack).last_request
    if path.to_anthropic:
        assert rec.headers["anthropic-beta"] == betas
        for k in ("context_management", "output_config", "thinking", "metadata", "system"):
            assert rec.body[k] == body[k]
        return
    leaked = keys_anywhere(rec.body) & ANTHROPIC_ONLY
    assert not leaked, f"Anthropic-only fields sent to {path.upstream}: {leaked}"
    assert "anthropic-beta" not in rec.headers
    assert not rec.notes, rec.notes  # vLLM/Ollama: no ignored (unknown) fields
    if path is A2O_OPENAI:
        # gpt-4.1 is not a reasoning model: api.openai.com would 400 on reasoning_effort
        # (reasoning models such as o4-mini get it: tests/e2e/test_paths_nonstream.py)
        assert "reasoning_effort" not in rec.body


# =============================================================================== 10


WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}


@pytest.mark.parametrize("tools", ["web_search+custom", "web_search-only"])
@pytest.mark.parametrize("path", [*A_PATHS, O2A], ids=ids([*A_PATHS, O2A]))
def test_10_web_search_server_tool(stack: Stack, path: Path, tools: str) -> None:
    """Claude Code's WebSearch request carries the ``web_search_20250305`` server tool: an
    OpenAI-compatible backend gets it dropped (never a 400, never ``tools: []``); Anthropic
    gets it untouched. OpenAI clients asking ``web_search_options`` get the server tool on
    Anthropic."""
    if path is O2A:
        stack.anthropic_fake.enqueue(Reply(content="found"))
        resp = o_create(
            stack,
            model=path.model,
            messages=[{"role": "user", "content": "news?"}],
            web_search_options={},
        )
        assert resp.choices[0].message.content == "found"
        sent_tools = stack.anthropic_fake.last_request.body["tools"]
        assert any(t.get("type", "").startswith("web_search_") for t in sent_tools)
        return
    tool_list = [WEB_SEARCH, WEATHER] if tools == "web_search+custom" else [WEB_SEARCH]
    script(stack, path, anthropic_reply=Reply(content="found"), openai_reply=ChatReply("found"))
    body = {
        "model": path.model,
        "max_tokens": 1024,
        "tools": tool_list,
        "messages": [{"role": "user", "content": "Perform a web search for: dragoman"}],
    }
    final = a_stream(stack, **body).final
    assert final.content[0].text == "found"
    sent = last_sent(stack, path)
    if path.to_anthropic:
        assert sent["tools"] == tool_list
        return
    names = [t["function"]["name"] for t in sent.get("tools") or []]
    assert "web_search" not in names
    if tools == "web_search-only":
        assert "tools" not in sent and "tool_choice" not in sent
    else:
        assert names == ["get_weather"]


# =============================================================================== 11


@pytest.fixture
def vision_stack(_vision_stack: Stack) -> Stack:
    _vision_stack.reset()
    return _vision_stack


@pytest.fixture(scope="module")
def _vision_stack() -> Iterator[Stack]:
    """Models without vision, via ``start_stack`` overrides (models section)."""
    from tests.e2e.harness import start_stack

    s = start_stack(
        {
            "models": {
                "claude-sonnet-4-5": {"provider": "anthropic", "max_output_tokens": 64000},
                "coder": {
                    "provider": "vllm",
                    "model": "qwen3-coder",
                    "context_window": 32768,
                    "max_output_tokens": 8192,
                    "vision": False,
                },
                "coder-seeing": {
                    "provider": "vllm",
                    "model": "qwen3-coder",
                    "context_window": 32768,
                    "vision": False,
                    "vision_model": "gpt-4.1",
                },
                "gpt-4.1": {"provider": "oai", "context_window": 128000},
                "llama": {"provider": "ollama", "model": "qwen3:8b", "context_window": 32768},
            }
        }
    )
    yield s
    stop_stack(s)


def _image_messages(where: str, dialect: str) -> list[dict[str, Any]]:
    if dialect == "openai":
        return [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ]
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    if where == "user":
        return [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, img]}]
    # a screenshot returned by a tool several turns ago: still in history
    return [
        {"role": "user", "content": "Take a screenshot."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_s", "name": "get_time", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_s", "content": [img]},
                {"type": "text", "text": "Describe it."},
            ],
        },
    ]


VISION_CASES = [
    pytest.param(d, w, vm, id=f"{d}-image-in-{w}-{'vision_model' if vm else 'no-vision_model'}")
    for vm in (False, True)
    for d, w in (("anthropic", "user"), ("anthropic", "tool_result"), ("openai", "user"))
]


@pytest.mark.parametrize(("dialect", "where", "vision_model"), VISION_CASES)
def test_11_image_to_non_vision_model(
    vision_stack: Stack, dialect: str, where: str, vision_model: bool
) -> None:
    """An image for a ``vision: false`` model: a clear 400 naming the model in the client's
    dialect (nothing reaches any upstream); with ``vision_model`` set the request goes to the
    vision model's backend instead (the api.openai.com fake), images intact."""
    s = vision_stack
    model = "coder-seeing" if vision_model else "coder"
    if vision_model:  # the only upstream that may be asked
        s.oai.enqueue(ChatReply(content="A tiny black PNG."))
    messages = _image_messages(where, dialect)
    if not vision_model:
        if dialect == "anthropic":
            with pytest.raises(anthropic.BadRequestError) as ei:
                a_create(s, model=model, max_tokens=100, messages=messages, tools=[TIME])
            body = ei.value.body
            assert isinstance(body, dict) and body["type"] == "error"
            assert body["error"]["type"] == "invalid_request_error"
            msg = body["error"]["message"]
        else:
            with pytest.raises(openai.BadRequestError) as eo:
                o_create(s, model=model, messages=messages)
            err = eo.value.body
            assert isinstance(err, dict) and err["type"] == "invalid_request_error"
            msg = err["message"]
        assert "'coder'" in msg and "vision" in msg
        assert not s.vllm.requests and not s.oai.requests and not s.anthropic_fake.requests
        return
    if dialect == "anthropic":
        final = a_stream(s, model=model, max_tokens=100, messages=messages, tools=[TIME]).final
        assert final.content[0].text == "A tiny black PNG."
    else:
        resp = o_create(s, model=model, messages=messages)
        assert resp.choices[0].message.content == "A tiny black PNG."
    assert not s.vllm.requests
    sent = s.oai.last_request.body
    assert sent["model"] == "gpt-4.1"
    urls = [
        p["image_url"]["url"]
        for _, p in [(0, p) for m in sent["messages"] for p in _parts(m)]
        if p.get("type") == "image_url"
    ]
    assert urls == [f"data:image/png;base64,{PNG}"]
    # a text-only follow-up on the same model still goes to the (cheaper) text backend
    s.vllm.enqueue(ChatReply(content="text ok"))
    if dialect == "anthropic":
        a_create(s, model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    else:
        o_create(s, model=model, messages=[{"role": "user", "content": "hi"}])
    assert len(s.vllm.requests) == 1


def _parts(m: dict[str, Any]) -> list[dict[str, Any]]:
    c = m.get("content")
    return [p for p in c if isinstance(p, dict)] if isinstance(c, list) else []


# =============================================================================== 12


def _tool_turn_a() -> list[dict[str, Any]]:
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    return [
        {"role": "user", "content": "Check Paris and Rome, and take a screenshot."},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {
                    "type": "tool_use",
                    "id": "toolu_p",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_r",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_p",
                    "content": [{"type": "text", "text": "18C sunny"}, img],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_r",
                    "content": "boom",
                    "is_error": True,
                },
                {"type": "text", "text": "Also: which is warmer?"},
            ],
        },
    ]


@pytest.mark.parametrize("path", [*A_PATHS, O2A, O2O_VLLM], ids=ids([*A_PATHS, O2A, O2O_VLLM]))
def test_12_tool_turn_context_kept(stack: Stack, path: Path) -> None:
    """A tool-result turn keeps everything: text next to ``tool_result`` (after the tool
    messages, as OpenAI requires), images inside a tool result (as image parts, not
    stringified), ``is_error``, every result paired with its call, ``tool_choice: any`` ->
    ``required`` (not ``auto``)."""
    script(stack, path, anthropic_reply=Reply(content="Paris."), openai_reply=ChatReply("Paris."))
    if path.client == "anthropic":
        messages = _tool_turn_a()
        final = a_stream(
            stack,
            model=path.model,
            max_tokens=1024,
            messages=messages,
            tools=[WEATHER],
            tool_choice={"type": "any"},
        ).final
        assert final.content[0].text == "Paris."
        sent = last_sent(stack, path)
        if path.to_anthropic:
            assert sent["messages"] == messages
            assert sent["tool_choice"] == {"type": "any"}
            return
        roles = [m["role"] for m in sent["messages"]]
        assert roles[:4] == ["user", "assistant", "tool", "tool"], roles
        asst = sent["messages"][1]
        assert asst["content"] == "Checking both."
        assert [c["id"] for c in asst["tool_calls"]] == ["toolu_p", "toolu_r"]
        t1, t2 = sent["messages"][2], sent["messages"][3]
        assert (t1["tool_call_id"], t2["tool_call_id"]) == ("toolu_p", "toolu_r")
        assert "18C sunny" in t1["content"] and "base64" not in t1["content"]
        assert "error" in t2["content"].lower() and "boom" in t2["content"]
        rest = sent["messages"][4:]
        assert all(m["role"] == "user" for m in rest)
        parts = [p for m in rest for p in _parts(m)] + [
            {"type": "text", "text": m["content"]} for m in rest if isinstance(m["content"], str)
        ]
        assert any(p.get("type") == "image_url" for p in parts), "tool_result image lost"
        assert any("which is warmer?" in (p.get("text") or "") for p in parts)
        assert sent["tool_choice"] == "required"
        return
    messages_o = [
        {"role": "user", "content": "Check Paris and Rome."},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_p",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_r",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_p", "content": "18C sunny"},
        {"role": "tool", "tool_call_id": "call_r", "content": "22C"},
        {"role": "user", "content": "Which is warmer?"},
    ]
    resp = o_create(
        stack, model=path.model, messages=messages_o, tools=[O_WEATHER], tool_choice="required"
    )
    assert resp.choices[0].message.content == "Paris."
    sent = last_sent(stack, path)
    if not path.to_anthropic:
        assert sent["messages"] == messages_o and sent["tool_choice"] == "required"
        return
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    asst = sent["messages"][1]["content"]
    assert [b["type"] for b in asst] == ["text", "tool_use", "tool_use"]
    turn = sent["messages"][2]["content"]
    assert [b["type"] for b in turn] == ["tool_result", "tool_result", "text"]
    assert [b["tool_use_id"] for b in turn[:2]] == ["call_p", "call_r"]
    assert turn[2]["text"] == "Which is warmer?"
    assert sent["tool_choice"]["type"] == "any"


# =============================================================================== 13


@pytest.mark.parametrize(
    "case",
    [
        "A->O/openai:32000-kept",
        "A->O/ollama:16000-kept",
        "A->O/vllm:clamped-to-model-cap-only",
        "A->O/vllm:length-is-max_tokens",
        "A->A:64000-kept",
        "O->A:50000-kept",
        "O->O/vllm:untouched",
        "O->A:absent-uses-model-max",
    ],
)
def test_13_max_tokens_not_truncated(stack: Stack, case: str) -> None:
    """The gateway never shrinks ``max_tokens`` below what the client asked except to fit the
    model's configured output cap / context window, never drops it, and reports a truncated
    answer as ``max_tokens`` (not ``end_turn``)."""
    msgs = [{"role": "user", "content": "Write a long essay."}]
    if case == "A->O/openai:32000-kept":
        stack.oai.enqueue(ChatReply(content="essay"))
        a_create(stack, model="gpt-4.1", max_tokens=32000, messages=msgs)
        sent = stack.oai.last_request.body
        assert sent["max_completion_tokens"] == 32000 and "max_tokens" not in sent
    elif case == "A->O/ollama:16000-kept":
        stack.ollama.enqueue(ChatReply(content="essay"))
        a_create(stack, model="llama", max_tokens=16000, messages=msgs)
        assert stack.ollama.last_request.body["max_tokens"] == 16000
    elif case == "A->O/vllm:clamped-to-model-cap-only":
        stack.vllm.enqueue(ChatReply(content="essay"))
        a_create(stack, model="coder", max_tokens=32000, messages=msgs)
        assert stack.vllm.last_request.body["max_tokens"] == 8192  # max_output_tokens: 8192
    elif case == "A->O/vllm:length-is-max_tokens":
        stack.vllm.enqueue(ChatReply(content="cut off", finish_reason="length"))
        r = a_stream(stack, model="coder", max_tokens=3, messages=msgs)
        assert r.final.stop_reason == "max_tokens"
        assert stack.vllm.last_request.body["max_tokens"] == 3
    elif case == "A->A:64000-kept":
        stack.anthropic_fake.enqueue(Reply(content="essay"))
        a_create(stack, model="claude-sonnet-4-5", max_tokens=64000, messages=msgs)
        assert stack.anthropic_fake.last_request.body["max_tokens"] == 64000
    elif case == "O->A:50000-kept":
        stack.anthropic_fake.enqueue(Reply(content="essay"))
        o_create(stack, model="claude-sonnet-4-5", max_tokens=50000, messages=msgs)
        assert stack.anthropic_fake.last_request.body["max_tokens"] == 50000
    elif case == "O->O/vllm:untouched":
        stack.vllm.enqueue(ChatReply(content="essay"))
        o_create(stack, model="coder", max_completion_tokens=20000, messages=msgs)
        sent = stack.vllm.last_request.body
        assert sent["max_completion_tokens"] == 20000 and "max_tokens" not in sent
    else:
        stack.anthropic_fake.enqueue(Reply(content="essay"))
        o_create(stack, model="claude-sonnet-4-5", messages=msgs)
        assert stack.anthropic_fake.last_request.body["max_tokens"] == 64000


# =============================================================================== 14


ERROR_KINDS = ["429", "overloaded", "500", "401", "context-overflow"]
# Anthropic client: (status, error type, SDK class); OpenAI client: (status, type, SDK class)
A_EXPECT = {
    "429": (429, "rate_limit_error", anthropic.RateLimitError),
    "overloaded": (529, "overloaded_error", anthropic.OverloadedError),
    "500": (500, "api_error", anthropic.InternalServerError),
    # our provider key refused: a bad gateway, not the client's auth error (audit #3)
    "401": (502, "api_error", anthropic.InternalServerError),
    "context-overflow": (400, "invalid_request_error", anthropic.BadRequestError),
}
O_EXPECT = {
    "429": (429, "rate_limit_error", openai.RateLimitError),
    "overloaded": (503, "server_error", openai.InternalServerError),
    "500": (500, "server_error", openai.InternalServerError),
    "401": (502, "upstream_error", openai.InternalServerError),
    "context-overflow": (400, "invalid_request_error", openai.BadRequestError),
}


def _enqueue_error(stack: Stack, path: Path, kind: str, times: int) -> None:
    fake = path.fake(stack)
    for _ in range(times):
        if path.to_anthropic:
            reply = {
                "429": error_reply(
                    429,
                    "Number of request tokens has exceeded your per-minute rate limit",
                    headers={"retry-after": "7"},
                ),
                "overloaded": error_reply(529, "Overloaded"),
                "500": error_reply(500, "Internal server error"),
                "401": error_reply(401, "invalid x-api-key"),
                "context-overflow": error_reply(
                    400, "prompt is too long: 250000 tokens > 200000 maximum"
                ),
            }[kind]
        else:
            reply = {
                "429": OpenAIErrorReply(429, "Rate limit reached", headers={"retry-after": "7"}),
                "overloaded": OpenAIErrorReply(503, "The server is overloaded"),
                "500": OpenAIErrorReply(500, "Internal server error"),
                "401": OpenAIErrorReply(401, "Incorrect API key provided"),
                "context-overflow": OpenAIErrorReply(
                    400,
                    "This model's maximum context length is 32768 tokens. However, your request "
                    "has 40000 input tokens. Please reduce the length of the input messages.",
                    code=400 if path.upstream == "vllm" else "context_length_exceeded",
                ),
            }[kind]
        fake.enqueue(reply)


ERR_PATHS = [A2A, A2O_VLLM, A2O_OLLAMA, A2O_OPENAI, O2A, O2O_VLLM, O2O_OLLAMA, O2O_OPENAI]


@pytest.mark.leaves_cooldown  # the upstream's errors count against its deployment
@pytest.mark.parametrize("kind", ERROR_KINDS)
@pytest.mark.parametrize("path", ERR_PATHS, ids=ids(ERR_PATHS))
def test_14_error_envelopes_and_529(stack: Stack, path: Path, kind: str) -> None:
    """Upstream errors reach Anthropic clients as ``{"type":"error","error":{type,message}}``
    with the right status (429 + retry-after, overloaded -> 529 ``overloaded_error``, 500
    ``api_error``, 401, context overflow -> 400 ``prompt is too long: N tokens > M maximum``),
    also for streaming requests (an HTTP error, not a 200 stream); OpenAI clients get
    ``{"error":{message,type,param,code}}`` bodies. The SDK raises its typed exception.

    Both calls reach the upstream: after the first error the only deployment may be cooling
    down, but it is the last route, so the second call gets the upstream's own second answer
    (with its retry-after), never one the gateway made up."""
    fake = path.fake(stack)
    retry_after = "7" if kind == "429" else None
    if path.client == "anthropic":
        status, etype, exc = A_EXPECT[kind]
        _enqueue_error(stack, path, kind, 2)
        r = raw_a(stack, a_req(path, stream=True), "/v1/messages?beta=true")
        assert r.status == status, r.body
        assert r.content_type.startswith("application/json")
        body = r.json()
        assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}
        assert body["error"]["type"] == etype
        assert r.headers.get("retry-after") == retry_after
        if kind == "context-overflow":
            m = PROMPT_TOO_LONG.match(body["error"]["message"])
            assert m, body["error"]["message"]
            n, limit = int(m.group(1)), int(m.group(2))
            assert n > limit
            assert (n, limit) == ((250000, 200000) if path.to_anthropic else (40000, 32768))
        client, _ = anthropic_client(stack)
        with pytest.raises(exc) as ei, client.messages.stream(**a_req(path)) as s:
            s.get_final_message()
        assert ei.value.status_code == status
        assert ei.value.response.headers.get("retry-after") == retry_after
        assert "cooling" not in str(ei.value.message)
        assert len(fake.requests) == 2
        return
    status, etype, exc_o = O_EXPECT[kind]
    _enqueue_error(stack, path, kind, 2)
    r = raw_o(stack, o_req(path, stream=True))
    assert r.status == status, r.body
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert body["error"]["type"] == etype
    assert r.headers.get("retry-after") == retry_after
    if kind == "context-overflow":
        assert re.search(r"40000|250000", body["error"]["message"])
    with pytest.raises(exc_o) as eo:
        o_create(stack, **o_req(path))
    assert eo.value.status_code == status
    assert eo.value.response.headers.get("retry-after") == retry_after
    assert "cooling" not in str(eo.value.message)
    assert len(fake.requests) == 2


MID_PATHS = [A2O_VLLM, A2O_OLLAMA, A2A, O2A, O2O_VLLM]


@pytest.mark.leaves_cooldown  # a stream that fails counts against its deployment
@pytest.mark.parametrize("when", ["first-event", "after-content"])
@pytest.mark.parametrize("path", MID_PATHS, ids=ids(MID_PATHS))
def test_14b_stream_errors_in_client_dialect(stack: Stack, path: Path, when: str) -> None:
    """An upstream stream that fails: as its very first event, the client gets a proper HTTP
    error in its dialect (Claude Code retries on status); after content went out, Anthropic
    clients get ``event: error`` (an Anthropic error type, vLLM's ``internal_error`` mapped to
    ``api_error``) and no ``message_stop``; OpenAI clients a ``data: {"error":...}`` chunk then
    ``[DONE]``."""
    n_a, n_o = (0, 0) if when == "first-event" else (5, 4)
    script(
        stack,
        path,
        anthropic_reply=Reply(content="a long answer " * 10, error_after=n_a, event_delay=0.02),
        openai_reply=ChatReply(
            content="a long answer " * 10,
            error_after=n_o,
            error_type="internal_error",
            event_delay=0.02,
        ),
    )
    if when == "first-event":
        if path.client == "anthropic":
            r = raw_a(stack, a_req(path, stream=True))
            assert r.status >= 500 and r.json()["type"] == "error", r.body
            assert r.json()["error"]["type"] in ("overloaded_error", "api_error")
        else:
            r = raw_o(stack, o_req(path, stream=True))
            assert r.status >= 500 and set(r.json()) == {"error"}, r.body
        return
    if path.client == "anthropic":
        r = raw_a(stack, a_req(path, stream=True))
        assert r.status == 200
        wire = check_anthropic_sse(r.body, allow_error=True)
        assert wire.error is not None and "message_stop" not in wire.names
        assert wire.error["type"] == ("overloaded_error" if path.to_anthropic else "api_error")
        return
    r2 = raw_o(stack, o_req(path, stream=True))
    wire2 = check_openai_sse(r2.body, allow_error=True)
    assert wire2.error is not None


# =============================================================================== 15


def _whole_args_raw(style: str) -> RawStream:
    if style == "one-chunk-whole-calls":  # Ollama: every call complete in one chunk
        return raw_vllm_stream(
            vllm_chunk({"role": "assistant", "content": ""}),
            vllm_chunk(
                {
                    "tool_calls": [
                        tc(0, id="call_1", name="get_weather", args='{"city":"Paris"}'),
                        tc(1, id="call_2", name="get_time", args='{"timezone":"UTC"}'),
                    ]
                }
            ),
            vllm_chunk({}, "stop"),
        )
    if style == "args-only-in-finish-chunk":
        return raw_vllm_stream(
            vllm_chunk({"tool_calls": [tc(0, id="call_1", name="get_weather")]}),
            vllm_chunk({"tool_calls": [tc(0, args='{"city":"Paris"}')]}, "tool_calls"),
            usage={"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
        )
    if style == "args-as-object":
        return raw_vllm_stream(
            vllm_chunk(
                {"tool_calls": [tc(0, id="call_1", name="get_weather", args={"city": "Paris"})]}
            ),
            vllm_chunk({}, "tool_calls"),
        )
    # "no-args-ever": a no-argument tool call whose arguments never arrive
    return raw_vllm_stream(
        vllm_chunk({"tool_calls": [tc(0, id="call_1", name="get_time")]}),
        vllm_chunk({}, "tool_calls"),
    )


@pytest.mark.parametrize(
    "case",
    [
        "A->O/vllm:one-chunk-whole-calls",
        "A->O/vllm:args-only-in-finish-chunk",
        "A->O/vllm:args-as-object",
        "A->O/vllm:no-args-ever",
        "A->O/ollama:native",
        "A->O/openai:single-fragment",
        "O->A:single-input-delta",
        "O->O/ollama:passthrough",
    ],
)
def test_15_tool_args_not_streamed_incrementally(stack: Stack, case: str) -> None:
    """Upstreams that do not stream tool arguments in fragments (whole calls in one chunk,
    arguments only at the end, an object instead of a string, no arguments at all) still give
    the client complete, valid tool input (never ``{}`` when arguments were sent)."""
    if case.startswith("A->O/vllm:"):
        style = case.split(":", 1)[1]
        stack.vllm.enqueue(_whole_args_raw(style))
        r = a_stream(stack, **a_req(A2O_VLLM))
        tools = r.wire.blocks("tool_use")
        expected = {
            "one-chunk-whole-calls": [{"city": "Paris"}, {"timezone": "UTC"}],
            "args-only-in-finish-chunk": [{"city": "Paris"}],
            "args-as-object": [{"city": "Paris"}],
            "no-args-ever": [{}],
        }[style]
        assert [t["input"] for t in tools] == expected
        assert [b.input for b in r.final.content if b.type == "tool_use"] == expected
        assert r.final.stop_reason == "tool_use"
    elif case == "A->O/ollama:native":
        stack.ollama.enqueue(RawStream("ollama_stream_tools.sse"))
        r = a_stream(stack, **a_req(A2O_OLLAMA))
        assert [t["input"] for t in r.wire.blocks("tool_use")] == [
            {"city": "Paris", "unit": "celsius"},
            {"timezone": "Europe/Paris"},
        ]
        assert r.final.stop_reason == "tool_use"
    elif case == "A->O/openai:single-fragment":
        stack.oai.enqueue(
            ChatReply(tool_calls=[("call_1", "get_weather", {"city": "Paris"})], args_chunk=10_000)
        )
        r = a_stream(stack, **a_req(A2O_OPENAI))
        assert r.wire.blocks("tool_use")[0]["input"] == {"city": "Paris"}
    elif case == "O->A:single-input-delta":
        frames = [
            anthropic_frame(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_01x",
                        "type": "message",
                        "role": "assistant",
                        "model": "claude-sonnet-4-5",
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 10, "output_tokens": 1},
                    },
                },
            ),
            anthropic_frame(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {},
                    },
                },
            ),
            anthropic_frame(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
                },
            ),
            anthropic_frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
            anthropic_frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": 9},
                },
            ),
            anthropic_frame("message_stop", {"type": "message_stop"}),
        ]
        stack.anthropic_fake.enqueue(RawStream(b"".join(frames)))
        r2 = o_stream(stack, **o_req(O2A))
        assert r2.wire.tool_calls == [
            {"id": "toolu_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
        ]
        assert r2.wire.finish_reason == "tool_calls"
    else:
        stack.ollama.enqueue(RawStream("ollama_stream_tools.sse"))
        r2 = o_stream(stack, **o_req(O2O_OLLAMA))
        assert [json.loads(c["arguments"]) for c in r2.wire.tool_calls] == [
            {"city": "Paris", "unit": "celsius"},
            {"timezone": "Europe/Paris"},
        ]
