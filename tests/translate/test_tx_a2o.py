# ruff: noqa: E501  (test vectors read better on one line)
"""Anthropic client -> OpenAI upstream: one test per rule of docs/protocols.md §7.1 / §7.2."""

from __future__ import annotations

from typing import Any

import pytest
from tx_helpers import rctx, vllm_target

from dragoman.errors import InvalidRequestError
from dragoman.translate import (
    anthropic_to_openai_request,
    is_synthetic_signature,
    openai_to_anthropic_response,
    shorten_tool_name,
)


def req(messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 100, "messages": messages, **kw}


def conv(body: dict[str, Any], **target: Any) -> dict[str, Any]:
    out, _ = anthropic_to_openai_request(body, vllm_target(**target))
    return out


def test_system_string_and_blocks_joined_and_billing_dropped() -> None:
    out = conv(req([{"role": "user", "content": "hi"}], system="Be brief."))
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    out = conv(
        req(
            [{"role": "user", "content": "hi"}],
            system=[
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=1; cch=1;"},
                {"type": "text", "text": "A.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "B."},
            ],
        )
    )
    assert out["messages"][0] == {"role": "system", "content": "A.\n\nB."}


def test_claude_code_trailing_mid_conversation_system_is_folded() -> None:
    body = req(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>date</system-reminder>"},
                    {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}},
                ],
            },
            {"role": "system", "content": "Available agent types: ..."},
        ],
        system=[{"type": "text", "text": "You are Claude Code."}],
    )
    out = conv(body)
    msgs = out["messages"]
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == "You are Claude Code.\n\nAvailable agent types: ..."
    assert msgs[1]["content"] == [
        {"type": "text", "text": "<system-reminder>date</system-reminder>"},
        {"type": "text", "text": "list files"},
    ]
    assert "continue_final_message" not in out


def test_mid_conv_system_block_and_lenient_roles() -> None:
    body = req(
        [
            {"role": "ctx", "content": "context"},
            {
                "role": "user",
                "content": [
                    {"type": "mid_conv_system", "content": [{"type": "text", "text": "SYS2"}]},
                    {"type": "text", "text": "q"},
                ],
            },
        ],
        system="SYS1",
    )
    msgs = conv(body)["messages"]
    assert msgs[0] == {"role": "system", "content": "SYS1\n\nSYS2"}
    # ctx -> user, merged with the following user turn
    assert msgs[1] == {"role": "user", "content": "context\n\nq"}
    assert len(msgs) == 2


def tool_turn() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"p": 1}}],
        },
    ]


def test_tool_results_before_text_and_joined_content() -> None:
    msgs = conv(
        req(
            [
                *tool_turn(),
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "after"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [
                                {"type": "text", "text": "line1"},
                                {"type": "text", "text": "line2"},
                            ],
                            "cache_control": {"type": "ephemeral"},
                        },
                    ],
                },
            ]
        )
    )["messages"]
    assert msgs[-2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "line1\nline2"}
    assert msgs[-1] == {"role": "user", "content": "after"}
    assert msgs[1]["content"] == ""  # assistant with only tool calls (vLLM-safe "")
    assert msgs[1]["tool_calls"][0]["function"]["arguments"] == '{"p": 1}'


def test_tool_result_missing_content_and_is_error() -> None:
    msgs = conv(
        req(
            [
                *tool_turn(),
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True}
                    ],
                },
            ]
        )
    )["messages"]
    assert msgs[-1] == {"role": "tool", "tool_call_id": "toolu_1", "content": "[tool error] "}
    msgs = conv(
        req(
            [
                *tool_turn(),
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": "boom",
                            "is_error": True,
                        }
                    ],
                },
            ]
        )
    )["messages"]
    assert msgs[-1]["content"] == "[tool error] boom"


def test_images_in_tool_result_move_to_following_user_message() -> None:
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}
    msgs = conv(
        req(
            [
                *tool_turn(),
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "screenshot"}, img],
                        },
                        {"type": "text", "text": "what do you see?"},
                    ],
                },
            ]
        )
    )["messages"]
    assert msgs[-2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "screenshot"}
    assert msgs[-1] == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
            {"type": "text", "text": "what do you see?"},
        ],
    }


def test_user_images_base64_and_url() -> None:
    msgs = conv(
        req(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": "Zm"},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                        {"type": "text", "text": "t"},
                    ],
                }
            ]
        )
    )["messages"]
    assert msgs[0]["content"][0]["image_url"]["url"] == "data:image/jpeg;base64,Zm"
    assert msgs[0]["content"][1]["image_url"]["url"] == "https://x/y.png"


