"""Responses request -> Chat Completions request: golden vectors and properties."""

from __future__ import annotations

import itertools
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.translate.responses_helpers import SEALER

from dragoman.errors import InvalidRequestError
from dragoman.protocols.openai import validate_chat_request
from dragoman.sealing import Sealer
from dragoman.translate.responses import (
    THINKING_CARRIER,
    Reasoning,
    responses_to_chat,
    seal_reasoning,
)
from dragoman.translate.responses.tools import CUSTOM_NOTE


def chat(body: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], Any]:
    b = {"model": "qwen3-coder", **body}
    return responses_to_chat(b, sealer=kw.pop("sealer", SEALER), **kw)


def msgs(body: dict[str, Any]) -> list[dict[str, Any]]:
    return chat(body)[0]["messages"]


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def dev(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": text}],
    }


def said(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def fcall(call_id: str, name: str, args: str = "{}", **kw: Any) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": args, **kw}


def fout(call_id: str, output: Any = "ok", type: str = "function_call_output") -> dict[str, Any]:
    return {"type": type, "call_id": call_id, "output": output}


def test_translator_imports_without_io_stacks() -> None:
    """The Responses translators are pure like the rest of translate/ (docs/architecture.md)."""
    blocked = ("aiohttp", "sqlalchemy", "cryptography", "asyncpg", "aiosqlite", "alembic")
    code = (
        "import sys\n"
        f"for m in {blocked!r}:\n"
        "    sys.modules[m] = None\n"
        "import dragoman.translate.responses, dragoman.translate.responses.codex\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------ messages


def test_string_input_is_one_user_message() -> None:
    c, ctx = chat({"input": "Hello there"})
    assert c == {"model": "qwen3-coder", "messages": [{"role": "user", "content": "Hello there"}]}
    assert ctx.requested_model == "qwen3-coder"
    assert ctx.warnings == []


def test_instructions_and_leading_developer_messages_make_one_system_message() -> None:
    m = msgs(
        {
            "instructions": "Be terse.",
            "input": [dev("Policy A"), {"role": "system", "content": "Policy B"}, user("hi")],
        }
    )
    assert m == [
        {"role": "system", "content": "Be terse.\n\nPolicy A\n\nPolicy B"},
        {"role": "user", "content": "hi"},
    ]


def test_a_later_developer_message_becomes_a_user_turn() -> None:
    """Chat templates such as Qwen's reject a system message after the first turn ("System
    message must be at the beginning."): later policy text travels as the user's."""
    m = msgs({"input": [user("hi"), said("hello"), dev("Sandbox changed"), user("go on")]})
    assert m == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Sandbox changed"},
                {"type": "text", "text": "go on"},
            ],
        },
    ]


def test_consecutive_user_items_merge_into_one_turn() -> None:
    m = msgs({"input": [user("<environment_context>cwd</environment_context>"), user("list")]})
    assert m == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<environment_context>cwd</environment_context>"},
                {"type": "text", "text": "list"},
            ],
        }
    ]


