"""What a client sends is checked at the door, through the real server, on every path: caps on
messages, tools and tool calls; field types; nesting depth; model names; image URLs; the query
string (audit #4, #10, #18, #21, #25; docs/limits.md, "Request caps" and "Addresses").

Each refusal is a 400 in the caller's dialect, and no upstream sees the request."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from tests.e2e.harness import KEY, Stack, start_stack, stop_stack
from tests.support import http

LIMITS = {"max_messages": 6, "max_tools": 3, "max_tool_calls": 3, "max_depth": 64}
A_MODELS = ["claude-sonnet-4-5", "coder"]  # A->A pass-through, A->O translated
O_MODELS = ["gpt-4.1", "claude-sonnet-4-5"]  # O->O pass-through, O->A translated


@pytest.fixture(scope="module")
def _guarded() -> Iterator[Stack]:
    s = start_stack({"server": {"max_body_bytes": 2 * 1024 * 1024, "request_limits": LIMITS}})
    yield s
    stop_stack(s)


@pytest.fixture
def guarded(_guarded: Stack) -> Stack:
    _guarded.reset()
    return _guarded


DEEP = "@deep@"


def with_deep(body: Any, n: int = 1000) -> bytes:
    """``body`` as JSON, with the string ``DEEP`` replaced by an object nested ``n`` deep (more
    than orjson writes, less than it reads)."""
    return orjson.dumps(body).replace(b'"' + DEEP.encode() + b'"', b'{"a":' * n + b"{}" + b"}" * n)


def a_body(model: str, **kw: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
        **kw,
    }


def o_body(model: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}


def a_post(s: Stack, body: Any, path: str = "/v1/messages") -> http.RawResponse:
    return http.post(s.url + path, body, {"x-api-key": KEY})


def o_post(s: Stack, body: Any) -> http.RawResponse:
    return http.post(s.url + "/v1/chat/completions", body, {"authorization": f"Bearer {KEY}"})


def a_refused(s: Stack, body: Any, *, says: str = "", path: str = "/v1/messages") -> None:
    r = a_post(s, body, path)
    assert r.status == 400, (r.status, r.body[:300])
    err = r.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert says in err["error"]["message"], err
    for f in s.fakes:
        assert f.requests == [], "the request reached an upstream"


def o_refused(s: Stack, body: Any, *, says: str = "") -> None:
    r = o_post(s, body)
    assert r.status == 400, (r.status, r.body[:300])
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and says in err["message"], err
    for f in s.fakes:
        assert f.requests == [], "the request reached an upstream"


# ------------------------------------------------------------------------------------ caps


def _tool_turns(n: int) -> list[dict[str, Any]]:
    uses = [{"type": "tool_use", "id": f"t{i}", "name": "f", "input": {}} for i in range(n)]
    results = [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "r"} for i in range(n)]
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": uses},
        {"role": "user", "content": results},
    ]


@pytest.mark.parametrize("model", A_MODELS)
def test_anthropic_caps(guarded: Stack, model: str) -> None:
    many = [{"role": "user", "content": "hi"}] * 7
    a_refused(guarded, a_body(model, messages=many), says="request_limits.max_messages")
    tools = [{"name": f"f{i}", "input_schema": {"type": "object"}} for i in range(4)]
    a_refused(guarded, a_body(model, tools=tools), says="request_limits.max_tools")
    a_refused(guarded, a_body(model, messages=_tool_turns(4)), says="max_tool_calls")
    assert a_post(guarded, a_body(model, messages=_tool_turns(3))).status == 200


@pytest.mark.parametrize("model", O_MODELS)
def test_openai_caps(guarded: Stack, model: str) -> None:
    many = [{"role": "user", "content": "hi"}] * 7
    o_refused(guarded, o_body(model, messages=many), says="request_limits.max_messages")
    tools = [{"type": "function", "function": {"name": f"f{i}"}} for i in range(4)]
    o_refused(guarded, o_body(model, tools=tools), says="request_limits.max_tools")
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        for i in range(4)
    ]
    msgs = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": f"c{i}", "content": "r"} for i in range(4)),
    ]
    o_refused(guarded, o_body(model, messages=msgs[:2]), says="max_tool_calls")


@pytest.mark.parametrize("model", A_MODELS)
def test_deep_json_gets_a_400_not_a_500(guarded: Stack, model: str) -> None:
    turns = _tool_turns(1)
    turns[1]["content"][0]["input"] = DEEP  # orjson parses it; json.dumps would not
    a_refused(guarded, with_deep(a_body(model, messages=turns)), says="request_limits.max_depth")
    o_refused(guarded, with_deep(o_body(model, metadata=DEEP)), says="request_limits.max_depth")


# ------------------------------------------------------------------------------ field types

A_BAD: dict[str, Any] = {
    "text_is_a_number": {
        "messages": [{"role": "user", "content": [{"type": "text", "text": 123}]}]
    },
    "text_is_a_list": {
        "messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]
    },
    "tool_description_is_a_number": {
        "tools": [{"name": "f", "description": 5, "input_schema": {"type": "object"}}]
    },
    "tool_input_is_a_string": {
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}],
            },
        ]
    },
    "tool_result_content_is_a_number": {
        "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 5}]}
        ]
    },
    "image_source_is_a_string": {
        "messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]
    },
    "system_text_is_a_number": {"system": [{"type": "text", "text": 5}]},
}
O_BAD: dict[str, Any] = {
    "text_is_a_number": {
        "messages": [{"role": "user", "content": [{"type": "text", "text": 123}]}]
    },
    "text_is_a_list": {
        "messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]
    },
    "tool_description_is_a_number": {
        "tools": [{"type": "function", "function": {"name": "f", "description": 5}}]
    },
    "tool_calls_is_a_number": {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "x", "tool_calls": 5},
        ]
    },
    "tool_call_function_is_a_string": {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": "f"}]},
        ]
    },
    "image_url_is_a_number": {
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]
    },
    "tools_is_a_string": {"tools": "f"},
}


@pytest.mark.parametrize("model", A_MODELS)
@pytest.mark.parametrize("case", sorted(A_BAD))
def test_anthropic_bad_field_types_get_a_400(guarded: Stack, model: str, case: str) -> None:
    a_refused(guarded, a_body(model, **copy.deepcopy(A_BAD[case])), says="Input should be")


@pytest.mark.parametrize("model", O_MODELS)
@pytest.mark.parametrize("case", sorted(O_BAD))
def test_openai_bad_field_types_get_a_400(guarded: Stack, model: str, case: str) -> None:
    o_refused(guarded, o_body(model, **copy.deepcopy(O_BAD[case])), says="Invalid type for")


# ------------------------------------------------------------------------------ model names


@pytest.mark.parametrize("name", ["claude-" + "x" * 300, "claude-sonnet-4-5\r\nx: y", "a\x00b"])
def test_model_names_no_route_could_have_are_refused(guarded: Stack, name: str) -> None:
    # "claude-*" is an alias: without the check, any such name would be served and stored
    a_refused(guarded, a_body(name), says="model")
    o_refused(guarded, o_body(name), says="model")


# ------------------------------------------------------------------------------- image URLs

PRIVATE = [
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://127.0.0.1:8000/x.png",
    "http://localhost/x.png",
    "http://10.1.2.3/x.png",
    "http://metadata.google.internal/x.png",
    "file:///etc/passwd",
]


def _a_image(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image", "source": {"type": "url", "url": url}},
            ],
        }
    ]


def _o_image(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


@pytest.mark.parametrize("url", PRIVATE)
def test_private_image_urls_are_refused_on_every_path(guarded: Stack, url: str) -> None:
    for model in A_MODELS:
        a_refused(guarded, a_body(model, messages=_a_image(url)), says="public http(s)")
    a_refused(
        guarded,
        {"model": "claude-sonnet-4-5", "messages": _a_image(url)},
        says="public http(s)",
        path="/v1/messages/count_tokens",
    )
    for model in O_MODELS:
        o_refused(guarded, o_body(model, messages=_o_image(url)), says="public http(s)")


def test_private_image_in_a_tool_result_is_refused(guarded: Stack) -> None:
    turns = _tool_turns(1)
    turns[2]["content"][0]["content"] = [
        {"type": "image", "source": {"type": "url", "url": "http://192.168.0.1/x.png"}}
    ]
    a_refused(guarded, a_body("claude-sonnet-4-5", messages=turns), says="public http(s)")


PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    + "rkJggg=="
)


def test_data_urls_and_public_urls_still_pass(guarded: Stack) -> None:
    r = o_post(guarded, o_body("gpt-4.1", messages=_o_image("data:image/png;base64," + PNG)))
    assert r.status == 200, r.body[:300]
    r = o_post(guarded, o_body("gpt-4.1", messages=_o_image("https://example.com/cat.png")))
    assert r.status == 200, r.body[:300]


# ----------------------------------------------------------------------------- query string


def test_only_known_query_parameters_reach_the_upstream(guarded: Stack) -> None:
    url = guarded.url + "/v1/messages?beta=true&x=%26admin%3D1&y=%23frag"
    r = http.post(url, a_body("claude-sonnet-4-5"), {"x-api-key": KEY})
    assert r.status == 200, r.body[:300]
    (req,) = guarded.anthropic_fake.requests
    assert req.query == {"beta": "true"}
    r = http.post(
        guarded.url + "/v1/messages?x=%26beta%3Dtrue",
        a_body("claude-sonnet-4-5"),
        {"x-api-key": KEY},
    )
    assert r.status == 200
    assert guarded.anthropic_fake.requests[-1].query == {}
