"""Chat chunks -> Responses events, and chat.completion -> response: golden vectors,
adversarial upstreams and properties. Every stream is held to the strict grammar checker
(tests/conformance/responses_sse_checks.py) and parsed by the openai SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conformance.responses_sse_checks import check_responses_sse, validate_with_sdk
from tests.translate.responses_helpers import (
    CREATED,
    SEALER,
    ctx_for,
    delta,
    finish,
    run,
    strip_ids,
    tool,
    usage,
)

from dragoman.errors import InvalidRequestError, RateLimitError, ServerError
from dragoman.translate.responses import (
    THINKING_CARRIER,
    ChatToResponsesStream,
    chat_to_response,
    chat_to_response_with_usage,
    open_reasoning,
    responses_to_chat,
)

TOOLS = [
    {
        "type": "function",
        "name": "exec_command",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    },
    {"type": "custom", "name": "apply_patch", "description": "Edit files."},
    {"type": "local_shell"},
    {
        "type": "namespace",
        "name": "git",
        "description": "git",
        "tools": [{"type": "function", "name": "status"}],
    },
]
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"


def test_text_stream_golden() -> None:
    ctx = ctx_for({"instructions": "Be brief.", "temperature": 0.5})
    chk, m = run(
        ctx,
        [
            delta(role="assistant", content=""),
            delta(content="Hel"),
            delta(content="lo"),
            finish(),
            usage(11, 2, cached=4),
        ],
    )
    assert chk.types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    r = chk.response
    msg = r["output"][0]
    assert msg["id"].startswith("msg_") and len(msg["id"]) == 52
    assert strip_ids(r["output"]) == [
        {
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello"}
            ],
        }
    ]
    assert r["id"] == m.id and r["id"].startswith("resp_")
    assert r["created_at"] == CREATED and r["completed_at"] == CREATED
    assert r["model"] == "qwen3-coder"
    assert r["instructions"] == "Be brief." and r["temperature"] == 0.5
    assert r["usage"] == {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 13,
    }
    assert r["store"] is False and r["error"] is None and r["incomplete_details"] is None
    assert m.usage.input_tokens == 7 and m.usage.cache_read_input_tokens == 4
    assert not m.usage.estimated


def test_tool_calls_function_custom_local_shell_and_namespace() -> None:
    ctx = ctx_for({"tools": TOOLS})
    wrapped = json.dumps({"patch": "```\n" + PATCH + "```"})
    chk, _ = run(
        ctx,
        [
            tool(0, "call_1", "exec_command", '{"cmd":'),
            tool(0, args=' "ls"}'),
            tool(1, "call_2", "apply_patch", wrapped[:20]),
            tool(1, args=wrapped[20:]),
            tool(2, "call_3", "local_shell", '{"command": ["ls"], "workdir": "/w"}'),
            tool(3, "call_4", "git__status", ""),
            finish("tool_calls"),
            usage(),
        ],
    )
    fc, ctc, lsh, ns = chk.items
    assert {k: v for k, v in fc.items() if k != "id"} == {
        "type": "function_call",
        "status": "completed",
        "arguments": '{"cmd": "ls"}',
        "call_id": "call_1",
        "name": "exec_command",
    }
    assert fc["id"].startswith("fc_")
    assert {k: v for k, v in ctc.items() if k != "id"} == {
        # the fence's own line end is not part of the patch (Codex's grammar: "*** End Patch" LF?)
        "type": "custom_tool_call",
        "call_id": "call_2",
        "name": "apply_patch",
        "input": PATCH.rstrip("\n"),
    }
    assert ctc["id"].startswith("ctc_")
    assert lsh["type"] == "local_shell_call" and lsh["call_id"] == "call_3"
    assert lsh["action"] == {
        "type": "exec",
        "command": ["ls"],
        "timeout_ms": None,
        "working_directory": "/w",
        "env": {},
        "user": None,
    }
    assert ns["name"] == "status" and ns["namespace"] == "git" and ns["arguments"] == "{}"
    deltas = [
        e["delta"] for e in chk.events if e["type"] == "response.function_call_arguments.delta"
    ]
    assert deltas == ['{"cmd":', ' "ls"}', "{}"]
    custom = [e for e in chk.events if e["type"].startswith("response.custom_tool_call_input")]
    assert [e["type"] for e in custom] == [
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    ]


@pytest.mark.parametrize("summary", [True, False])
def test_reasoning_is_summary_or_content_and_sealed_when_asked(summary: bool) -> None:
    body: dict[str, Any] = {"include": ["reasoning.encrypted_content"]}
    if summary:
        body["reasoning"] = {"summary": "auto"}
    chk, _ = run(
        ctx_for(body),
        [
            delta(reasoning_content="Think"),
            delta(reasoning_content="ing"),
            delta(content="Answer"),
            finish(),
            usage(reasoning=3),
        ],
    )
    rs = chk.items[0]
    if summary:
        assert rs["summary"] == [{"type": "summary_text", "text": "Thinking"}]
        assert "content" not in rs
        assert "response.reasoning_summary_text.delta" in chk.types
    else:
        assert rs["summary"] == []
        assert rs["content"] == [{"type": "reasoning_text", "text": "Thinking"}]
        assert "response.reasoning_text.delta" in chk.types
    back = open_reasoning(SEALER, rs["encrypted_content"])
    assert back is not None and back.text == "Thinking" and back.blocks == ()
    assert chk.response["usage"]["output_tokens_details"] == {"reasoning_tokens": 3}


def test_no_encrypted_content_unless_included() -> None:
    chk, _ = run(ctx_for(), [delta(reasoning="r"), delta(content="a"), finish()])
    assert "encrypted_content" not in chk.items[0]


def test_anthropic_thinking_blocks_round_trip_byte_exact() -> None:
    """Signed blocks from the O->A bridge's carrier are sealed into the reasoning item and come
    back, unchanged, on the next turn's assistant message for the O->A bridge."""
    blocks = [
        {"type": "thinking", "thinking": 'Plan: ünïcode "quotes"\n', "signature": "Sig/+=="},
        {"type": "redacted_thinking", "data": "RmFrZVJlZGFjdGVk"},
    ]
    ctx = ctx_for({"include": ["reasoning.encrypted_content"]})
    chk, _ = run(
        ctx,
        [
            delta(reasoning_content='Plan: ünïcode "quotes"\n'),
            delta(**{THINKING_CARRIER: blocks}),
            tool(0, "toolu_1", "exec_command", '{"cmd": "ls"}'),
            finish("tool_calls"),
            usage(),
        ],
    )
    assert THINKING_CARRIER not in json.dumps(chk.events)
    rs, fc = chk.items
    nxt, _ = responses_to_chat(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "go"},
                rs,
                fc,
                {"type": "function_call_output", "call_id": "toolu_1", "output": "a.txt"},
            ],
        },
        sealer=SEALER,
    )
    assistant = nxt["messages"][1]
    assert assistant[THINKING_CARRIER] == blocks
    assert json.dumps(assistant[THINKING_CARRIER]) == json.dumps(blocks)
    assert assistant["reasoning_content"] == 'Plan: ünïcode "quotes"\n'