def test_content_parts() -> None:
    m = msgs(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "see"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,AAAA",
                            "detail": "low",
                        },
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,JVBE",
                            "filename": "a.pdf",
                        },
                        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    ],
                }
            ]
        }
    )
    assert m == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                },
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("part", "message"),
    [
        ({"type": "input_image", "file_id": "file-1"}, "input_image with a file_id"),
        ({"type": "input_file", "file_id": "file-1"}, "input_file is supported only"),
        ({"type": "input_video", "url": "x"}, "Invalid value: 'input_video'"),
    ],
)
def test_content_the_gateway_cannot_serve_is_a_400(part: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        chat({"input": [{"role": "user", "content": [part]}]})
    assert message in e.value.message
    assert e.value.status == 400
    assert e.value.param is not None and e.value.param.startswith("input[0].content[0]")


def test_one_model_turn_is_one_assistant_message() -> None:
    """Codex's history of a turn: reasoning, a commentary message, two parallel calls, then
    their outputs. Chat needs them as one assistant message with its tool results after it."""
    blob = seal_reasoning(SEALER, Reasoning("I should list files."))
    m = msgs(
        {
            "input": [
                user("list"),
                {
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "s"}],
                    "encrypted_content": blob,
                },
                said("Listing."),
                fcall("call_a", "exec_command", '{"cmd": "ls"}'),
                fcall("call_b", "exec_command", '{"cmd": "pwd"}'),
                fout("call_a", "a.txt"),
                fout("call_b", "/tmp"),
                said("Two files."),
            ]
        }
    )
    assert m == [
        {"role": "user", "content": "list"},
        {
            "role": "assistant",
            "content": "Listing.",
            "reasoning_content": "I should list files.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "exec_command", "arguments": '{"cmd": "ls"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "exec_command", "arguments": '{"cmd": "pwd"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "a.txt"},
        {"role": "tool", "tool_call_id": "call_b", "content": "/tmp"},
        {"role": "assistant", "content": "Two files."},
    ]


def test_tool_output_with_an_image_is_followed_by_a_user_image() -> None:
    """Codex's view_image answers with an input_image: Chat tool messages carry text only."""
    m = msgs(
        {
            "input": [
                user("look"),
                fcall("call_1", "view_image", '{"path": "a.png"}'),
                fout(
                    "call_1", [{"type": "input_image", "image_url": "data:image/png;base64,QQ=="}]
                ),
            ]
        }
    )
    assert m[2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "(see the attached output)"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ=="}}],
        },
    ]


def test_custom_and_local_shell_calls_in_history() -> None:
    c, _ = chat(
        {
            "tools": [{"type": "custom", "name": "apply_patch"}, {"type": "local_shell"}],
            "input": [
                user("edit"),
                {
                    "type": "custom_tool_call",
                    "call_id": "call_p",
                    "name": "apply_patch",
                    "input": "*** Begin Patch\n*** End Patch\n",
                },
                fout("call_p", "Done!", "custom_tool_call_output"),
                {
                    "type": "local_shell_call",
                    "call_id": "call_s",
                    "status": "completed",
                    "action": {
                        "type": "exec",
                        "command": ["ls", "-a"],
                        "timeout_ms": 1000,
                        "working_directory": "/w",
                        "env": {},
                    },
                },
                {"type": "local_shell_call_output", "call_id": "call_s", "output": "x"},
            ],
        }
    )
    m = c["messages"]
    assert m[1]["tool_calls"] == [
        {
            "id": "call_p",
            "type": "function",
            "function": {
                "name": "apply_patch",
                "arguments": '{"input": "*** Begin Patch\\n*** End Patch\\n"}',
            },
        }
    ]
    assert m[2] == {"role": "tool", "tool_call_id": "call_p", "content": "Done!"}
    assert m[3]["tool_calls"] == [
        {
            "id": "call_s",
            "type": "function",
            "function": {
                "name": "local_shell",
                "arguments": '{"command": ["ls", "-a"], "workdir": "/w", "timeout_ms": 1000}',
            },
        }
    ]
    assert m[4] == {"role": "tool", "tool_call_id": "call_s", "content": "x"}