def test_documents() -> None:
    doc = {
        "type": "document",
        "title": "T",
        "source": {"type": "text", "media_type": "text/plain", "data": "body"},
    }
    msgs = conv(req([{"role": "user", "content": [doc]}]))["messages"]
    assert msgs[0]["content"] == "T\n\nbody"
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "x"},
    }
    with pytest.raises(InvalidRequestError):
        conv(req([{"role": "user", "content": [pdf]}]))
    out = conv(req([{"role": "user", "content": [pdf]}]), flavor="openai")
    assert out["messages"][0]["content"][0]["type"] == "file"


def test_orphan_repair() -> None:
    msgs = conv(
        req(
            [
                *tool_turn(),
                {"role": "user", "content": "never mind"},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_zzz", "content": "x"}
                    ],
                },
            ]
        )
    )["messages"]
    roles = [m["role"] for m in msgs]
    assert roles == ["user", "assistant", "tool", "user"]
    assert msgs[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "(no result)"}
    assert msgs[3]["content"] == "never mind"


def test_orphan_repair_at_end() -> None:
    msgs = conv(req(tool_turn()))
    assert msgs["messages"][-1]["role"] == "tool"
    assert "continue_final_message" not in msgs


def test_merge_same_roles_never_across_tool() -> None:
    msgs = conv(
        req(
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": [{"type": "text", "text": "d"}]},
                {"role": "user", "content": "e"},
            ]
        )
    )["messages"]
    assert msgs == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c\n\nd"},
        {"role": "user", "content": "e"},
    ]


def test_prefill_vllm_and_others() -> None:
    body = req([{"role": "user", "content": "q"}, {"role": "assistant", "content": "The answer"}])
    out = conv(body)
    assert out["continue_final_message"] is True and out["add_generation_prompt"] is False
    assert out["messages"][-1] == {"role": "assistant", "content": "The answer"}
    out = conv(body, flavor="ollama")
    assert "continue_final_message" not in out


def test_thinking_to_reasoning_field_per_target() -> None:
    body = req(
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "redacted_thinking", "data": "zzz"},
                    {"type": "text", "text": "A"},
                ],
            },
            {"role": "user", "content": "q2"},
        ]
    )
    assert conv(body)["messages"][1] == {"role": "assistant", "content": "A", "reasoning": "hmm"}
    out = conv(body, reasoning_field="reasoning_content", flavor="deepseek")
    assert out["messages"][1]["reasoning_content"] == "hmm"
    out = conv(body, reasoning_field="", flavor="openai")
    assert out["messages"][1] == {"role": "assistant", "content": "A"}


def test_server_tool_blocks_dropped() -> None:
    body = req(
        [
            {"role": "user", "content": "search"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {},
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {"type": "text", "text": "found"},
                ],
            },
        ],
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
    )
    out = conv(body)
    assert "tools" not in out and "tool_choice" not in out
    assert out["messages"][-1] == {"role": "assistant", "content": "found"}


def test_empty_tools_array_is_omitted() -> None:
    out = conv(req([{"role": "user", "content": "t"}], tools=[], tool_choice={"type": "auto"}))
    assert "tools" not in out and "tool_choice" not in out and "parallel_tool_calls" not in out


def test_tool_definition_cleanup() -> None:
    tool = {
        "name": "Bash",
        "description": "run",
        "input_schema": {"type": "object", "properties": {}},
        "cache_control": {"type": "ephemeral"},
        "defer_loading": False,
        "input_examples": [{}],
        "eager_input_streaming": True,
        "strict": True,
        "type": "custom",
    }
    out = conv(req([{"role": "user", "content": "t"}], tools=[tool]))
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "description": "run",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    assert "tool_choice" not in out


LONG = "mcp__some_really_long_server_name__and_an_even_longer_tool_name_for_testing_x"


def test_long_tool_name_round_trip() -> None:
    assert len(LONG) > 64
    short = shorten_tool_name(LONG)
    assert len(short) == 64 and short == shorten_tool_name(LONG)
    body = req(
        [
            {"role": "user", "content": "t"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": LONG, "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
            },
        ],
        tools=[{"name": LONG, "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": LONG},
    )
    out, ctx = anthropic_to_openai_request(body, vllm_target())
    assert out["tools"][0]["function"]["name"] == short
    assert out["messages"][1]["tool_calls"][0]["function"]["name"] == short
    assert out["tool_choice"] == {"type": "function", "function": {"name": short}}
    assert ctx.tool_names == {short: LONG}
    resp = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": short, "arguments": "{}"}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }  # fmt: skip
    a = openai_to_anthropic_response(resp, ctx)
    assert a["content"][0]["name"] == LONG


def test_tool_name_invalid_chars() -> None:
    s = shorten_tool_name("my.tool name")
    assert s.startswith("my_tool_name_") and len(s) <= 64
    assert shorten_tool_name("ok_name-1") == "ok_name-1"


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "T"}, {"type": "function", "function": {"name": "T"}}, None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        (None, None, None),
    ],
)
def test_tool_choice_table(choice: Any, expected: Any, parallel: Any) -> None:
    body = req([{"role": "user", "content": "t"}], tools=[{"name": "T", "input_schema": {}}])
    if choice is not None:
        body["tool_choice"] = choice
    out = conv(body)
    assert out.get("tool_choice") == expected
    assert out.get("parallel_tool_calls") == parallel


