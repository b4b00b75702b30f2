"""Request caps, nesting depth, model names, rows cut to their columns, and the token memo
(audit #4, #7, #10, #21)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from dragoman import tokens
from dragoman.config import RequestLimits
from dragoman.errors import InvalidRequestError
from dragoman.guard.caps import check_caps, deeper_than
from dragoman.guard.strings import check_model_name
from dragoman.store import schema
from dragoman.store.fit import fit_row


def nested(depth: int) -> Any:
    v: Any = {}
    for _ in range(depth - 1):
        v = {"a": v}
    return v


def test_depth_is_counted_without_recursion() -> None:
    assert not deeper_than(nested(10), 10)
    assert deeper_than(nested(11), 10)
    assert deeper_than(nested(5000), 64)  # deeper than Python's own stack would take


LIMITS = RequestLimits(max_messages=3, max_tools=2, max_tool_calls=2, max_depth=16)


@pytest.mark.parametrize(
    ("front", "body", "setting"),
    [
        ("anthropic", {"messages": [{"role": "user", "content": "x"}] * 4}, "max_messages"),
        ("openai", {"messages": [], "tools": [{}] * 3}, "max_tools"),
        (
            "anthropic",
            {"messages": [{"role": "assistant", "content": [{"type": "tool_use"}] * 3}]},
            "max_tool_calls",
        ),
        ("openai", {"messages": [{"role": "assistant", "tool_calls": [{}] * 3}]}, "max_tool_calls"),
        ("anthropic", {"messages": [], "metadata": nested(20)}, "max_depth"),
    ],
)
def test_a_request_over_a_cap_gets_a_400_naming_it(
    front: str, body: dict[str, Any], setting: str
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        check_caps(front, body, LIMITS)
    assert err.value.status == 400
    assert f"server.request_limits.{setting}" in err.value.message


def test_a_request_at_the_caps_passes() -> None:
    body = {
        "messages": [{"role": "assistant", "content": [{"type": "tool_use"}] * 2}] * 1,
        "tools": [{}] * 2,
    }
    check_caps("anthropic", body, LIMITS)


@pytest.mark.parametrize("name", ["m" * 257, "claude\n", "claude\x00x", "a\x85b", "x\x7f"])
def test_model_names_no_route_could_have_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_model_name(name)


def test_ordinary_model_names_pass() -> None:
    check_model_name("m" * 256)
    check_model_name("claude-sonnet-4-5@20250929/üñí")


def test_usage_rows_are_cut_to_their_columns() -> None:
    row = {"requested_model": "x" * 300, "model": "m", "streamed": True, "error": "e" * 5000}
    fitted = fit_row(schema.usage, row)
    assert fitted["requested_model"] == "x" * 200  # VARCHAR(200)
    assert fitted["model"] == "m" and fitted["streamed"] is True
    assert row["requested_model"] == "x" * 300  # the caller's row is not changed
    assert fit_row(schema.usage, {"model": "m"}) == {"model": "m"}


def test_the_token_memo_keeps_no_request_text() -> None:
    """150 distinct 1 MB strings estimated: the memo must not keep them alive (it held every
    one, 150 MB, keyed by the string itself)."""
    tokens._MEMO.clear()
    for i in range(150):
        tokens.estimate_text_tokens(f"{i} " + "word " * 200_000)
    held = sum(sys.getsizeof(k) for k in tokens._MEMO) + sys.getsizeof(tokens._MEMO)
    assert held < 1_000_000, held
    # and a hit still gives the same estimate
    s = "some text " * 1000
    assert tokens.estimate_text_tokens(s) == tokens.estimate_text_tokens("".join([s]))


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 123}]}]},
        {"messages": 5, "tools": 5},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]},
        {"messages": [], "tools": [{"name": "f", "description": 5}]},
        {"messages": [{"role": "user", "content": [{"type": "document", "source": "x"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "redacted_thinking", "data": 5}]}]},
        {"messages": [{"content": [{"type": "tool_use", "name": "f", "input": nested(3000)}]}]},
    ],
)
def test_the_anthropic_estimator_never_raises(body: dict[str, Any]) -> None:
    assert tokens.estimate_anthropic_request_tokens(body) > 0


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "assistant", "tool_calls": 5}]},
        {"messages": [{"role": "assistant", "tool_calls": [{"function": "f"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]},
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": "s"}]}]},
        {"messages": [], "tools": [{"function": "f"}, {"function": {"description": 5}}]},
    ],
)
def test_the_openai_estimator_never_raises(body: dict[str, Any]) -> None:
    assert tokens.estimate_openai_request_tokens(body) > 0