def test_a_carrier_alone_opens_a_reasoning_item() -> None:
    blocks = [{"type": "redacted_thinking", "data": "xyz"}]
    chk, _ = run(
        ctx_for({"include": ["reasoning.encrypted_content"]}),
        [delta(**{THINKING_CARRIER: blocks}), delta(content="ok"), finish()],
    )
    rs = chk.items[0]
    assert rs["summary"] == [] and "content" not in rs
    got = open_reasoning(SEALER, rs["encrypted_content"])
    assert got is not None and list(got.blocks) == blocks


# ------------------------------------------------------------------------------ endings


def test_length_is_incomplete_and_marks_the_cut_item() -> None:
    chk, _ = run(ctx_for(), [delta(content="partial"), finish("length"), usage()])
    assert chk.terminal == "response.incomplete"
    assert chk.response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert chk.items[0]["status"] == "incomplete"


def test_content_filter_is_incomplete() -> None:
    chk, _ = run(ctx_for(), [delta(content="x"), finish("content_filter")])
    assert chk.terminal == "response.incomplete"
    assert chk.response["incomplete_details"] == {"reason": "content_filter"}


def test_refusal_is_a_refusal_part() -> None:
    chk, _ = run(ctx_for(), [delta(content="I"), delta(refusal="can't"), finish()])
    assert chk.items[0]["content"] == [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "I"},
        {"type": "refusal", "refusal": "can't"},
    ]