def test_thinking_to_reasoning_effort() -> None:
    base = [{"role": "user", "content": "t"}]
    out = conv(req(base, thinking={"type": "enabled", "budget_tokens": 5000}))
    assert out["reasoning_effort"] == "high"
    assert out["chat_template_kwargs"] == {"enable_thinking": True}
    out = conv(req(base, thinking={"type": "adaptive"}, output_config={"effort": "high"}))
    assert out["reasoning_effort"] == "high"
    out = conv(req(base, thinking={"type": "enabled", "budget_tokens": 1024}), flavor="openai")
    assert out["reasoning_effort"] == "low" and "chat_template_kwargs" not in out
    out = conv(
        req(base, thinking={"type": "adaptive"}, output_config={"effort": "max"}), flavor="ollama"
    )
    assert out["reasoning_effort"] == "high"
    out = conv(req(base, thinking={"type": "disabled"}))
    assert out["chat_template_kwargs"] == {"enable_thinking": False}
    assert "reasoning_effort" not in out
    # DeepSeek: its own thinking switch, with an effort it takes (low/high/max)
    out = conv(req(base, thinking={"type": "enabled", "budget_tokens": 5000}), flavor="deepseek")
    assert out["thinking"] == {"type": "enabled"} and out["reasoning_effort"] == "high"
    assert "chat_template_kwargs" not in out
    # a server not recognised gets no switch at all
    out = conv(req(base, thinking={"type": "enabled", "budget_tokens": 5000}), flavor="generic")
    assert not {"thinking", "reasoning_effort", "chat_template_kwargs"} & set(out)


def test_max_tokens_clamping() -> None:
    base = [{"role": "user", "content": "t"}]
    assert conv(req(base, max_tokens=32000), max_output_tokens=8192)["max_tokens"] == 8192
    out, ctx = anthropic_to_openai_request(
        req(base, max_tokens=32000), vllm_target(context_window=4096)
    )
    assert out["max_tokens"] == 4096 - ctx.input_tokens_estimate
    # prompt alone overflows: leave it for the upstream to reject with real numbers
    huge = [{"role": "user", "content": "word " * 5000}]
    assert conv(req(huge, max_tokens=500), context_window=1000)["max_tokens"] == 500
    assert conv(req(base, max_tokens=0))["max_tokens"] == 1
    out = conv(req(base, max_tokens=300), flavor="openai")
    assert out["max_completion_tokens"] == 300 and "max_tokens" not in out


def test_generation_params() -> None:
    body = req(
        [{"role": "user", "content": "t"}],
        temperature=0.3,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END", "  ", "\n\nHuman:"],
        metadata={"user_id": '{"device_id":"' + "a" * 80 + '"}'},
        stream=True,
        context_management={"edits": []},
        service_tier="auto",
        container="c",
        inference_geo="us",
        mcp_servers=[],
        speed="fast",
        diagnostics={},
        cache_control={"type": "ephemeral"},
    )
    out, ctx = anthropic_to_openai_request(body, vllm_target())
    assert out == {
        "model": "qwen3-coder",
        "messages": [{"role": "user", "content": "t"}],
        "max_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END", "\n\nHuman:"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert ctx.stop_sequences == ["END", "\n\nHuman:"]
    out = conv(body, flavor="openai")
    assert "top_k" not in out
    assert len(out["user"]) <= 64


def test_structured_output() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"],
              "additionalProperties": False}  # fmt: skip
    out = conv(
        req(
            [{"role": "user", "content": "t"}],
            tools=[],
            thinking={"type": "disabled"},
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "structured_output", "schema": schema, "strict": True},
    }
    assert "tools" not in out


# ------------------------------------------------------------------------------ responses


def resp(message: dict[str, Any], finish: str = "stop", **kw: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **kw}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }  # fmt: skip


def test_response_basic_shape() -> None:
    a = openai_to_anthropic_response(resp({"content": "Hello"}), rctx())
    assert a["id"].startswith("msg_") and a["type"] == "message" and a["role"] == "assistant"
    assert a["model"] == "claude-sonnet-4-5"
    assert a["content"] == [{"type": "text", "text": "Hello"}]
    assert a["stop_reason"] == "end_turn" and a["stop_sequence"] is None
    assert a["usage"] == {"input_tokens": 100, "output_tokens": 20,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}  # fmt: skip


