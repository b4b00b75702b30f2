# ruff: noqa: E501  (test vectors read better on one line)
"""names.py and tokens.py."""

from __future__ import annotations

import math
from typing import Any

from dragoman.tokens import (
    estimate_anthropic_request_tokens,
    estimate_openai_request_tokens,
    estimate_text_tokens,
)
from dragoman.translate import (
    is_synthetic_signature,
    sanitize_tool_id,
    strip_synthetic_thinking,
    synthetic_signature,
)


def test_sanitize_tool_id() -> None:
    assert sanitize_tool_id("toolu_01-ab") == "toolu_01-ab"
    assert sanitize_tool_id("call.1:x") == "call_1_x"
    a, b = sanitize_tool_id(None), sanitize_tool_id("")
    assert a.startswith("toolu_") and b.startswith("toolu_") and a != b


def test_signatures() -> None:
    s = synthetic_signature("abc")
    assert is_synthetic_signature(s) and s == synthetic_signature("abc")
    assert not is_synthetic_signature("EqQBCgIYAhIM") and not is_synthetic_signature(None)


def test_strip_synthetic_thinking() -> None:
    clean: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "EqRealSig"}]},
        ]
    }  # fmt: skip
    assert strip_synthetic_thinking(clean) is clean
    ours = synthetic_signature("t")
    body: dict[str, Any] = {
        "thinking": {"type": "adaptive"},
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ours},
                                              {"type": "text", "text": "A"}]},
            {"role": "user", "content": "y"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ours}]},
        ],
    }  # fmt: skip
    out = strip_synthetic_thinking(body)
    assert out is not body and body["messages"][1]["content"][0]["signature"] == ours  # not mutated
    assert out["messages"] == [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}]},
        {"role": "user", "content": "y"},
    ]
    # no tool loop is going on: earlier turns need no thinking, so thinking stays on
    assert out["thinking"] == {"type": "adaptive"}


def _tool_turn(first: list[dict[str, Any]], tid: str) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": tid, "name": "f", "input": {}}
    result = {"type": "tool_result", "tool_use_id": tid, "content": "ok"}
    return [{"role": "assistant", "content": [*first, use]}, {"role": "user", "content": [result]}]


def test_strip_synthetic_thinking_in_a_tool_loop() -> None:
    ours = {"type": "thinking", "thinking": "t", "signature": synthetic_signature("t")}
    real = {"type": "thinking", "thinking": "r", "signature": "EqRealSig"}
    on = {"type": "enabled", "budget_tokens": 1024}
    user = {"role": "user", "content": "x"}
    # the loop began on an OpenAI backend (our signature), goes on on Anthropic
    body: dict[str, Any] = {"thinking": on, "messages": [user, *_tool_turn([ours], "t1")]}
    out = strip_synthetic_thinking(body)
    assert "thinking" not in out
    assert out["messages"][1]["content"][0]["type"] == "tool_use"
    # the loop's opening message lost its thinking even though a later one has a real block
    body["messages"] += _tool_turn([real], "t2")
    assert "thinking" not in strip_synthetic_thinking(body)
    # the loop opened on Anthropic (real signature); our block was in an earlier loop
    body = {
        "thinking": on,
        "messages": [
            user,
            *_tool_turn([ours], "t1"),
            {"role": "assistant", "content": "done"},
            user,
            *_tool_turn([real], "t2"),
        ],
    }
    assert strip_synthetic_thinking(body)["thinking"] == on


# Hand-tokenised with cl100k_base / o200k-style BPE (each piece is one token).
SAMPLES = [
    ("Hello, world!", ["Hello", ",", " world", "!"]),
    ("The quick brown fox jumps over the lazy dog.",
     ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."]),
    ('{"type": "string"}', ['{"', "type", '":', ' "', "string", '"}']),
    ("def f(x):\n    return x + 1\n",
     ["def", " f", "(x", "):\n", "   ", " return", " x", " +", " ", "1", "\n"]),
    ("2024-01-15 12:30:00", ["202", "4", "-", "01", "-", "15", " ", "12", ":", "30", ":", "00"]),
    ("日本語のテキスト", ["日本", "語", "の", "テ", "キ", "スト"]),
]  # fmt: skip


def test_estimate_errs_high_on_hand_tokenised_samples() -> None:
    for text, pieces in SAMPLES:
        assert "".join(pieces) == text
        assert estimate_text_tokens(text) >= len(pieces), text


def test_long_text_path_errs_high_too() -> None:
    # long strings take the byte-class fast path (and are memoised): still >= the real count
    for text, pieces in SAMPLES:
        long = "\n".join([text] * 60)
        assert len(long) >= 256
        real = 60 * len(pieces) + 59  # each newline is (at least) its own token
        assert estimate_text_tokens(long) >= real, text
        assert estimate_text_tokens(long) == estimate_text_tokens(long)


def test_estimate_reasonable_on_prose() -> None:
    prose = (
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
        "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, "
        "it was the season of Light, it was the season of Darkness. "
    ) * 20
    # ~1.3 tokens per word for real tokenisers
    words = len(prose.split())
    est = estimate_text_tokens(prose)
    assert words <= est <= 3 * words
    assert estimate_text_tokens("") == 0


def test_request_estimates() -> None:
    a = {
        "system": [{"type": "text", "text": "You are helpful."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                                         {"type": "image", "source": {"type": "url", "url": "u"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                              {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
        ],
        "tools": [{"name": "f", "description": "does f", "input_schema": {"type": "object"}}],
    }  # fmt: skip
    n = estimate_anthropic_request_tokens(a)
    assert n > 1600 and n < 1900
    o = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi there"}],
         "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}  # fmt: skip
    assert 10 < estimate_openai_request_tokens(o) < 100
    assert math.isfinite(estimate_anthropic_request_tokens({"messages": []}))