def test_namespaced_calls_use_the_flattened_name() -> None:
    c, _ = chat(
        {
            "tools": [
                {
                    "type": "namespace",
                    "name": "multi_agent_v1",
                    "description": "d",
                    "tools": [{"type": "function", "name": "spawn_agent", "parameters": {}}],
                }
            ],
            "input": [
                user("x"),
                fcall("call_1", "spawn_agent", namespace="multi_agent_v1"),
                fout("call_1"),
            ],
        }
    )
    assert c["messages"][1]["tool_calls"][0]["function"]["name"] == "multi_agent_v1__spawn_agent"
    assert c["tools"][0]["function"]["name"] == "multi_agent_v1__spawn_agent"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [user("x"), fout("call_9")],
            "No tool call found for function call output with call_id call_9.",
        ),
        ([user("x"), fcall("call_1", "f")], "No tool output found for function call call_1."),
        (
            [user("x"), {"type": "custom_tool_call", "call_id": "c", "name": "p", "input": ""}],
            "No tool output found for custom tool call c.",
        ),
        ([user("x"), fcall("", "f")], "Missing required parameter: 'input[1].call_id'."),
    ],
)
def test_unpaired_tool_calls_are_400_in_openai_words(items: list[Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        chat({"input": items})
    assert e.value.message == message
    assert e.value.param == ("input[1].call_id" if "Missing" in message else "input")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"store": True}, "store"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ],
)
def test_requests_that_need_stored_state_are_a_clear_400(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        chat({"input": "hi", **extra})
    assert e.value.status == 400 and e.value.param == param
    assert "keep" in e.value.message or "not supported" in e.value.message


def test_store_false_or_absent_is_served() -> None:
    for extra in ({}, {"store": False}, {"previous_response_id": None}):
        assert chat({"input": "hi", **extra})[0]["messages"] == [{"role": "user", "content": "hi"}]


def test_nothing_to_send_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as e:
        chat({"input": [dev(""), {"type": "web_search_call", "status": "completed"}]})
    assert e.value.message == "input holds nothing to send: every item is empty or was dropped"


def test_missing_model_or_input() -> None:
    with pytest.raises(InvalidRequestError, match=r"Missing required parameter: 'model'\."):
        responses_to_chat({"input": "x"})
    with pytest.raises(InvalidRequestError, match=r"Missing required parameter: 'input'\."):
        chat({"input": []})


# ------------------------------------------------------------------------------ tools


def test_tools_map_flatten_shim_or_drop_with_a_warning() -> None:
    c, ctx = chat(
        {
            "input": "x",
            "tools": [
                {
                    "type": "function",
                    "name": "exec_command",
                    "description": "Run",
                    "strict": False,
                    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
                },
                {
                    "type": "custom",
                    "name": "apply_patch",
                    "description": "Edit files.",
                    "format": {
                        "type": "grammar",
                        "syntax": "lark",
                        "definition": "start: begin_patch",
                    },
                },
                {
                    "type": "namespace",
                    "name": "mcp_git",
                    "description": "git",
                    "tools": [
                        {"type": "function", "name": "status"},
                        {"type": "custom", "name": "raw"},
                    ],
                },
                {"type": "local_shell"},
                {"type": "web_search", "external_web_access": False},
                {"type": "image_generation"},
            ],
        }
    )
    tools = c["tools"]
    assert [t["function"]["name"] for t in tools] == [
        "exec_command",
        "apply_patch",
        "mcp_git__status",
        "mcp_git__raw",
        "local_shell",
    ]
    assert tools[0] == {
        "type": "function",
        "function": {
            "name": "exec_command",
            "description": "Run",
            "strict": False,
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
        },
    }
    patch = tools[1]["function"]
    assert patch["description"] == (
        "Edit files.\n\n" + CUSTOM_NOTE + "\n\nThe input must match this lark grammar:\n"
        "start: begin_patch"
    )
    assert patch["parameters"]["required"] == ["input"]
    assert patch["parameters"]["properties"]["input"]["type"] == "string"
    assert ctx.warnings == [
        "tool type 'web_search' is not supported on this backend; dropped",
        "tool type 'image_generation' is not supported on this backend; dropped",
    ]
    assert ctx.tools.ref("mcp_git__raw").kind == "custom"
    assert ctx.tools.ref("mcp_git__raw").namespace == "mcp_git"
    assert "tool_choice" not in c  # none was given


def test_additional_tools_items_are_hoisted() -> None:
    c, _ = chat(
        {
            "tools": [],
            "input": [
                {
                    "type": "additional_tools",
                    "role": "developer",
                    "tools": [
                        {
                            "type": "namespace",
                            "name": "functions",
                            "tools": [{"type": "function", "name": "exec_command"}],
                        }
                    ],
                },
                user("x"),
            ],
        }
    )
    assert [t["function"]["name"] for t in c["tools"]] == ["functions__exec_command"]
    assert c["messages"] == [{"role": "user", "content": "x"}]


TOOLS = [{"type": "function", "name": "a"}, {"type": "custom", "name": "p"}, {"type": "web_search"}]


@pytest.mark.parametrize(
    ("choice", "want", "names"),
    [
        ("auto", "auto", ["a", "p"]),
        ("none", "none", ["a", "p"]),
        ("required", "required", ["a", "p"]),
        (
            {"type": "function", "name": "a"},
            {"type": "function", "function": {"name": "a"}},
            ["a", "p"],
        ),
        (
            {"type": "custom", "name": "p"},
            {"type": "function", "function": {"name": "p"}},
            ["a", "p"],
        ),
        (
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "custom", "name": "p"}],
            },
            "required",
            ["p"],
        ),
        (
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "a"}]},
            "auto",
            ["a"],
        ),
    ],
)
def test_tool_choice(choice: Any, want: Any, names: list[str]) -> None:
    c, _ = chat({"input": "x", "tools": TOOLS, "tool_choice": choice, "parallel_tool_calls": False})
    assert c["tool_choice"] == want
    assert [t["function"]["name"] for t in c["tools"]] == names
    assert c["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "web_search_preview"},
        {"type": "function", "name": "nope"},
        {"type": "mcp", "server_label": "x"},
    ],
)
def test_forcing_a_tool_this_backend_cannot_run_is_a_400(choice: Any) -> None:
    with pytest.raises(InvalidRequestError) as e:
        chat({"input": "x", "tools": TOOLS, "tool_choice": choice})
    assert e.value.param == "tool_choice"


