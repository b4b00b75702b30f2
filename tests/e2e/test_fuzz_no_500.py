"""Bad input gets a clear error in the caller's dialect, never a 500: valid requests with one
part replaced by arbitrary JSON, sent through the real server on all four paths."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.e2e.harness import KEY, Stack
from tests.support import http

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)

ANTHROPIC_BASE: dict[str, Any] = {
    "model": "coder",
    "max_tokens": 50,
    "system": [{"type": "text", "text": "s"}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
    ],
    "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "stop_sequences": ["x"],
}
OPENAI_BASE: dict[str, Any] = {
    "model": "coder",
    "max_tokens": 50,
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
    "stop": ["x"],
    "response_format": {"type": "text"},
}


def _paths(v: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*prefix, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, (*prefix, i))
    return out


def _replace(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    node: Any = body
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return body


A_PATHS = [p for p in _paths(ANTHROPIC_BASE) if p != ("model",)]
O_PATHS = [p for p in _paths(OPENAI_BASE) if p != ("model",)]


def _check(r: http.RawResponse, dialect: str) -> None:
    if r.status >= 500:
        # only an upstream's own failure may come back as a 5xx (the fakes run with validation
        # off here, so odd bodies can make them fail); the gateway itself never answers 500
        assert b"internal error in the gateway" not in r.body, r.body[:300]
        assert r.headers.get("x-dragoman-attempts", "0") != "0", (r.status, r.body[:300])
    if r.status >= 400:
        body = r.json()
        if dialect == "anthropic":
            assert body["type"] == "error" and body["error"]["message"]
        else:
            assert body["error"]["message"]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(A_PATHS),
    value=json_values,
    model=st.sampled_from(["coder", "claude-sonnet-4-5"]),
    stream=st.booleans(),
)
def test_anthropic_front_never_500(
    stack: Stack, path: Any, value: Any, model: str, stream: bool
) -> None:
    body = _replace({**ANTHROPIC_BASE, "model": model, "stream": stream}, path, value)
    stack.anthropic_fake.validate = False  # we test the gateway, not the fake's validator
    r = http.post(stack.url + "/v1/messages", body, {"x-api-key": KEY})
    _check(r, "anthropic")


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(O_PATHS),
    value=json_values,
    model=st.sampled_from(["coder", "claude-sonnet-4-5"]),
    stream=st.booleans(),
)
def test_openai_front_never_500(
    stack: Stack, path: Any, value: Any, model: str, stream: bool
) -> None:
    body = _replace({**OPENAI_BASE, "model": model, "stream": stream}, path, value)
    stack.vllm.validate = False
    r = http.post(stack.url + "/v1/chat/completions", body, {"authorization": f"Bearer {KEY}"})
    _check(r, "openai")