def test_response_reasoning_order_and_signature() -> None:
    for field in ("reasoning", "reasoning_content"):
        a = openai_to_anthropic_response(
            resp(
                {
                    "content": "",
                    field: "think",
                    "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "f", "arguments": '{"a": [1, {"b": null}]}'}}
                    ],
                },
                "stop",
            ),
            rctx(),
        )  # fmt: skip
        assert [b["type"] for b in a["content"]] == ["thinking", "tool_use"]
        assert is_synthetic_signature(a["content"][0]["signature"])
        assert a["content"][1] == {"type": "tool_use", "id": "call_1", "name": "f",
                                   "input": {"a": [1, {"b": None}]}}  # fmt: skip
        # OpenAI says "stop" for a forced call: still tool_use
        assert a["stop_reason"] == "tool_use"


def test_leaked_think_tags() -> None:
    a = openai_to_anthropic_response(resp({"content": "<think>plan</think>\n\nanswer"}), rctx())
    assert a["content"][0]["type"] == "thinking" and a["content"][0]["thinking"] == "plan"
    assert a["content"][1] == {"type": "text", "text": "answer"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("", {}),
        (None, {}),
        ("null", {}),
        ('{"x": 1}', {"x": 1}),
        ("[1, 2]", {"value": [1, 2]}),
        ('"str"', {"value": "str"}),
        ('{"x": 1,}', {"x": 1}),
        ('{"x": "abc', {"x": "abc"}),
        ("not json at all", {}),
    ],
)
def test_tool_argument_parsing(args: Any, expected: Any) -> None:
    a = openai_to_anthropic_response(
        resp(
            {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": args}}]},
            "tool_calls",
        ),
        rctx(),
    )
    assert a["content"][0]["input"] == expected


def test_tool_ids_sanitised() -> None:
    a = openai_to_anthropic_response(
        resp({"tool_calls": [{"id": "call:1.2", "function": {"name": "f", "arguments": "{}"}},
                             {"function": {"name": "g", "arguments": "{}"}}]}, "tool_calls"),
        rctx(),
    )  # fmt: skip
    assert a["content"][0]["id"] == "call_1_2"
    assert a["content"][1]["id"].startswith("toolu_")


def test_refusal_and_stop_reasons() -> None:
    a = openai_to_anthropic_response(resp({"content": None, "refusal": "I can't"}), rctx())
    assert a["content"] == [{"type": "text", "text": "I can't"}] and a["stop_reason"] == "refusal"
    assert (
        openai_to_anthropic_response(resp({"content": "x"}, "length"), rctx())["stop_reason"]
        == "max_tokens"
    )
    assert (
        openai_to_anthropic_response(resp({"content": "x"}, "content_filter"), rctx())[
            "stop_reason"
        ]
        == "refusal"
    )
    assert (
        openai_to_anthropic_response(resp({"content": "x"}, "abort"), rctx())["stop_reason"]
        == "end_turn"
    )


def test_stop_sequence_reporting() -> None:
    r = resp({"content": "x"}, "stop", stop_reason="END")
    a = openai_to_anthropic_response(r, rctx(stop_sequences=["END"]))
    assert a["stop_reason"] == "stop_sequence" and a["stop_sequence"] == "END"
    # a token id or an unknown string is not a stop sequence
    a = openai_to_anthropic_response(
        resp({"content": "x"}, "stop", stop_reason=151645), rctx(stop_sequences=["END"])
    )
    assert a["stop_reason"] == "end_turn" and a["stop_sequence"] is None


def test_usage_with_cache_tokens() -> None:
    r = resp({"content": "x"})
    r["usage"] = {
        "prompt_tokens": 2460,
        "completion_tokens": 95,
        "total_tokens": 2555,
        "prompt_tokens_details": {"cached_tokens": 2048},
    }
    a = openai_to_anthropic_response(r, rctx())
    assert a["usage"] == {"input_tokens": 412, "output_tokens": 95,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048}  # fmt: skip


def test_missing_usage_is_estimated() -> None:
    r = resp({"content": "some words here"})
    del r["usage"]
    a = openai_to_anthropic_response(r, rctx(input_tokens_estimate=77))
    assert a["usage"]["input_tokens"] == 77 and a["usage"]["output_tokens"] > 0


def test_empty_answer_gets_one_empty_text_block() -> None:
    a = openai_to_anthropic_response(resp({"content": ""}), rctx())
    assert a["content"] == [{"type": "text", "text": ""}]
    a = openai_to_anthropic_response({"choices": []}, rctx())
    assert a["content"] == [{"type": "text", "text": ""}] and a["stop_reason"] == "end_turn"
