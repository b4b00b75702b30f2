"""The Responses translators on what the real Codex CLI 0.171.0 sends (recorded fixtures,
tests/fixtures/README.md), and a whole Codex turn loop at the translator level: Codex's request
-> Chat request -> an upstream's chunks -> Responses events -> the items Codex sends back ->
the next Chat request, with the sealed reasoning coming back as ``reasoning_content``."""

from __future__ import annotations

import json
from typing import Any

from tests.support.fixtures import load_json
from tests.translate.responses_helpers import SEALER, delta, finish, run, tool, usage

from dragoman.protocols.openai import validate_chat_request
from dragoman.translate.responses import responses_to_chat
from dragoman.translate.responses.tools import CUSTOM_NOTE

PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello from a patch\n*** End Patch\n"


def body(n: int) -> dict[str, Any]:
    return dict(load_json(f"codex_responses_turn{n}.json")["body"])


def test_codex_turn1() -> None:
    b = body(1)
    chat, ctx = responses_to_chat(b, sealer=SEALER)
    validate_chat_request(chat)
    m = chat["messages"]
    assert [x["role"] for x in m] == ["system", "user"]
    dev = [
        "\n\n".join(p["text"] for p in i["content"])
        for i in b["input"]
        if i.get("role") == "developer"
    ]
    assert m[0]["content"] == "\n\n".join(dev)
    assert [p["text"] for p in m[1]["content"]] == [
        p["text"] for i in b["input"] if i.get("role") == "user" for p in i["content"]
    ]
    names = [t["function"]["name"] for t in chat["tools"]]
    assert names[:4] == ["exec_command", "write_stdin", "request_user_input", "apply_patch"]
    assert "multi_agent_v1__spawn_agent" in names
    assert ctx.tools.ref("multi_agent_v1__spawn_agent").namespace == "multi_agent_v1"
    patch_tool = next(
        t["function"] for t in chat["tools"] if t["function"]["name"] == "apply_patch"
    )
    assert CUSTOM_NOTE in patch_tool["description"]
    assert "*** Begin Patch" in patch_tool["description"]  # the lark grammar rides along
    assert ctx.warnings == ["tool type 'web_search' is not supported on this backend; dropped"]
    assert chat["reasoning_effort"] == "medium" and chat["tool_choice"] == "auto"
    assert chat["parallel_tool_calls"] is True and chat["stream"] is True
    assert ctx.summary_mode and ctx.include_encrypted
    for k in ("client_metadata", "prompt_cache_key", "include", "store", "reasoning"):
        assert k not in chat


def test_codex_turn2_and_3_history() -> None:
    chat2, ctx2 = responses_to_chat(body(2), sealer=SEALER)
    validate_chat_request(chat2)
    # the reasoning item was sealed by the fake (OpenAI's blob): dropped, never forwarded
    assert ctx2.warnings[-1] == "a reasoning item sealed elsewhere was dropped (not forwarded)"
    a, t = chat2["messages"][2:]
    assert a == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_sh",
                "type": "function",
                "function": {
                    "name": "exec_command",
                    "arguments": '{"cmd":"printf hi > out.txt && echo wrote"}',
                },
            }
        ],
    }
    assert t["role"] == "tool" and t["tool_call_id"] == "call_sh" and "wrote" in t["content"]
    chat3, _ = responses_to_chat(body(3), sealer=SEALER)
    validate_chat_request(chat3)
    a, t = chat3["messages"][4:]
    assert a["tool_calls"][0]["function"] == {
        "name": "apply_patch",
        "arguments": json.dumps({"input": PATCH}),
    }
    assert t["tool_call_id"] == "call_patch" and "A hello.txt" in t["content"]


def test_a_codex_loop_through_the_translators() -> None:
    """Turn 1 through a DeepSeek-like upstream (reasoning_content), Codex's next request built
    from the items the stream gave it: the sealed reasoning comes back as reasoning_content on
    the assistant message of that turn, with its call and the call's output."""
    b1 = body(1)
    _, ctx = responses_to_chat(b1, sealer=SEALER)
    chk, _ = run(
        ctx,
        [
            delta(role="assistant", reasoning_content="Need a file."),
            delta(content="Writing it."),
            tool(0, "call_x", "exec_command", '{"cmd": "printf hi > out.txt"}'),
            finish("tool_calls"),
            usage(900, 30, cached=512),
        ],
    )
    rs, msg, fc = chk.items
    assert rs["summary"] == [{"type": "summary_text", "text": "Need a file."}]  # summary mode
    assert chk.response["usage"]["input_tokens_details"]["cached_tokens"] == 512
    # what Codex sends back: the items as given, with its ids, and the call's output
    b2 = dict(b1)
    b2["input"] = [
        *b1["input"],
        {**rs, "content": None},
        msg,
        fc,
        {"type": "function_call_output", "call_id": "call_x", "output": "ok"},
    ]
    chat2, _ = responses_to_chat(b2, sealer=SEALER)
    validate_chat_request(chat2)
    assert chat2["messages"][2:] == [
        {
            "role": "assistant",
            "content": "Writing it.",
            "reasoning_content": "Need a file.",
            "tool_calls": [
                {
                    "id": "call_x",
                    "type": "function",
                    "function": {
                        "name": "exec_command",
                        "arguments": '{"cmd": "printf hi > out.txt"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_x", "content": "ok"},
    ]


def test_the_chat_requests_go_through_the_anthropic_bridge() -> None:
    """What the Responses front builds is a Chat request the O->A translator already takes."""
    from dragoman.translate import openai_to_anthropic_request
    from dragoman.translate.context import Target

    for n in (1, 2, 3):
        chat, _ = responses_to_chat(body(n), sealer=SEALER)
        a, _ = openai_to_anthropic_request(chat, Target("claude-sonnet-4-5", "qwen3-coder"))
        assert [m["role"] for m in a["messages"]] == ["user", "assistant"] * (n - 1) + ["user"]
        assert a["system"][0]["text"].startswith("You are a coding agent")
        names = [t["name"] for t in a["tools"]]
        assert "apply_patch" in names and "exec_command" in names
        if n == 3:
            tool_use = a["messages"][-2]["content"][-1]
            assert tool_use["type"] == "tool_use" and tool_use["input"] == {"input": PATCH}