def test_cut_stream_ends_with_response_failed() -> None:
    """The upstream dies mid-sentence (no finish_reason): never a silent EOF, never a fake
    completion; the open item is closed as incomplete first."""
    chk, m = run(
        ctx_for({"tools": TOOLS}), [delta(content="Hel"), tool(0, "call_1", "exec_command", '{"cm')]
    )
    assert chk.terminal == "response.failed"
    assert chk.response["error"] == {
        "code": "server_error",
        "message": "upstream stream ended early",
    }
    assert [i["status"] for i in chk.items] == ["completed", "incomplete"]
    assert chk.items[1]["arguments"] == '{"cm'
    assert m.failed and m.usage.estimated


def test_error_chunk_ends_with_response_failed_and_a_code_codex_reads() -> None:
    chk, m = run(
        ctx_for(),
        [
            delta(content="a"),
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens.",
                    "type": "invalid_request_error",
                    "code": "context_length_exceeded",
                }
            },
        ],
    )
    assert chk.terminal == "response.failed"
    assert chk.response["error"]["code"] == "context_length_exceeded"
    assert m.feed(delta(content="late")) == b"" and m.finish() == b""


@pytest.mark.parametrize(
    ("err", "code", "message"),
    [
        (
            RateLimitError("slow down", retry_after=2.5),
            "rate_limit_exceeded",
            "slow down Please try again in 2.5s.",
        ),
        (ServerError("boom"), "server_error", "boom"),
        (
            InvalidRequestError("prompt is too long: 300000 tokens > 200000 maximum"),
            "context_length_exceeded",
            "prompt is too long: 300000 tokens > 200000 maximum",
        ),
        (InvalidRequestError("bad"), "invalid_prompt", "bad"),
    ],
)
def test_fail_maps_errors_to_response_error(err: Any, code: str, message: str) -> None:
    m = ChatToResponsesStream(ctx_for())
    raw = m.start() + m.feed(delta(content="x")) + m.fail(err)
    chk = check_responses_sse(raw)
    assert chk.response["error"] == {"code": code, "message": message}
    assert m.fail(ServerError("again")) == b""


def test_budget_exhaustion_is_insufficient_quota() -> None:
    from dragoman.errors import BudgetExceededError

    m = ChatToResponsesStream(ctx_for())
    m.start()
    m.fail(BudgetExceededError("budget exceeded"))
    assert m.response is not None
    assert m.response["error"]["code"] == "insufficient_quota"


def test_no_usage_from_upstream_gives_an_estimate() -> None:
    chk, m = run(ctx_for(), [delta(content="hello world"), finish()])
    u = chk.response["usage"]
    assert u["input_tokens"] == m.ctx.input_tokens_estimate > 0
    assert u["output_tokens"] > 0 and m.usage.estimated


def test_only_a_finish_gives_an_empty_completed_response() -> None:
    chk, _ = run(ctx_for(), [finish()])
    assert chk.terminal == "response.completed" and chk.items == []


def test_keepalive_comments_are_invisible_to_readers() -> None:
    m = ChatToResponsesStream(ctx_for())
    assert m.ping() == b""  # not started
    raw = m.start() + m.ping() + m.feed(delta(content="a")) + m.ping() + m.feed(finish())
    raw += m.ping() + m.finish()
    assert m.ping() == b""  # over
    assert raw.count(b": keepalive\n\n") == 3
    chk = check_responses_sse(raw)
    validate_with_sdk(chk.events)
    assert chk.text == "a"


