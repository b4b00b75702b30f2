# ruff: noqa: E501  (test vectors read better on one line)
"""Upstream error translation (docs/protocols.md §6.6, §7.11)."""

from __future__ import annotations

import pytest

from dragoman.translate import (
    anthropic_upstream_error,
    openai_stream_error_to_error,
    openai_upstream_error,
)


def o(msg: str, typ: str = "BadRequestError", code: object = 400) -> bytes:
    import orjson

    return orjson.dumps({"error": {"message": msg, "type": typ, "param": None, "code": code}})


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "This model's maximum context length is 32768 tokens. However, your request has "
            "40000 input tokens. Please reduce the length of the input messages.",
            "prompt is too long: 40000 tokens > 32768 maximum",
        ),
        (
            "'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's maximum "
            "context length is 32768 tokens and your request has 40000 input tokens",
            "prompt is too long: 40000 tokens > 32768 maximum",
        ),
        (
            "This model's maximum context length is 102400 tokens. However, you requested 107837 "
            "tokens (99645 in the messages, 8192 in the completion). Please reduce the length.",
            "input length and `max_tokens` exceed context limit: 99645 + 8192 > 102400, decrease "
            "input length or `max_tokens` and try again",
        ),
        (
            "This model's maximum context length is 128000 tokens. However, you requested 130000 "
            "tokens (129000 in the messages, 1000 in the completion).",
            "prompt is too long: 129000 tokens > 128000 maximum",
        ),
        (
            "The decoder prompt (length 40000) is longer than the maximum model length of 32768.",
            "prompt is too long: 40000 tokens > 32768 maximum",
        ),
    ],
)
def test_context_overflow_rewrites(message: str, expected: str) -> None:
    err = openai_upstream_error(400, o(message), {})
    assert (err.status, err.type, err.message) == (400, "invalid_request_error", expected)


def test_openai_code_context_length_exceeded() -> None:
    body = o(
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 130000 tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        "context_length_exceeded",
    )
    err = openai_upstream_error(400, body, {})
    assert err.message == "prompt is too long: 130000 tokens > 128000 maximum"


def test_llamacpp_overflow() -> None:
    import orjson

    body = orjson.dumps({"error": {"code": 400, "message": "the request exceeds the available context size",
                                   "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}})  # fmt: skip
    assert (
        openai_upstream_error(400, body, {}).message
        == "prompt is too long: 5000 tokens > 4096 maximum"
    )


@pytest.mark.parametrize(
    ("status", "a_status", "a_type"),
    [
        (400, 400, "invalid_request_error"),
        (422, 400, "invalid_request_error"),
        (401, 401, "authentication_error"),
        (403, 403, "permission_error"),
        (404, 404, "not_found_error"),
        (413, 413, "request_too_large"),
        (429, 429, "rate_limit_error"),
        (500, 500, "api_error"),
        (502, 529, "overloaded_error"),
        (503, 529, "overloaded_error"),
        (504, 504, "timeout_error"),
    ],
)
def test_status_mapping(status: int, a_status: int, a_type: str) -> None:
    err = openai_upstream_error(status, o("original text", "x", status), {"Retry-After": "7"})
    assert (err.status, err.type) == (a_status, a_type)
    assert err.message == "original text"
    if a_type in ("rate_limit_error", "overloaded_error"):
        assert err.retry_after == 7.0


def test_odd_bodies() -> None:
    assert (
        openai_upstream_error(500, b"<html>bad gateway</html>", {}).message
        == "<html>bad gateway</html>"
    )
    assert openai_upstream_error(503, b"", {}).message == "upstream returned HTTP 503"
    assert openai_upstream_error(400, b'{"detail": "nope"}', {}).message == "nope"
    assert (
        openai_upstream_error(400, b'{"error": "model not loaded"}', {}).message
        == "model not loaded"
    )
    err = openai_upstream_error(429, o("quota", "insufficient_quota", "insufficient_quota"), {})
    assert err.type == "billing_error"


def test_anthropic_upstream_error_keeps_type_and_message() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"r"}'
    err = anthropic_upstream_error(529, body, {})
    assert (err.status, err.type, err.message) == (529, "overloaded_error", "Overloaded")
    err = anthropic_upstream_error(502, b"gateway", {"retry-after": "3"})
    assert (err.status, err.type, err.message, err.retry_after) == (
        502,
        "overloaded_error",
        "gateway",
        3.0,
    )
    err = anthropic_upstream_error(
        400, b'{"type":"error","error":{"type":"weird","message":"m"}}', {}
    )
    assert err.type == "invalid_request_error"


def test_stream_error_chunks() -> None:
    e = openai_stream_error_to_error(
        {"error": {"message": "boom", "type": "internal_error", "code": 500}}
    )
    assert (e.type, e.message) == ("api_error", "boom")
    e = openai_stream_error_to_error(
        {"error": {"message": "slow down", "type": "rate_limit_error"}}
    )
    assert e.type == "rate_limit_error"
    e = openai_stream_error_to_error({"error": "plain"})
    assert (e.type, e.message) == ("api_error", "plain")
