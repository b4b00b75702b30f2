# ruff: noqa: E501  (test vectors read better on one line)
"""Golden vectors of docs/protocols.md §9."""

from __future__ import annotations

from typing import Any

from tx_helpers import (
    accumulate_anthropic,
    accumulate_openai,
    parse_anthropic_sse,
    parse_openai_sse,
    rctx,
    vllm_target,
)

from dragoman.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_to_openai_request,
    is_synthetic_signature,
    openai_upstream_error,
)


def test_9_1_request_with_tool_loop() -> None:
    a_in: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": False,
        "system": [
            {
                "type": "text",
                "text": "x-anthropic-billing-header: cc_version=2.1.1.abc; cc_entrypoint=cli; "
                "cch=12345;",
            },
            {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather",
                "input_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Call the tool.", "signature": "gw1.abc"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": [{"type": "text", "text": "18C, sunny"}],
                    },
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    }
    expected = {
        "model": "qwen3-coder",
        "max_tokens": 1024,
        "stream": False,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "reasoning": "Call the tool.",
                "tool_calls": [
                    {
                        "id": "toolu_01",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C, sunny"},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }
    out, ctx = anthropic_to_openai_request(a_in, vllm_target())
    assert out == expected
    assert ctx.requested_model == "claude-sonnet-4-5"
    assert ctx.input_tokens_estimate > 0


G92_CHUNKS: list[dict[str, Any]] = [
    {
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ]
    },
    {"choices": [{"index": 0, "delta": {"reasoning": "Need tool"}, "finish_reason": None}]},
    {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":'},
                        }
                    ]
                },
                "finish_reason": None,
            }
        ]
    },
    {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Rome"}'}}]},
                "finish_reason": None,
            }
        ]
    },
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62}},
]


def test_9_2_openai_stream_to_anthropic_sse() -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    s = OpenAIToAnthropicStream(rctx())
    raw = s.start()
    for c in G92_CHUNKS:
        raw += s.feed({**base, **c})
    raw += s.finish()
    events = [(n, d) for n, d in parse_anthropic_sse(raw) if n != "ping"]
    start = events[0][1]["message"]
    assert start["model"] == "claude-sonnet-4-5"
    assert start["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert start["stop_reason"] is None and start["stop_sequence"] is None
    sig = events[3][1]["delta"]["signature"]
    assert is_synthetic_signature(sig)
    expected = [
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": "Need tool"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": sig}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "tool_use", "id": "call_9",
                                                   "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"city":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '"Rome"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"input_tokens": 50, "output_tokens": 12,
                                     "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 0}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    assert events[1:] == expected
    acc = accumulate_anthropic(raw)
    assert acc.stopped and acc.message is not None
    assert acc.message["content"][1]["input"] == {"city": "Rome"}
    assert s.done and s.usage.input_tokens == 50 and s.usage.output_tokens == 12


def test_9_3_anthropic_sse_to_openai_text() -> None:
    s = AnthropicToOpenAIStream(rctx(include_usage=True))
    raw = b""
    msg = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 5},
    }
    raw += s.feed("message_start", {"type": "message_start", "message": msg})
    raw += s.feed("ping", {"type": "ping"})
    raw += s.feed(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    raw += s.feed(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    )
    raw += s.feed("content_block_stop", {"type": "content_block_stop", "index": 0})
    raw += s.feed(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 3},
        },
    )
    raw += s.feed("message_stop", {"type": "message_stop"})
    items = parse_openai_sse(raw)
    assert items[-1] == "[DONE]"
    chunks = items[:-1]
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
         "finish_reason": None}
    ]  # fmt: skip
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert chunks[2]["choices"][0]["delta"] == {}
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == []
    u = chunks[3]["usage"]
    assert u["prompt_tokens"] == 15 and u["completion_tokens"] == 3 and u["total_tokens"] == 18
    assert u["prompt_tokens_details"]["cached_tokens"] == 5
    for c in chunks[:3]:
        assert c["usage"] is None
        assert c["model"] == "claude-sonnet-4-5"
        assert c["object"] == "chat.completion.chunk"
    assert len({c["id"] for c in chunks}) == 1
    assert len({c["created"] for c in chunks}) == 1
    acc = accumulate_openai(items)
    assert acc["message"]["content"] == "Hi"
    # nothing after [DONE]
    assert s.feed("message_stop", {"type": "message_stop"}) == b""
    assert s.finish() == b""


def test_9_4_error_translation() -> None:
    body = (
        b'{"error":{"message":"\'max_tokens\' or \'max_completion_tokens\' is too large: 32000. '
        b"This model's maximum context length is 32768 tokens and your request has 9000 input "
        b'tokens (32000 > 32768 - 9000)","type":"BadRequestError","param":null,"code":400}}'
    )
    err = openai_upstream_error(400, body, {})
    assert err.status == 400
    assert err.type == "invalid_request_error"
    assert err.message == (
        "input length and `max_tokens` exceed context limit: 9000 + 32000 > 32768, decrease "
        "input length or `max_tokens` and try again"
    )