def test_no_tool_fields_without_tools() -> None:
    c, _ = chat(
        {
            "input": "x",
            "tools": [{"type": "web_search"}],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
        }
    )
    assert "tools" not in c and "tool_choice" not in c and "parallel_tool_calls" not in c


# ------------------------------------------------------------------------------ parameters


def test_parameters() -> None:
    c, ctx = chat(
        {
            "input": "x",
            "stream": True,
            "max_output_tokens": 300,
            "temperature": 0.2,
            "top_p": 0.9,
            "reasoning": {"effort": "high", "summary": "auto"},
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "out",
                    "strict": True,
                    "schema": {"type": "object"},
                },
                "verbosity": "low",
            },
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "k",
            "user": "u",
            "metadata": {"a": "b"},
            "service_tier": "auto",
            "client_metadata": {"x": "y"},
            "truncation": "auto",
            "top_logprobs": 2,
        }
    )
    assert c == {
        "model": "qwen3-coder",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "reasoning_effort": "high",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
        },
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert ctx.include_encrypted and ctx.summary_mode
    assert ctx.echo["prompt_cache_key"] == "k" and ctx.echo["metadata"] == {"a": "b"}


def test_json_object_and_text_formats() -> None:
    assert chat({"input": "x", "text": {"format": {"type": "json_object"}}})[0][
        "response_format"
    ] == {"type": "json_object"}
    assert "response_format" not in chat({"input": "x", "text": {"format": {"type": "text"}}})[0]


@pytest.mark.parametrize("bad", [0, -1, "10", True, 1.5])
def test_bad_max_output_tokens(bad: Any) -> None:
    with pytest.raises(InvalidRequestError) as e:
        chat({"input": "x", "max_output_tokens": bad})
    assert e.value.param == "max_output_tokens"


# ------------------------------------------------------------------------------ reasoning

BLOCKS = [
    {"type": "thinking", "thinking": "Let me see.\n", "signature": "EqQBCkYIBxgCKkBsig=="},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
]


def test_our_sealed_reasoning_comes_back_as_reasoning_content_and_the_carrier() -> None:
    blob = seal_reasoning(SEALER, Reasoning("Let me see.\n", tuple(BLOCKS)))
    m = msgs(
        {
            "input": [
                user("q"),
                {"type": "reasoning", "summary": [], "encrypted_content": blob},
                said("A."),
            ]
        }
    )
    assert m[1] == {
        "role": "assistant",
        "content": "A.",
        "reasoning_content": "Let me see.\n",
        THINKING_CARRIER: BLOCKS,
    }


