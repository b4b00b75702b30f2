"""The request estimators run on unvalidated client input: a field of the wrong type is charged
as its JSON, never an exception (found by tests/fuzz/test_schemathesis.py: a 500 for
``tools[].function.description: -1053``; audit #21)."""

from __future__ import annotations

from typing import Any

import pytest

from dragoman.tokens import estimate_anthropic_request_tokens, estimate_openai_request_tokens

OPENAI_BAD: list[dict[str, Any]] = [
    {
        "messages": [],
        "tools": [{"type": "function", "function": {"name": "f", "description": -1053}}],
    },
    {"messages": [{"role": "user", "content": "x"}], "tools": 3},
    {"messages": 5},
    {"messages": [{"role": "assistant", "tool_calls": [{"function": ["x"]}]}]},
    {"messages": [{"role": "assistant", "tool_calls": 7}]},
    {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": 3}]}]},
]
ANTHROPIC_BAD: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": [{"type": "text", "text": 123}]}]},
    {"messages": [], "tools": [{"name": ["f"], "description": 5, "input_schema": {}}]},
    {"messages": [{"role": "user", "content": [{"type": "document", "source": "x"}]}]},
    {"messages": 1, "system": {"a": 1}},
]


@pytest.mark.parametrize("body", OPENAI_BAD)
def test_openai_estimate_never_raises(body: dict[str, Any]) -> None:
    assert estimate_openai_request_tokens(body) > 0


@pytest.mark.parametrize("body", ANTHROPIC_BAD)
def test_anthropic_estimate_never_raises(body: dict[str, Any]) -> None:
    assert estimate_anthropic_request_tokens(body) > 0


def test_a_wrong_type_is_charged_not_ignored() -> None:
    long = {"messages": [{"role": "user", "content": [{"type": "text", "text": ["w " * 5000]}]}]}
    assert estimate_anthropic_request_tokens(long) > 2000
