# ruff: noqa: E501  (test vectors read better on one line)
"""OpenAI chunk stream -> Anthropic SSE: robustness cases and the stream-equivalence property."""

from __future__ import annotations

from typing import Any

import orjson
from anthropic._models import construct_type
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tx_helpers import accumulate_anthropic, parse_anthropic_sse, rctx

from dragoman.errors import UpstreamTimeoutError
from dragoman.translate import OpenAIToAnthropicStream, openai_to_anthropic_response
from dragoman.translate.context import ResponseContext


def ch(delta: dict[str, Any] | None = None, finish: str | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **kw}],
    }


def tc(
    index: int | None, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if index is not None:
        d["index"] = index
    if id is not None:
        d["id"] = id
        d["type"] = "function"
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    d["function"] = fn
    return d


def run(
    chunks: list[dict[str, Any]], ctx: ResponseContext | None = None, end: bool = True
) -> tuple[bytes, OpenAIToAnthropicStream]:
    s = OpenAIToAnthropicStream(ctx or rctx())
    raw = s.start()
    for c in chunks:
        raw += s.feed(c)
    if end:
        raw += s.finish()
    return raw, s


def final(chunks: list[dict[str, Any]], ctx: ResponseContext | None = None) -> dict[str, Any]:
    raw, _ = run(chunks, ctx)
    acc = accumulate_anthropic(raw)
    assert acc.stopped and acc.message is not None
    return acc.message


def test_interleaved_reasoning_text_tools_blocks_are_sequential() -> None:
    m = final(
        [
            ch({"role": "assistant", "content": ""}),
            ch({"reasoning": "a"}),
            ch({"content": "b"}),
            ch({"reasoning_content": "c"}),
            ch({"tool_calls": [tc(0, "call_1", "f", '{"x":1}')]}),
            ch({"content": "d"}),
            ch({"tool_calls": [tc(1, "call_2", "g", "{}")]}),
            ch({}, "tool_calls"),
        ]
    )
    assert [b["type"] for b in m["content"]] == [
        "thinking",
        "text",
        "thinking",
        "tool_use",
        "text",
        "tool_use",
    ]
    assert m["stop_reason"] == "tool_use"


def test_combined_chunk_order_reasoning_content_tools_finish() -> None:
    m = final(
        [
            ch(
                {
                    "reasoning": "r",
                    "content": "t",
                    "tool_calls": [
                        tc(0, "call_1", "f", '{"a":1}'),
                        tc(1, "call_2", "g", '{"b":2}'),
                    ],
                },
                "tool_calls",
            ),
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6}},
        ]
    )
    assert [b["type"] for b in m["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    assert m["content"][2]["input"] == {"a": 1} and m["content"][3]["input"] == {"b": 2}
    assert m["usage"]["input_tokens"] == 5 and m["usage"]["output_tokens"] == 6


def test_forced_tool_with_finish_stop_is_tool_use() -> None:
    m = final([ch({"tool_calls": [tc(0, "call_1", "f", "{}")]}), ch({}, "stop")])
    assert m["stop_reason"] == "tool_use"


def test_name_after_id() -> None:
    m = final(
        [
            ch({"tool_calls": [tc(0, "call_1", None, '{"a"')]}),
            ch({"tool_calls": [tc(0, None, "f", ":1}")]}),
            ch({}, "tool_calls"),
        ]
    )
    assert m["content"] == [{"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}]


def test_missing_id_and_no_index() -> None:
    m = final(
        [
            ch({"tool_calls": [tc(None, None, "f", '{"a":')]}),
            ch({"tool_calls": [tc(None, None, None, "2}")]}),
            ch({}, "tool_calls"),
        ]
    )
    assert m["content"][0]["id"].startswith("toolu_") and m["content"][0]["input"] == {"a": 2}


def test_interleaved_parallel_fragments_switch_to_buffered_mode() -> None:
    raw, _ = run(
        [
            ch({"tool_calls": [tc(0, "call_a", "f", "")]}),
            ch({"tool_calls": [tc(1, "call_b", "g", "")]}),
            ch({"tool_calls": [tc(0, None, None, '{"x":')]}),
            ch({"tool_calls": [tc(1, None, None, '{"y":')]}),
            ch({"tool_calls": [tc(0, None, None, "1}")]}),
            ch({"content": "late text"}),
            ch({"tool_calls": [tc(1, None, None, "2}")]}),
            ch({}, "tool_calls"),
        ]
    )
    acc = accumulate_anthropic(raw)
    assert acc.message is not None
    content = acc.message["content"]
    tools = [b for b in content if b["type"] == "tool_use"]
    assert tools == [
        {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "call_b", "name": "g", "input": {"y": 2}},
    ]
    assert {"type": "text", "text": "late text"} in content
    assert acc.message["stop_reason"] == "tool_use"


def test_whole_calls_in_one_chunk_ollama_style_index_reuse() -> None:
    m = final(
        [
            ch({"tool_calls": [tc(0, "call_1", "f", '{"a":1}')]}),
            ch({"tool_calls": [tc(0, "call_2", "g", '{"b":2}')]}),
            ch({}, "stop"),
        ]
    )
    assert [(b["id"], b["name"], b["input"]) for b in m["content"]] == [
        ("call_1", "f", {"a": 1}),
        ("call_2", "g", {"b": 2}),
    ]


def test_tool_without_arguments_gets_empty_object() -> None:
    raw, _ = run([ch({"tool_calls": [tc(0, "call_1", "f")]}), ch({}, "tool_calls")])
    events = parse_anthropic_sse(raw)
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    assert deltas == [{"type": "input_json_delta", "partial_json": "{}"}]


def test_usage_on_any_chunk_and_message_delta_held() -> None:
    s = OpenAIToAnthropicStream(rctx(input_tokens_estimate=42))
    first = s.start()
    assert b'"input_tokens":42' in first
    out = s.feed(ch({"content": "hi"}, usage={"prompt_tokens": 1, "completion_tokens": 1}))
    out += s.feed(ch({}, "stop"))
    assert b"message_delta" not in out and b"message_stop" not in out
    out += s.feed({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3,
                                            "prompt_tokens_details": {"cached_tokens": 4}}})  # fmt: skip
    assert b"message_delta" not in out
    end = s.finish()
    events = parse_anthropic_sse(end)
    md = next(d for n, d in events if n == "message_delta")
    assert md["usage"] == {"input_tokens": 6, "output_tokens": 3, "cache_creation_input_tokens": 0,
                           "cache_read_input_tokens": 4}  # fmt: skip
    assert s.done and s.usage.cache_read_input_tokens == 4
    assert s.feed(ch({"content": "more"})) == b"" and s.finish() == b""


def test_no_usage_estimates_output() -> None:
    raw, s = run(
        [ch({"content": "a few words of output"}), ch({}, "stop")], rctx(input_tokens_estimate=9)
    )
    m = accumulate_anthropic(raw).message
    assert m is not None and m["usage"]["input_tokens"] == 9 and m["usage"]["output_tokens"] > 0
    assert s.usage.estimated


def test_finish_mapping() -> None:
    assert final([ch({"content": "x"}), ch({}, "length")])["stop_reason"] == "max_tokens"
    assert final([ch({"content": "x"}), ch({}, "content_filter")])["stop_reason"] == "refusal"
    m = final(
        [ch({"content": "x"}), ch({}, "stop", stop_reason="###")], rctx(stop_sequences=["###"])
    )
    assert m["stop_reason"] == "stop_sequence" and m["stop_sequence"] == "###"


def test_empty_answer_gets_empty_text_block() -> None:
    m = final([ch({"role": "assistant", "content": ""}), ch({}, "stop")])
    assert m["content"] == [{"type": "text", "text": ""}]


def test_error_chunk_ends_stream_without_message_stop() -> None:
    raw, s = run(
        [
            ch({"content": "partial"}),
            {"error": {"message": "boom", "type": "internal_error", "code": 500}},
        ],
        end=False,
    )
    raw += s.finish()
    acc = accumulate_anthropic(raw)
    assert acc.error == {"type": "api_error", "message": "boom"}
    assert not acc.stopped and s.done and s.failed


def test_early_eof_is_an_error_not_end_turn() -> None:
    raw, s = run([ch({"content": "partial"})])
    acc = accumulate_anthropic(raw)
    assert s.failed and s.done
    assert acc.error is not None and acc.error["type"] == "api_error"
    assert "ended early" in acc.error["message"]
    assert not acc.stopped and not acc.message_delta_seen


def test_fail_emits_error_event() -> None:
    s = OpenAIToAnthropicStream(rctx())
    raw = (
        s.start()
        + s.feed(ch({"reasoning": "x"}))
        + s.fail(UpstreamTimeoutError("upstream timed out"))
    )
    acc = accumulate_anthropic(raw)
    assert acc.error == {"type": "timeout_error", "message": "upstream timed out"}
    assert s.fail(UpstreamTimeoutError("again")) == b"" and s.finish() == b""


def test_leaked_think_tags_split_across_chunks() -> None:
    pieces = ["<th", "ink>pl", "an</th", "ink>\nans", "wer"]
    m = final([ch({"content": p}) for p in pieces] + [ch({}, "stop")])
    assert m["content"][0]["type"] == "thinking" and m["content"][0]["thinking"] == "plan"
    assert m["content"][1] == {"type": "text", "text": "answer"}
    m = final([ch({"content": "<b>bold</b>"}), ch({}, "stop")])
    assert m["content"] == [{"type": "text", "text": "<b>bold</b>"}]


def test_tool_names_unshortened() -> None:
    m = final([ch({"tool_calls": [tc(0, "c1", "short_x", "{}")]}), ch({}, "tool_calls")],
              rctx(tool_names={"short_x": "a_very_long_original"}))  # fmt: skip
    assert m["content"][0]["name"] == "a_very_long_original"


def test_frames_bytes_exact() -> None:
    raw, _ = run([ch({"content": "hi"}), ch({}, "stop")])
    assert raw.startswith(b"event: message_start\ndata: {")
    assert b'event: ping\ndata: {"type":"ping"}\n\n' in raw
    assert raw.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


# ------------------------------------------------------------------ equivalence property

_chars = st.characters(blacklist_categories=("Cs",))
_text = st.text(_chars, max_size=40)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(_chars, max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(_chars, max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
_args = st.dictionaries(st.text(_chars, max_size=8), _json, max_size=4)


def _split(data: st.DataObject, s: str) -> list[str]:
    if not s:
        return []
    n = data.draw(st.integers(1, min(len(s), 5)))
    cuts = sorted(
        data.draw(st.lists(st.integers(1, max(len(s) - 1, 1)), min_size=n - 1, max_size=n - 1))
    )
    out, prev = [], 0
    for c in [*cuts, len(s)]:
        if c > prev:
            out.append(s[prev:c])
            prev = c
    return out


def _sdk_accumulate(raw: bytes) -> Any:
    snap = None
    bufs: dict[int, bytes] = {}
    for _name, data in parse_anthropic_sse(raw):
        ev = construct_type(type_=RawMessageStreamEvent, value=data)
        snap = accumulate_event(event=ev, current_snapshot=snap, json_bufs=bufs)  # type: ignore[arg-type]
    return snap


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    reasoning=_text,
    text=_text.filter(lambda t: not t.lstrip().startswith("<")),
    tools=st.lists(st.tuples(st.sampled_from(["Bash", "Read", "mcp__x__y"]), _args), max_size=3),
    finish=st.sampled_from(["stop", "tool_calls", "length", "content_filter", "stop_seq"]),
    usage=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**5)}
        ),
    ),
    cached=st.integers(0, 100),
)
def test_stream_equals_non_stream(
    data: st.DataObject,
    reasoning: str,
    text: str,
    tools: list[tuple[str, dict[str, Any]]],
    finish: str,
    usage: dict[str, int] | None,
    cached: int,
) -> None:
    extra: dict[str, Any] = {}
    if finish == "stop_seq":
        finish = "stop"
        extra = {"stop_reason": "STOP"}
    if usage is not None:
        usage = {
            **usage,
            "prompt_tokens_details": {"cached_tokens": min(cached, usage["prompt_tokens"])},
        }
    calls = [
        {"id": f"call_{i}", "type": "function",
         "function": {"name": name, "arguments": orjson.dumps(args).decode()}}
        for i, (name, args) in enumerate(tools)
    ]  # fmt: skip
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if reasoning:
        message["reasoning"] = reasoning
    if calls:
        message["tool_calls"] = calls
    resp: dict[str, Any] = {
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **extra}]
    }
    if usage is not None:
        resp["usage"] = usage
    ctx = rctx(stop_sequences=["STOP"], input_tokens_estimate=7)
    expected = openai_to_anthropic_response(resp, ctx)

    # chunk stream with random fragmentation
    chunks: list[dict[str, Any]] = [ch({"role": "assistant", "content": ""})]
    rfield = data.draw(st.sampled_from(["reasoning", "reasoning_content"]))
    chunks += [ch({rfield: p}) for p in _split(data, reasoning)]
    chunks += [ch({"content": p}) for p in _split(data, text)]
    i = 0
    while i < len(calls):
        c = calls[i]
        style = data.draw(st.sampled_from(["whole", "frag", "pair"]))
        if style == "pair" and i + 1 < len(calls):
            group = [tc(j, calls[j]["id"], calls[j]["function"]["name"], calls[j]["function"]["arguments"])
                     for j in (i, i + 1)]  # fmt: skip
            chunks.append(ch({"tool_calls": group}))
            i += 2
            continue
        args = c["function"]["arguments"]
        if style == "whole":
            chunks.append(ch({"tool_calls": [tc(i, c["id"], c["function"]["name"], args)]}))
        else:
            chunks.append(ch({"tool_calls": [tc(i, c["id"], c["function"]["name"], "")]}))
            chunks += [ch({"tool_calls": [tc(i, None, None, p)]}) for p in _split(data, args)]
        i += 1
    usage_mode = data.draw(st.sampled_from(["trailing", "on_finish"]))
    fin = ch({}, finish, **extra)
    if usage is not None and usage_mode == "on_finish":
        fin["usage"] = usage
    chunks.append(fin)
    if usage is not None and usage_mode == "trailing":
        chunks.append({"choices": [], "usage": usage})

    raw, _ = run(chunks, ctx)
    acc = accumulate_anthropic(raw)
    got = acc.message
    assert acc.stopped and got is not None
    assert got["content"] == expected["content"]
    assert got["stop_reason"] == expected["stop_reason"]
    assert got["stop_sequence"] == expected["stop_sequence"]
    assert got["model"] == expected["model"]
    if usage is not None:
        assert got["usage"] == expected["usage"]
    else:
        assert got["usage"]["input_tokens"] == expected["usage"]["input_tokens"] == 7
    # the SDK's own accumulator agrees
    snap = _sdk_accumulate(raw)
    assert [b.type for b in snap.content] == [b["type"] for b in expected["content"]]
    assert snap.stop_reason == expected["stop_reason"]
    for b, e in zip(snap.content, expected["content"], strict=True):
        if e["type"] == "tool_use":
            assert b.input == e["input"] and b.name == e["name"] and b.id == e["id"]
