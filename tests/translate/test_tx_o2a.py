# ruff: noqa: E501  (test vectors read better on one line)
"""OpenAI client -> Anthropic upstream: request rules (§7.4), responses (§7.5), streams (§7.6)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tx_helpers import accumulate_openai, parse_openai_sse, rctx, vllm_target

from dragoman.errors import InvalidRequestError
from dragoman.translate import (
    AnthropicToOpenAIStream,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
)


def oreq(messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"model": "gpt-x", "messages": messages, **kw}


def conv(body: dict[str, Any], **target: Any) -> dict[str, Any]:
    out, _ = openai_to_anthropic_request(body, vllm_target(**target))
    return out


def test_system_and_developer_hoisted() -> None:
    out = conv(
        oreq(
            [
                {"role": "system", "content": "S1"},
                {"role": "user", "content": "hi"},
                {"role": "developer", "content": [{"type": "text", "text": "S2"}]},
            ]
        )
    )
    assert out["system"] == [{"type": "text", "text": "S1"}, {"type": "text", "text": "S2"}]
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_user_parts_images() -> None:
    out = conv(
        oreq(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,QUJD", "detail": "high"},
                        },
                        {"type": "image_url", "image_url": {"url": "https://e.com/x.jpg"}},
                    ],
                }
            ]
        )
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://e.com/x.jpg"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}},
        {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}},
    ],
)
def test_unsupported_parts_are_400(part: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as ei:
        conv(oreq([{"role": "user", "content": [part]}]))
    assert ei.value.status == 400


def test_assistant_tool_calls_and_tool_messages_grouped() -> None:
    out = conv(
        oreq(
            [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "reasoning_content": "secret thoughts",
                    "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "w", "arguments": '{"c":"P"}'}},
                        {"id": "call_b", "type": "function", "function": {"name": "t", "arguments": ""}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "noon"}]},
                {"role": "user", "content": "thanks"},
            ],
            tools=[{"type": "function", "function": {"name": "w", "parameters": {"properties": {}}}},
                   {"type": "function", "function": {"name": "t", "description": "time"}}],
        )
    )  # fmt: skip
    msgs = out["messages"]
    assert msgs[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_a", "name": "w", "input": {"c": "P"}},
            {"type": "tool_use", "id": "call_b", "name": "t", "input": {}},
        ],
    }
    assert msgs[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_a", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_b", "content": "noon"},
            {"type": "text", "text": "thanks"},
        ],
    }
    assert out["tools"] == [
        {"name": "w", "input_schema": {"properties": {}, "type": "object"}},
        {"name": "t", "description": "time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "thinking" not in str(msgs)


def test_first_assistant_gets_placeholder_user_and_merges() -> None:
    out = conv(oreq([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"},
                     {"role": "user", "content": "u1"}, {"role": "user", "content": "u2"}]))  # fmt: skip
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][0]["content"][0]["text"] == "(continue)"
    assert len(out["messages"][1]["content"]) == 2 and len(out["messages"][2]["content"]) == 2


def test_history_tool_calls_without_tools_synthesises_definitions() -> None:
    out = conv(
        oreq(
            [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"},
            ]
        )
    )  # fmt: skip
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert out["tool_choice"] == {"type": "none"}


def test_orphans_repaired_for_anthropic() -> None:
    out = conv(
        oreq(
            [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "user", "content": "skip it"},
            ],
            tools=[{"type": "function", "function": {"name": "f"}}],
        )
    )  # fmt: skip
    assert out["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "c1",
        "content": "(no result)",
    }


def test_custom_tools_and_n_are_400() -> None:
    with pytest.raises(InvalidRequestError):
        conv(
            oreq(
                [{"role": "user", "content": "x"}],
                tools=[{"type": "custom", "custom": {"name": "c"}}],
            )
        )
    with pytest.raises(InvalidRequestError):
        conv(oreq([{"role": "user", "content": "x"}], n=2))


T = [{"type": "function", "function": {"name": "f"}}]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, None, None),
    ],
)
def test_tool_choice_table(choice: Any, parallel: Any, expected: Any) -> None:
    body = oreq([{"role": "user", "content": "x"}], tools=T)
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert conv(body).get("tool_choice") == expected


def test_tool_choice_dropped_without_tools() -> None:
    out = conv(oreq([{"role": "user", "content": "x"}], tool_choice="required"))
    assert "tool_choice" not in out and "tools" not in out


def test_max_tokens_rules() -> None:
    m = [{"role": "user", "content": "x"}]
    assert conv(oreq(m))["max_tokens"] == 4096
    assert conv(oreq(m), max_output_tokens=1000)["max_tokens"] == 1000
    assert conv(oreq(m, max_tokens=50, max_completion_tokens=70))["max_tokens"] == 70
    assert conv(oreq(m, max_tokens=99999), max_output_tokens=8192)["max_tokens"] == 8192


def test_reasoning_effort_to_thinking() -> None:
    m = [{"role": "user", "content": "x"}]
    out = conv(oreq(m, reasoning_effort="medium", max_tokens=1000, temperature=0.5, top_k=5))
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert out["max_tokens"] > 2048
    assert "temperature" not in out and "top_k" not in out
    out = conv(oreq(m, reasoning_effort="high"))
    assert out["thinking"]["budget_tokens"] == 4096 and out["max_tokens"] == 4096 + 4096
    out = conv(oreq(m, reasoning_effort="high"), max_output_tokens=3000)
    assert out["thinking"]["budget_tokens"] == 2999 and out["max_tokens"] == 3000
    assert "thinking" not in conv(oreq(m, reasoning_effort="minimal"))
    assert "thinking" not in conv(oreq(m, reasoning_effort="none"))


def _loop(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    return [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        *extra,
    ]


def test_reasoning_is_dropped_during_a_tool_loop() -> None:
    # an ongoing loop would need the signed thinking block OpenAI clients never send back
    out = conv(oreq(_loop(), reasoning_effort="high", max_tokens=1000, temperature=0.5))
    assert "thinking" not in out
    assert out["max_tokens"] == 1000 and out["temperature"] == 0.5
    # text after the tool results is still the same loop
    out = conv(oreq(_loop({"role": "user", "content": "go on"}), reasoning_effort="high"))
    assert "thinking" not in out
    # a new user turn after the loop ended: thinking is back
    done = _loop({"role": "assistant", "content": "ok."}, {"role": "user", "content": "next"})
    out = conv(oreq(done, reasoning_effort="high", max_tokens=1000))
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert out["max_tokens"] == 5096


def test_forced_tool_choice_drops_thinking_and_keeps_max_tokens() -> None:
    m = [{"role": "user", "content": "x"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    out = conv(
        oreq(m, tools=tools, tool_choice="required", reasoning_effort="high", max_tokens=1000)
    )
    assert "thinking" not in out and out["max_tokens"] == 1000
    assert out["tool_choice"] == {"type": "any"}


def test_params() -> None:
    out, ctx = openai_to_anthropic_request(
        oreq(
            [{"role": "user", "content": "x"}],
            temperature=1.7,
            top_p=0.5,
            stop="END",
            seed=1,
            frequency_penalty=1,
            presence_penalty=1,
            logit_bias={},
            logprobs=True,
            user="u-1",
            stream=True,
            stream_options={"include_usage": True},
            metadata={"a": "b"},
        ),
        vllm_target(),
    )
    assert out == {
        "model": "qwen3-coder",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "stop_sequences": ["END"],
        "temperature": 1.0,
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    assert ctx.include_usage and ctx.stop_sequences == ["END"] and ctx.input_tokens_estimate > 0
    out = conv(oreq([{"role": "user", "content": "x"}], stop=["a", " ", "b"], top_p=0.7))
    assert out["stop_sequences"] == ["a", "b"] and out["top_p"] == 0.7


def test_structured_output_o2a() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = conv(oreq([{"role": "user", "content": "x"}],
                    response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}))  # fmt: skip
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    out = conv(oreq([{"role": "user", "content": "x"}], response_format={"type": "json_object"}))
    assert "JSON" in out["system"][-1]["text"]


# ------------------------------------------------------------------------------ responses


def a_msg(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    u = {"input_tokens": 412, "output_tokens": 95, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 2048, **usage}  # fmt: skip
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": u}  # fmt: skip


def test_response_o_shape_usage_and_reasoning() -> None:
    r = anthropic_to_openai_response(
        a_msg(
            [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
                {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris"}},
            ],
            "tool_use",
            cache_creation_input_tokens=10,
        ),
        rctx(),
    )
    assert r["id"].startswith("chatcmpl-") and r["object"] == "chat.completion"
    assert r["model"] == "claude-sonnet-4-5"
    ch0 = r["choices"][0]
    assert ch0["finish_reason"] == "tool_calls"
    assert ch0["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "reasoning_content": "hmm",
        "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "w", "arguments": '{"city": "Paris"}'}}],
    }  # fmt: skip
    assert r["usage"] == {
        "prompt_tokens": 2470,
        "completion_tokens": 95,
        "total_tokens": 2565,
        "prompt_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_response_content_null_with_only_tools_and_finish_map() -> None:
    r = anthropic_to_openai_response(
        a_msg([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "tool_use"), rctx()
    )
    assert r["choices"][0]["message"]["content"] is None
    for stop, fin in [("max_tokens", "length"), ("refusal", "content_filter"), ("stop_sequence", "stop"),
                      ("pause_turn", "stop"), ("model_context_window_exceeded", "length")]:  # fmt: skip
        r = anthropic_to_openai_response(a_msg([{"type": "text", "text": "x"}], stop), rctx())
        assert r["choices"][0]["finish_reason"] == fin


# ------------------------------------------------------------------------------ A SSE -> O


def a_events(
    msg: dict[str, Any], data: st.DataObject | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """An Anthropic message as an SSE event list (fragmented when ``data`` is given)."""

    def split(s: str) -> list[str]:
        if data is None or len(s) < 2:
            return [s] if s else []
        cuts = sorted(set(data.draw(st.lists(st.integers(1, len(s) - 1), max_size=4))))
        return [s[a:b] for a, b in zip([0, *cuts], [*cuts, len(s)], strict=True)]

    start = {**msg, "content": [], "stop_reason": None,
             "usage": {"input_tokens": msg["usage"]["input_tokens"], "output_tokens": 1,
                       "cache_read_input_tokens": msg["usage"]["cache_read_input_tokens"],
                       "cache_creation_input_tokens": msg["usage"]["cache_creation_input_tokens"]}}  # fmt: skip
    ev: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start}),
                                            ("ping", {"type": "ping"})]  # fmt: skip
    for i, b in enumerate(msg["content"]):
        t = b["type"]
        if t == "text":
            ev.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            ev += [
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "text_delta", "text": p},
                    },
                )
                for p in split(b["text"])
            ]
        elif t == "thinking":
            ev.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                    },
                )
            )
            ev += [
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "thinking_delta", "thinking": p},
                    },
                )
                for p in split(b["thinking"])
            ]
            ev.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "signature_delta", "signature": b["signature"]},
                    },
                )
            )
        elif t == "tool_use":
            ev.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {**b, "input": {}},
                    },
                )
            )
            js = orjson.dumps(b["input"]).decode() if b["input"] else ""
            ev.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": ""},
                    },
                )
            )
            ev += [
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": p},
                    },
                )
                for p in split(js)
            ]
        ev.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    ev.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                                 "usage": {"output_tokens": msg["usage"]["output_tokens"]}}))  # fmt: skip
    ev.append(("message_stop", {"type": "message_stop"}))
    return ev


def run_a2o(
    events: list[tuple[str, dict[str, Any]]], include_usage: bool = True, end: bool = True
) -> list[Any]:
    s = AnthropicToOpenAIStream(rctx(include_usage=include_usage))
    raw = b"".join(s.feed(n, d) for n, d in events)
    if end:
        raw += s.finish()
    return parse_openai_sse(raw)


def test_a2o_stream_tools_thinking_and_usage() -> None:
    msg = a_msg(
        [
            {"type": "thinking", "thinking": "plan", "signature": "s"},
            {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {"x": 1}},
            {"type": "redacted_thinking", "data": "zz"},
            {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}},
        ],
        "tool_use",
    )
    items = run_a2o(a_events(msg))
    acc = accumulate_openai(items)
    m = acc["message"]
    assert m["reasoning_content"] == "plan"
    assert [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in m["tool_calls"]
    ] == [
        ("toolu_a", "f", {"x": 1}),
        ("toolu_b", "g", {}),
    ]
    assert acc["finish_reason"] == "tool_calls"
    assert acc["usage"]["prompt_tokens"] == 412 + 2048 and acc["usage"]["completion_tokens"] == 95


def test_a2o_stream_error_event_and_early_eof() -> None:
    ev = a_events(a_msg([{"type": "text", "text": "hello"}]))
    items = run_a2o(
        [
            *ev[:4],
            (
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ),
        ]
    )
    assert "[DONE]" not in items  # a failed stream never ends like a complete one
    assert items[-1] == {
        "error": {
            "message": "Overloaded",
            "type": "server_error",
            "param": None,
            "code": "overloaded",
        }
    }
    items = run_a2o(ev[:-1])  # message_delta but no message_stop: never a clean finish
    assert "[DONE]" not in items and "error" in items[-1]
    assert not any(
        isinstance(i, dict) and i.get("choices") and i["choices"][0].get("finish_reason")
        for i in items
    )


def test_a2o_stream_without_include_usage() -> None:
    items = run_a2o(a_events(a_msg([{"type": "text", "text": "hi"}])), include_usage=False)
    assert all("usage" not in i for i in items if isinstance(i, dict))
    assert accumulate_openai(items)["finish_reason"] == "stop"


_chars = st.characters(blacklist_categories=("Cs",))
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(_chars, max_size=8),
    lambda k: st.lists(k, max_size=3) | st.dictionaries(st.text(_chars, max_size=5), k, max_size=3),
    max_leaves=8,
)
_block = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(_chars, min_size=1, max_size=30)),
    st.builds(
        lambda t: {"type": "thinking", "thinking": t, "signature": "sig"},
        st.text(_chars, min_size=1, max_size=30),
    ),
    st.builds(
        lambda i, n, a: {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a},
        st.integers(0, 10**6),
        st.sampled_from(["Bash", "Read"]),
        st.dictionaries(st.text(_chars, max_size=6), _json, max_size=3),
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    blocks=st.lists(_block, max_size=5),
    stop=st.sampled_from(["end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal"]),
    out_tokens=st.integers(0, 5000),
    include_usage=st.booleans(),
)
def test_a2o_stream_equals_non_stream(
    data: st.DataObject,
    blocks: list[dict[str, Any]],
    stop: str,
    out_tokens: int,
    include_usage: bool,
) -> None:
    ids = [b["id"] for b in blocks if b["type"] == "tool_use"]
    if len(set(ids)) != len(ids):
        return
    msg = a_msg(blocks, stop, output_tokens=out_tokens)
    ctx = rctx(include_usage=include_usage)
    expected = anthropic_to_openai_response(msg, ctx)
    s = AnthropicToOpenAIStream(ctx)
    raw = b"".join(s.feed(n, d) for n, d in a_events(msg, data)) + s.finish()
    acc = accumulate_openai(parse_openai_sse(raw))
    em = expected["choices"][0]["message"]
    gm = acc["message"]
    assert (gm["content"] or "") == (em["content"] or "")
    assert gm.get("reasoning_content") == em.get("reasoning_content")
    g_calls = [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in gm.get("tool_calls", [])
    ]
    e_calls = [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in em.get("tool_calls", [])
    ]
    assert g_calls == e_calls
    assert acc["finish_reason"] == expected["choices"][0]["finish_reason"]
    if include_usage:
        assert acc["usage"] == expected["usage"]
    assert s.usage.output_tokens == out_tokens