def test_long_arguments_in_tiny_fragments() -> None:
    """2000 fragments of a 20 KB argument: one delta per fragment, each sent once."""
    ctx = ctx_for({"tools": TOOLS})
    arg = json.dumps({"cmd": "x" * 20_000})
    frags = [arg[i : i + 10] for i in range(0, len(arg), 10)]
    chk, _ = run(
        ctx,
        [tool(0, "call_1", "exec_command", frags[0])]
        + [tool(0, args=f) for f in frags[1:]]
        + [finish("tool_calls")],
        sdk=False,
    )
    deltas = [e["delta"] for e in chk.events if e["type"].endswith("arguments.delta")]
    assert deltas == frags
    assert chk.items[0]["arguments"] == arg


def test_nothing_at_all_is_a_failure() -> None:
    chk, _ = run(ctx_for(), [])
    assert chk.terminal == "response.failed"


# ------------------------------------------------------------------------------ odd upstreams


def test_interleaved_parallel_calls_are_buffered_and_come_out_whole() -> None:
    chk, _ = run(
        ctx_for({"tools": TOOLS}),
        [
            tool(0, "call_a", "exec_command", '{"cmd": '),
            tool(1, "call_b", "exec_command", '{"cmd": '),
            tool(0, args='"ls"}'),
            delta(content="and text"),
            tool(1, args='"pwd"}'),
            finish("tool_calls"),
            usage(),
        ],
    )
    assert [(i["type"], i.get("call_id"), i.get("arguments")) for i in chk.items] == [
        ("function_call", "call_a", '{"cmd": "ls"}'),
        ("function_call", "call_b", '{"cmd": "pwd"}'),
        ("message", None, None),
    ]
    assert chk.items[2]["content"][0]["text"] == "and text"


def test_id_before_name_and_a_reused_index() -> None:
    chk, _ = run(
        ctx_for({"tools": TOOLS}),
        [
            tool(0, "call_a", None, ""),
            tool(0, name="exec_command", args='{"cmd": "a"}'),
            tool(0, "call_b", "exec_command", '{"cmd": "b"}'),  # index 0 again, new id
            finish("tool_calls"),
        ],
    )
    assert [(i["call_id"], i["arguments"]) for i in chk.items] == [
        ("call_a", '{"cmd": "a"}'),
        ("call_b", '{"cmd": "b"}'),
    ]


def test_a_call_without_an_id_gets_one() -> None:
    chk, _ = run(
        ctx_for({"tools": TOOLS}), [tool(0, None, "exec_command", "{}"), finish("tool_calls")]
    )
    assert chk.items[0]["call_id"].startswith("call_")


def test_leaked_think_tags_become_reasoning() -> None:
    chk, _ = run(
        ctx_for(),
        [
            delta(content="<thi"),
            delta(content="nk>plan</th"),
            delta(content="ink>\nanswer"),
            finish(),
        ],
    )
    assert [i["type"] for i in chk.items] == ["reasoning", "message"]
    assert chk.items[0]["content"] == [{"type": "reasoning_text", "text": "plan"}]
    assert chk.text == "answer"


def test_whole_message_in_one_chunk_with_a_list_content() -> None:
    chk, _ = run(
        ctx_for(),
        [
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "content": [
                                {"type": "text", "text": "a"},
                                {"type": "text", "text": "b"},
                            ]
                        },
                        "finish_reason": "stop",
                    }
                ]
            }
        ],
    )
    assert chk.text == "ab"


def test_second_choice_is_ignored() -> None:
    chk, _ = run(
        ctx_for(),
        [
            {
                "choices": [
                    {"index": 1, "delta": {"content": "other"}, "finish_reason": None},
                    {"index": 0, "delta": {"content": "mine"}, "finish_reason": "stop"},
                ]
            }
        ],
    )
    assert chk.text == "mine"


# ------------------------------------------------------------------------------ non-streamed


