"""The cache key (what must and must not change it) and who reads and writes the cache."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.support.fixtures import load_request

from dragoman.cache import BYPASS, MISS, cache_key, decide, namespace

A_BODY: dict[str, Any] = {
    "model": "sonnet",
    "max_tokens": 1024,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "Hi"}],
    "tools": [{"name": "ls", "description": "list", "input_schema": {"type": "object"}}],
    "temperature": 0.2,
}
O_BODY: dict[str, Any] = {
    "model": "gpt",
    "max_tokens": 50,
    "messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "Hi"}],
}


def a_key(body: dict[str, Any], **kw: Any) -> str:
    return cache_key("anthropic", kw.pop("model", "claude-sonnet-4-5"), body, **kw)


def changed(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out.update(fields)
    return out


def test_the_stream_flag_is_not_in_the_key() -> None:
    assert (
        a_key(changed(A_BODY, stream=True)) == a_key(A_BODY) == a_key(changed(A_BODY, stream=False))
    )
    o = cache_key("openai", "gpt", O_BODY)
    streamed = changed(O_BODY, stream=True, stream_options={"include_usage": True})
    assert cache_key("openai", "gpt", streamed) == o
    # nor the caller's metadata
    assert a_key(changed(A_BODY, metadata={"user_id": "u1"})) == a_key(A_BODY)
    assert cache_key("openai", "gpt", changed(O_BODY, user="u1")) == o


@pytest.mark.parametrize(
    "change",
    [
        {"max_tokens": 1025},
        {"temperature": 0.3},
        {"top_p": 0.9},
        {"stop_sequences": ["\n"]},
        {"system": "You are verbose."},
        {"messages": [{"role": "user", "content": "Hello"}]},
        {"tools": []},
        {"tool_choice": {"type": "any"}},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"some_future_field": 1},  # unknown: it might change the answer
    ],
)
def test_what_changes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert a_key(changed(A_BODY, **change)) != a_key(A_BODY)


def test_model_after_routing_namespace_dialect_and_headers() -> None:
    base = a_key(A_BODY)
    assert a_key(A_BODY, model="claude-haiku-4-5") != base
    # the requested name does not matter, the routed model does
    assert a_key(changed(A_BODY, model="an-alias")) == base
    assert a_key(A_BODY, namespace="k:key_2") != base
    assert cache_key("openai", "claude-sonnet-4-5", A_BODY) != base
    beta = a_key(A_BODY, headers={"anthropic-beta": "a-1,b-2"})
    assert beta != base
    assert a_key(A_BODY, headers={"anthropic-beta": "b-2, a-1"}) == beta
    assert a_key(A_BODY, headers={"x-stainless-retry-count": "1"}) == base


def test_equivalent_spellings_share_a_key() -> None:
    blocks = changed(
        A_BODY,
        system=[{"type": "text", "text": "You are terse."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    )
    assert a_key(blocks) == a_key(A_BODY)
    o_blocks = changed(
        O_BODY,
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "terse"}]},
            {"role": "user", "content": "Hi"},
        ],
    )
    assert cache_key("openai", "gpt", o_blocks) == cache_key("openai", "gpt", O_BODY)


def test_claude_code_billing_block_is_ignored() -> None:
    """Its ``cch`` changes on every request: with it in the key, nothing would ever hit."""
    _, body = load_request("claude_code_main_request.json")
    billing = [b for b in body["system"] if b.get("text", "").startswith("x-anthropic-billing")]
    assert billing, "the fixture carries Claude Code's billing block"
    again = copy.deepcopy(body)
    for b in again["system"]:
        if b.get("text", "").startswith("x-anthropic-billing"):
            b["text"] = b["text"].replace("cch=", "cch=f") + "0"
    assert a_key(again) == a_key(body)
    assert a_key(changed(again, max_tokens=body["max_tokens"] + 1)) != a_key(body)


def test_namespace() -> None:
    assert namespace("key", "key_1", "eng") == "k:key_1"
    assert namespace("team", "key_1", "eng") == "t:eng"
    assert namespace("team", "key_1", None) == "k:key_1"
    assert namespace("all", "key_1", "eng") == ""


def test_policy() -> None:
    use = decide({})
    assert use.read and use.write and use.label == MISS
    fresh = decide({"Cache-Control": "no-cache"})
    assert not fresh.read and fresh.write and fresh.label == BYPASS
    nothing = decide({"cache-control": "max-age=0, NO-STORE"})
    assert not nothing.read and not nothing.write and nothing.label == BYPASS
    opted_out = decide({}, key_uses_cache=False)
    assert not opted_out.read and not opted_out.write and opted_out.label == BYPASS