def test_9_4_avoided_by_clamping() -> None:
    a_in = {
        "model": "m",
        "max_tokens": 32000,
        "messages": [{"role": "user", "content": "word " * 9000}],
    }
    out, ctx = anthropic_to_openai_request(a_in, vllm_target(context_window=32768))
    assert 9000 <= ctx.input_tokens_estimate < 20000
    assert out["max_tokens"] == 32768 - ctx.input_tokens_estimate


# ------------------------------------------------------------------ hand-written vectors
# Each expected body below was written out by hand from docs/protocols.md §7.1 / §7.4 and
# docs/translation.md, not produced by running the translators (review row 18).

PNG = "iVBORw0KGgo="


def test_golden_a2o_errors_images_nested_results_thinking_cache() -> None:
    a_in: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2000,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "Read", "description": "Read a file",
                   "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look at these.", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Read both.", "signature": "EqSig"},
                {"type": "tool_use", "id": "toolu_01A", "name": "Read", "input": {"path": "a"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "Read", "input": {"path": "b"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "is_error": True,
                 "content": "ENOENT"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": [
                    {"type": "text", "text": "line 1"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                                 "data": "/9j/"}},
                    {"type": "text", "text": "line 2"},
                ]},
                {"type": "text", "text": "Go on."},
            ]},
        ],
    }  # fmt: skip
    out, _ = anthropic_to_openai_request(a_in, vllm_target())
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "Look at these."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
        ]},
        {"role": "assistant", "content": "", "reasoning": "Read both.", "tool_calls": [
            {"id": "toolu_01A", "type": "function",
             "function": {"name": "Read", "arguments": '{"path": "a"}'}},
            {"id": "toolu_01B", "type": "function",
             "function": {"name": "Read", "arguments": '{"path": "b"}'}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "[tool error] ENOENT"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "line 1\nline 2"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
            {"type": "text", "text": "Go on."},
        ]},
    ]  # fmt: skip
    assert out["tools"] == [{"type": "function", "function": {
        "name": "Read", "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]  # fmt: skip
    assert out["max_tokens"] == 2000


def test_golden_a2o_for_mistral() -> None:
    """The same history for a Mistral upstream: ids in 9 base62 characters (sha256 of the id,
    first 8 bytes big-endian mod 62**9, least significant digit first), the reminder text after
    the tool results joined to the last result, no stream_options, no reasoning field."""
    a_in: dict[str, Any] = {
        "model": "devstral",
        "max_tokens": 100,
        "stream": True,
        "messages": [
            {"role": "user", "content": "Read a and b."},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Both.", "signature": "EqSig"},
                {"type": "tool_use", "id": "toolu_01A", "name": "Read", "input": {"path": "a"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "Read", "input": {"path": "b"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "A"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "B"},
                {"type": "text", "text": "<system-reminder>x</system-reminder>"},
            ]},
        ],
    }  # fmt: skip
    target = vllm_target(model="mistral-large-latest", flavor="mistral",
                         reasoning_field="", tool_id_format="mistral9")  # fmt: skip
    out, _ = anthropic_to_openai_request(a_in, target)
    assert out == {
        "model": "mistral-large-latest",
        "messages": [
            {"role": "user", "content": "Read a and b."},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "NANSnMZHz", "type": "function",
                 "function": {"name": "Read", "arguments": '{"path": "a"}'}},
                {"id": "Vv0px2oEU", "type": "function",
                 "function": {"name": "Read", "arguments": '{"path": "b"}'}},
            ]},
            {"role": "tool", "tool_call_id": "NANSnMZHz", "content": "A"},
            {"role": "tool", "tool_call_id": "Vv0px2oEU",
             "content": "B\n\n<system-reminder>x</system-reminder>"},
        ],
        "max_tokens": 100,
        "stream": True,
    }  # fmt: skip


def test_golden_o2a_images_tools_and_errors() -> None:
    from dragoman.translate import openai_to_anthropic_request

    o_in: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/"}},
            ]},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_x1", "type": "function",
                 "function": {"name": "zoom", "arguments": '{"factor": 2}'}},
                {"id": "call.x2", "type": "function",
                 "function": {"name": "zoom", "arguments": "{bad json"}},
            ]},
            {"role": "tool", "tool_call_id": "call_x1", "content": [{"type": "text", "text": "2x"}]},
            {"role": "user", "content": "and?"},
        ],
        "tools": [{"type": "function", "function": {"name": "zoom", "parameters": {
            "type": "object", "properties": {"factor": {"type": "integer"}}}}}],
    }  # fmt: skip
    out, _ = openai_to_anthropic_request(o_in, vllm_target(model="claude-sonnet-4-5"))
    assert out["system"] == [{"type": "text", "text": "Be brief."}]
    assert out["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": "/9j/"}},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_x1", "name": "zoom", "input": {"factor": 2}},
            {"type": "tool_use", "id": "call_x2", "name": "zoom", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_x1", "content": "2x"},
            {"type": "tool_result", "tool_use_id": "call_x2", "content": "(no result)"},
            {"type": "text", "text": "and?"},
        ]},
    ]  # fmt: skip
    assert out["max_tokens"] == 300