def completion(
    message: dict[str, Any], finish_reason: str | None = "stop", u: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": u or {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def test_non_streamed_response_matches_the_stream() -> None:
    ctx = ctx_for({"tools": TOOLS, "reasoning": {"summary": "auto"}})
    msg = {
        "role": "assistant",
        "content": "Doing it.",
        "reasoning_content": "why",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "exec_command", "arguments": '{"cmd": "ls"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "apply_patch", "arguments": PATCH},
            },
        ],
    }
    resp, u = chat_to_response_with_usage(completion(msg, "tool_calls"), ctx)
    chk, _ = run(
        ctx,
        [
            delta(reasoning_content="why"),
            delta(content="Doing it."),
            tool(0, "call_1", "exec_command", '{"cmd": "ls"}'),
            tool(1, "call_2", "apply_patch", PATCH),
            finish("tool_calls"),
            usage(5, 3),
        ],
    )
    assert strip_ids(resp["output"]) == strip_ids(chk.response["output"])
    assert resp["usage"] == chk.response["usage"]
    assert resp["status"] == "completed" and resp["object"] == "response"
    assert resp["output"][3]["input"] == PATCH
    assert u.input_tokens == 5 and u.output_tokens == 3
    from openai.types.responses import Response

    Response.model_validate(resp)


def test_non_streamed_truncation_and_missing_finish_reason() -> None:
    r = chat_to_response(completion({"role": "assistant", "content": "cut"}, "length"), ctx_for())
    assert r["status"] == "incomplete" and r["output"][0]["status"] == "incomplete"
    r = chat_to_response(completion({"role": "assistant", "content": "ok"}, None), ctx_for())
    assert r["status"] == "completed"


def test_non_streamed_error_body_is_a_failed_response() -> None:
    r = chat_to_response({"error": {"message": "boom", "type": "server_error"}}, ctx_for())
    assert r["status"] == "failed" and r["error"]["code"] == "server_error"


# ------------------------------------------------------------------------------ properties


@st.composite
def _answers(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "reasoning": draw(st.one_of(st.none(), st.text(min_size=1, max_size=30))),
        "text": draw(st.one_of(st.none(), st.text(min_size=1, max_size=40))),
        "calls": draw(
            st.lists(
                st.tuples(
                    st.sampled_from(
                        ["exec_command", "apply_patch", "local_shell", "git__status", "invented"]
                    ),
                    st.dictionaries(
                        st.sampled_from(["cmd", "input", "command"]),
                        st.text(max_size=10),
                        max_size=2,
                    ),
                ),
                max_size=3,
            )
        ),
    }