def test_reasoning_not_sealed_by_us_is_dropped_never_forwarded() -> None:
    """OpenAI's own blobs (Fernet tokens, ``gAAAAA...``), another gateway's, one sealed under
    another master key, or a tampered one: none reaches the backend."""
    ours = seal_reasoning(SEALER, Reasoning("secret thoughts"))
    other_key = seal_reasoning(Sealer.from_master("another master"), Reasoning("x"))
    tampered = ours[:-4] + ("AAAA" if not ours.endswith("AAAA") else "BBBB")
    for blob in ("gAAAAABoZ2VuZXJhdGVkLWJ5LW9wZW5haQ==", other_key, tampered):
        c, ctx = chat(
            {
                "input": [
                    user("q"),
                    {
                        "type": "reasoning",
                        "summary": [{"type": "summary_text", "text": "summary"}],
                        "content": [{"type": "reasoning_text", "text": "plain"}],
                        "encrypted_content": blob,
                    },
                    said("A."),
                ]
            }
        )
        assert c["messages"][1] == {"role": "assistant", "content": "A."}
        assert ctx.warnings == ["a reasoning item sealed elsewhere was dropped (not forwarded)"]


def test_reasoning_without_a_blob_sends_its_raw_text_only() -> None:
    """A client that did not ask for encrypted_content sends back our reasoning_text content:
    it goes back as text (a summary is not the reasoning, and is not sent)."""
    m = msgs(
        {
            "input": [
                user("q"),
                {
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "S"}],
                    "content": [{"type": "reasoning_text", "text": "raw"}],
                },
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "S"}]},
                said("A."),
            ]
        }
    )
    assert m[1] == {"role": "assistant", "content": "A.", "reasoning_content": "raw"}


def test_without_a_sealer_no_blob_opens() -> None:
    blob = seal_reasoning(SEALER, Reasoning("t"))
    c, _ = responses_to_chat(
        {
            "model": "m",
            "input": [
                user("q"),
                {"type": "reasoning", "summary": [], "encrypted_content": blob},
                said("A"),
            ],
        }
    )
    assert c["messages"][1] == {"role": "assistant", "content": "A"}


def test_hosted_items_are_dropped_with_a_warning() -> None:
    c, ctx = chat(
        {
            "input": [
                user("q"),
                {
                    "type": "web_search_call",
                    "status": "completed",
                    "action": {"type": "search", "query": "x"},
                },
                {"type": "compaction", "encrypted_content": "gAAAA"},
                {"type": "brand_new_item"},
                said("A"),
            ]
        }
    )
    assert c["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "A"},
    ]
    assert ctx.warnings == [
        "input item type 'web_search_call' has no meaning on this backend; dropped",
        "input item type 'compaction' has no meaning on this backend; dropped",
        "unknown input item type 'brand_new_item'; dropped",
    ]


# ------------------------------------------------------------------------------ properties

_text = st.text(min_size=0, max_size=12)
_call_ids = st.sampled_from(["call_a", "call_b", "call_c", "call_d"])


