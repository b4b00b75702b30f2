"""Tool-call ids in the upstream's format and back (translate/tool_ids.py, docs/translation.md)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from tx_helpers import StrictAnthropicAccumulator, parse_anthropic_sse, rctx, vllm_target

from dragoman.translate import anthropic_to_openai_request, openai_to_anthropic_response
from dragoman.translate.stream_o2a import OpenAIToAnthropicStream
from dragoman.translate.tool_ids import (
    ANY,
    MISTRAL9,
    ToolIds,
    map_openai_request,
    map_openai_response,
    map_openai_sse,
    mistral9,
    tool_id_format_for,
)

M9 = re.compile(r"^[a-zA-Z0-9]{9}$")
# independent vectors: the 9-character ids were computed by hand from sha256(id)[:8] (big-endian)
# modulo 62**9, written little-end first in base62 "0-9A-Za-z" (see test_hash_vectors_by_hand)
TOOLU = "toolu_01A09q90qw90lq917835lq9"
CALL = "call_abc123def456ghi789"


def _by_hand(text: str) -> str:
    import hashlib

    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    n = int(hashlib.sha256(text.encode()).hexdigest()[:16], 16) % 62**9
    digits = []
    for _ in range(9):
        digits.append(alphabet[n % 62])
        n //= 62
    return "".join(digits)


@pytest.mark.parametrize(
    ("flavor", "model", "fmt"),
    [
        ("mistral", "mistral-large-latest", MISTRAL9),
        ("mistral", "anything", MISTRAL9),
        ("vllm", "mistralai/Devstral-Small-2505", MISTRAL9),
        ("vllm", "mistralai/Mistral-Small-3.2-24B-Instruct-2506", MISTRAL9),
        ("vllm", "Magistral-Small-2509", MISTRAL9),
        ("vllm", "codestral-22b", MISTRAL9),
        ("vllm", "mistralai/Mixtral-8x7B-Instruct-v0.1", MISTRAL9),
        ("vllm", "qwen3-coder", ANY),
        ("vllm", "Qwen/Qwen3-Coder-30B-A3B-Instruct", ANY),
        ("openai", "gpt-4.1", ANY),
        ("ollama", "mistral:7b", ANY),  # Ollama's templates take any id
        ("deepseek", "deepseek-chat", ANY),
    ],
)
def test_format_is_decided_by_flavor_and_model(flavor: str, model: str, fmt: str) -> None:
    assert tool_id_format_for(flavor, model) == fmt


def test_hash_vectors_by_hand() -> None:
    assert mistral9(TOOLU) == _by_hand(TOOLU)
    assert mistral9(CALL) == _by_hand(CALL)
    assert M9.match(mistral9(TOOLU)) and M9.match(mistral9(CALL))
    assert mistral9(TOOLU) != mistral9(CALL)


def test_ids_already_in_format_or_dressed_by_us_are_kept() -> None:
    assert mistral9("D681PevKs") == "D681PevKs"
    assert mistral9("toolu_D681PevKs") == "D681PevKs"
    assert mistral9("call_D681PevKs") == "D681PevKs"
    # a prefix around something that is not 9 alphanumerics is hashed like any other id
    assert mistral9("call_D681PevK") == _by_hand("call_D681PevK")


def test_up_is_deterministic_and_down_restores_the_history_spelling() -> None:
    a = ToolIds(MISTRAL9, "toolu_")
    b = ToolIds(MISTRAL9, "toolu_")
    for cid in (TOOLU, CALL, "chatcmpl-tool-9f2c", "x"):
        assert a.up(cid) == b.up(cid) == mistral9(cid)
        assert a.up(cid) == a.up(cid)
        assert a.down(a.up(cid)) == cid
    # ids the upstream minted get the client's prefix, and decode back to themselves
    assert a.down("Zq0000001") == "toolu_Zq0000001"
    assert b.up("toolu_Zq0000001") == "Zq0000001"
    assert ToolIds(MISTRAL9, "call_").down("Zq0000001") == "call_Zq0000001"


def test_collisions_within_a_request_are_resolved_deterministically() -> None:
    ids = ToolIds(MISTRAL9, "call_")
    assert ids.up("ABCDEFGHI") == "ABCDEFGHI"
    second = ids.up("call_ABCDEFGHI")  # would also be ABCDEFGHI
    assert second != "ABCDEFGHI" and M9.match(second)
    assert ids.down("ABCDEFGHI") == "ABCDEFGHI" and ids.down(second) == "call_ABCDEFGHI"
    again = ToolIds(MISTRAL9, "call_")
    again.up("ABCDEFGHI")
    assert again.up("call_ABCDEFGHI") == second


def test_any_format_changes_nothing() -> None:
    ids = ToolIds(ANY, "toolu_")
    assert not ids.active
    assert ids.up(TOOLU) == TOOLU and ids.down("chatcmpl-tool-1") == "chatcmpl-tool-1"
    body = {"messages": [{"role": "tool", "tool_call_id": CALL, "content": "x"}]}
    assert map_openai_request(body, ids) is body


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError):
        ToolIds("mistral10", "call_")


# ------------------------------------------------------------------ A -> O (Anthropic client)


def _history() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": TOOLU, "name": "get_weather", "input": {"c": "P"}},
                {"type": "tool_use", "id": "toolu_Zq0000001", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": TOOLU, "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_Zq0000001", "content": "20C"},
            ],
        },
    ]


def test_a2o_history_ids_become_mistral9_and_pairs_still_match() -> None:
    body = {"model": "m", "max_tokens": 100, "messages": _history()}
    out, rc = anthropic_to_openai_request(
        body, vllm_target(flavor="mistral", tool_id_format=MISTRAL9)
    )
    msgs = out["messages"]
    calls = msgs[1]["tool_calls"]
    assert [c["id"] for c in calls] == [_by_hand(TOOLU), "Zq0000001"]
    assert [m["tool_call_id"] for m in msgs[2:4]] == [_by_hand(TOOLU), "Zq0000001"]
    assert "stream_options" not in out
    # same request, same bytes (prefix caches see the same history every turn)
    again, _ = anthropic_to_openai_request(
        body, vllm_target(flavor="mistral", tool_id_format=MISTRAL9)
    )
    assert orjson.dumps(again) == orjson.dumps(out)
    assert rc.tool_ids is not None and rc.tool_ids.down(_by_hand(TOOLU)) == TOOLU


def test_a2o_any_format_leaves_ids_alone() -> None:
    body = {"model": "m", "max_tokens": 100, "messages": _history()}
    out, rc = anthropic_to_openai_request(body, vllm_target())
    assert out["messages"][1]["tool_calls"][0]["id"] == TOOLU
    assert rc.tool_ids is None


def test_a2o_user_text_after_tool_results_joins_the_last_result_for_mistral() -> None:
    hist = _history()
    hist[2]["content"].append(
        {"type": "text", "text": "<system-reminder>be brief</system-reminder>"}
    )
    body = {"model": "m", "max_tokens": 100, "messages": hist}
    out, _ = anthropic_to_openai_request(
        body, vllm_target(flavor="mistral", tool_id_format=MISTRAL9)
    )
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "tool", "tool"]
    assert out["messages"][3]["content"] == "20C\n\n<system-reminder>be brief</system-reminder>"
    # elsewhere the user turn stays a user turn
    out, _ = anthropic_to_openai_request(body, vllm_target())
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "tool", "user"]


def test_a2o_images_after_tool_results_get_an_assistant_bridge_for_mistral() -> None:
    hist = _history()
    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    hist[2]["content"].append({"type": "image", "source": png})
    body = {"model": "m", "max_tokens": 100, "messages": hist}
    out, _ = anthropic_to_openai_request(
        body, vllm_target(flavor="mistral", tool_id_format=MISTRAL9)
    )
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "user"]
    assert out["messages"][4] == {"role": "assistant", "content": "(tool results received)"}


def test_o2a_response_ids_are_dressed_for_the_anthropic_client() -> None:
    ids = ToolIds(MISTRAL9, "toolu_")
    resp = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "D681PevKs",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    out = openai_to_anthropic_response(resp, rctx(tool_ids=ids))
    assert out["content"][0]["id"] == "toolu_D681PevKs"


def test_o2a_stream_ids_are_dressed_for_the_anthropic_client() -> None:
    tr = OpenAIToAnthropicStream(rctx(tool_ids=ToolIds(MISTRAL9, "toolu_")))
    raw = tr.start()
    raw += tr.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "D681PevKs",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"a": 1}'},
                            }
                        ]
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )
    raw += tr.finish()
    acc = StrictAnthropicAccumulator()
    for name, data in parse_anthropic_sse(raw):
        acc.feed(name, data)
    assert acc.message is not None
    block = acc.message["content"][0]
    assert block["type"] == "tool_use" and block["id"] == "toolu_D681PevKs"
    assert acc.message["usage"]["output_tokens"] == 2


# ------------------------------------------------------------------ O -> O pass-through


def test_pass_through_request_rewrites_only_ids() -> None:
    ids = ToolIds(MISTRAL9, "call_")
    body = {
        "model": "m",
        "temperature": 0.3,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": CALL, "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": CALL, "content": "ok"},
        ],
    }
    snapshot = orjson.dumps(body)
    out = map_openai_request(body, ids)
    assert orjson.dumps(body) == snapshot  # the client's body is not mutated
    h = _by_hand(CALL)
    assert out["messages"][1]["tool_calls"][0]["id"] == h
    assert out["messages"][2]["tool_call_id"] == h
    # everything but the two ids is byte-identical
    restored = orjson.loads(orjson.dumps(out).replace(h.encode(), CALL.encode()))
    assert restored == body


def test_pass_through_response_and_stream_ids_get_the_call_prefix() -> None:
    ids = ToolIds(MISTRAL9, "call_")
    ids.up(CALL)
    resp = {
        "choices": [{"message": {"tool_calls": [{"id": "D681PevKs", "function": {"name": "f"}}]}}]
    }
    assert map_openai_response(resp, ids)
    assert resp["choices"][0]["message"]["tool_calls"][0]["id"] == "call_D681PevKs"
    plain = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    assert map_openai_sse(plain, ids) is plain
    chunk = {
        "id": "cmpl-1",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "D681PevKs",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ]
                },
            }
        ],
    }
    events = plain + b"data: " + orjson.dumps(chunk) + b"\n\n" + b"data: [DONE]\n\n"
    got = map_openai_sse(events, ids)
    parts = got.split(b"\n\n")
    assert parts[0] + b"\n\n" == plain and parts[2] == b"data: [DONE]"
    assert orjson.loads(parts[1][6:])["choices"][0]["delta"]["tool_calls"][0]["id"] == (
        "call_D681PevKs"
    )