def _chunks(ans: dict[str, Any], size: int, interleave: bool) -> list[dict[str, Any]]:
    def pieces(s: str) -> list[str]:
        return [s[i : i + size] for i in range(0, len(s), size)] or [s]

    out: list[dict[str, Any]] = []
    if ans["reasoning"]:
        out += [delta(reasoning_content=p) for p in pieces(ans["reasoning"])]
    if ans["text"]:
        out += [delta(content=p) for p in pieces(ans["text"])]
    per_call = []
    for i, (name, args) in enumerate(ans["calls"]):
        a = json.dumps(args)
        ps = pieces(a)
        per_call.append([tool(i, f"call_{i}", name, ps[0])] + [tool(i, args=p) for p in ps[1:]])
    if interleave:
        while any(per_call):
            for lst in per_call:
                if lst:
                    out.append(lst.pop(0))
    else:
        for lst in per_call:
            out += lst
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _answers(),
    st.integers(1, 7),
    st.booleans(),
    st.sampled_from(["clean", "cut", "error", "fail", "length"]),
    st.booleans(),
    st.integers(0, 100),
    st.booleans(),
)
def test_every_upstream_stream_ends_in_exactly_one_well_formed_terminal(
    ans: dict[str, Any],
    size: int,
    interleave: bool,
    ending: str,
    with_usage: bool,
    cut_at: int,
    summary: bool,
) -> None:
    body: dict[str, Any] = {"tools": TOOLS, "include": ["reasoning.encrypted_content"]}
    if summary:
        body["reasoning"] = {"summary": "auto"}
    ctx = ctx_for(body)
    chunks = _chunks(ans, size, interleave)
    m = ChatToResponsesStream(ctx)
    raw = m.start()
    if ending in ("cut", "error", "fail"):
        chunks = chunks[: cut_at % (len(chunks) + 1)]
    for c in chunks:
        raw += m.feed(c)
    if ending == "error":
        raw += m.feed({"error": {"message": "engine died", "type": "server_error"}})
    elif ending == "fail":
        raw += m.fail(ServerError("client went away"))
    elif ending in ("clean", "length"):
        fr = "length" if ending == "length" else "tool_calls" if ans["calls"] else "stop"
        raw += m.feed(finish(fr))
        if with_usage:
            raw += m.feed(usage())
    raw += m.finish()
    assert m.finish() == b"" and m.feed(delta(content="x")) == b""
    chk = check_responses_sse(raw)
    validate_with_sdk(chk.events)
    want = {"clean": "response.completed", "length": "response.incomplete"}.get(
        ending, "response.failed"
    )
    assert chk.terminal == want
    assert (
        sum(
            t in ("response.completed", "response.incomplete", "response.failed") for t in chk.types
        )
        == 1
    )
    if ending == "clean":
        kinds = [i["type"] for i in chk.items]
        expect = (["reasoning"] if ans["reasoning"] else []) + (["message"] if ans["text"] else [])
        calls = [i for i in chk.items if i["type"] != "message" and i["type"] != "reasoning"]
        assert len(calls) == len(ans["calls"])
        assert kinds[: len(expect)] == expect
        if ans["text"]:
            assert chk.text == ans["text"]
        for i, (name, args) in zip(calls, ans["calls"], strict=True):
            if i["type"] == "function_call" and name != "git__status":
                assert json.loads(i["arguments"]) == (args or {})
        if ans["reasoning"]:
            r = open_reasoning(SEALER, chk.of_type("reasoning")[0]["encrypted_content"])
            assert r is not None and r.text == ans["reasoning"]


def test_usage_both_ways() -> None:
    from dragoman.translate.responses import usage_from_responses, usage_to_responses
    from dragoman.usage import Usage

    u = Usage(
        input_tokens=70, output_tokens=9, cache_creation_input_tokens=10, cache_read_input_tokens=20
    )
    r = usage_to_responses(u, reasoning_tokens=4)
    assert r == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 10},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 109,
    }
    assert usage_from_responses(r) == u
    assert usage_from_responses({"input_tokens": 5, "output_tokens": 1}) == Usage(5, 1)
    assert usage_from_responses(None).estimated


_CHUNK = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-2, 3),
        st.text(max_size=4),
        st.sampled_from(
            ["stop", "length", "tool_calls", "f", "p", "call_1", "thinking", "redacted_thinking"]
        ),
    ),
    lambda ch: st.one_of(
        st.lists(ch, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "delta",
                    "index",
                    "content",
                    "reasoning",
                    "reasoning_content",
                    "tool_calls",
                    "function",
                    "arguments",
                    "name",
                    "id",
                    "finish_reason",
                    "usage",
                    "error",
                    "refusal",
                    "message",
                    THINKING_CARRIER,
                    "prompt_tokens",
                    "type",
                    "thinking",
                    "signature",
                ]
            ),
            ch,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_CHUNK, max_size=6))
def test_garbage_from_upstream_still_ends_in_one_terminal(chunks: list[Any]) -> None:
    m = ChatToResponsesStream(ctx_for({"tools": TOOLS}))
    raw = m.start()
    for c in chunks:
        if isinstance(c, dict):
            raw += m.feed(c)
    raw += m.finish()
    check_responses_sse(raw)
    for c in chunks:
        if isinstance(c, dict):
            assert chat_to_response(c, ctx_for())["status"] in ("completed", "incomplete", "failed")