@st.composite
def _histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Well-formed Responses histories: turns of user text, then model output (text,
    reasoning, calls), then the outputs of those calls."""
    items: list[dict[str, Any]] = []
    n = 0
    for turn in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["user", "dev", "user"]))
        if turn == 0:  # something to answer
            items.append(user(draw(st.text(min_size=1, max_size=12))))
        items.append(user(draw(_text)) if kind == "user" else dev(draw(_text)))
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                items.append(
                    {
                        "type": "reasoning",
                        "summary": [],
                        "content": [{"type": "reasoning_text", "text": draw(_text)}],
                    }
                )
            if draw(st.booleans()):
                items.append(said(draw(_text)))
            ids = [f"call_{n + i}" for i in range(draw(st.integers(0, 3)))]
            n += len(ids)
            for cid in ids:
                if draw(st.booleans()):
                    items.append(fcall(cid, draw(st.sampled_from(["a", "b"])), '{"x": 1}'))
                else:
                    items.append(
                        {
                            "type": "custom_tool_call",
                            "call_id": cid,
                            "name": "p",
                            "input": draw(_text),
                        }
                    )
            for cid in ids:
                t = next(i["type"] for i in items if i.get("call_id") == cid)
                items.append(fout(cid, draw(_text), t + "_output"))
    return items


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_histories(), st.booleans())
def test_every_history_becomes_a_valid_chat_request(
    items: list[dict[str, Any]], instructions: bool
) -> None:
    body: dict[str, Any] = {
        "input": items,
        "tools": [
            {"type": "function", "name": "a"},
            {"type": "function", "name": "b"},
            {"type": "custom", "name": "p"},
        ],
    }
    if instructions:
        body["instructions"] = "sys"
    c, _ = chat(body)
    validate_chat_request(c)  # what the OpenAI front accepts from any Chat client
    m = c["messages"]
    assert all(x["role"] != "system" for x in m[1:]), "system only first"
    # tool results follow the assistant message that made the calls, every call answered once
    pending: list[str] = []
    for x in m:
        if x["role"] == "tool":
            assert x["tool_call_id"] in pending
            pending.remove(x["tool_call_id"])
            continue
        assert not pending, f"unanswered calls {pending} before {x}"
        if x["role"] == "assistant":
            pending = [tc["id"] for tc in x.get("tool_calls", [])]
            assert x.get("content") is not None or pending
    assert not pending
    # no two user messages in a row (strict chat templates reject them)
    roles = [x["role"] for x in m]
    assert all(not (a == b == "user") for a, b in itertools.pairwise(roles))


# ------------------------------------------------------------------------------ fuzz

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text(max_size=5),
    st.sampled_from(
        [
            "message",
            "function_call",
            "function_call_output",
            "custom_tool_call",
            "custom_tool_call_output",
            "reasoning",
            "local_shell_call",
            "user",
            "assistant",
            "developer",
            "input_text",
            "input_image",
            "output_text",
            "function",
            "custom",
            "namespace",
            "local_shell",
            "call_1",
            "auto",
            "required",
            "allowed_tools",
            "json_schema",
        ]
    ),
)
_KEYS = st.sampled_from(
    [
        "type",
        "role",
        "content",
        "text",
        "name",
        "call_id",
        "arguments",
        "input",
        "output",
        "tools",
        "action",
        "command",
        "image_url",
        "encrypted_content",
        "summary",
        "namespace",
        "format",
        "mode",
        "parameters",
        "file_data",
        "detail",
        "definition",
    ]
)
_ANY = st.recursive(
    _LEAF,
    lambda ch: st.one_of(st.lists(ch, max_size=4), st.dictionaries(_KEYS, ch, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.fixed_dictionaries(
        {"model": st.just("m")},
        optional={
            k: _ANY
            for k in (
                "input",
                "tools",
                "tool_choice",
                "instructions",
                "text",
                "reasoning",
                "max_output_tokens",
                "include",
                "stream",
                "parallel_tool_calls",
            )
        },
    )
)
def test_any_body_is_served_or_a_400_never_an_exception(body: dict[str, Any]) -> None:
    try:
        c, _ = chat(body)
    except InvalidRequestError as e:
        assert e.status == 400 and e.message
    else:
        validate_chat_request(c)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8000/x.png",
        "file:///etc/passwd",
    ],
)
def test_private_input_image_urls_are_refused(url: str) -> None:
    """The upstream would fetch them from where it runs (audit #18; docs/limits.md)."""
    body = {
        "model": "m",
        "store": False,
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_image", "image_url": url}],
            }
        ],
    }
    with pytest.raises(InvalidRequestError) as err:
        responses_to_chat(body)
    assert err.value.status == 400 and "public http(s)" in err.value.message
    ok = {
        **body,
        "input": [
            {
                **body["input"][0],
                "content": [{"type": "input_image", "image_url": "https://example.com/x.png"}],
            }
        ],
    }
    responses_to_chat(ok)
