"""Every error leaves in the caller's dialect, with the right status."""

from __future__ import annotations

import anthropic
import openai
import pytest
from tests.e2e.harness import KEY, Stack
from tests.fakes import ErrorReply, OpenAIErrorReply
from tests.support import http

A_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
O_HEADERS = {"authorization": f"Bearer {KEY}"}
MSG = {"model": "coder", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
CHAT = {"model": "coder", "messages": [{"role": "user", "content": "x"}]}


def a_err(r: http.RawResponse) -> dict:
    body = r.json()
    assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
    assert r.headers.get("request-id")
    return body["error"]


def o_err(r: http.RawResponse) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


# -- our own validation ----------------------------------------------------------------------


def test_invalid_json(stack: Stack) -> None:
    r = http.post(stack.url + "/v1/messages", b"{not json", A_HEADERS)
    assert r.status == 400 and a_err(r)["type"] == "invalid_request_error"
    r = http.post(stack.url + "/v1/chat/completions", b"{not json", O_HEADERS)
    assert r.status == 400 and o_err(r)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in MSG.items() if k != "max_tokens"}, "max_tokens"),
        ({k: v for k, v in MSG.items() if k != "messages"}, "messages"),
        ({k: v for k, v in MSG.items() if k != "model"}, "model"),
        ({**MSG, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_anthropic_missing_fields_and_roles(stack: Stack, body: dict, field: str) -> None:
    r = http.post(stack.url + "/v1/messages", body, A_HEADERS)
    assert r.status == 400
    err = a_err(r)
    assert err["type"] == "invalid_request_error" and field in err["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "coder"}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({**CHAT, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({**CHAT, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ],
)
def test_openai_missing_fields_and_roles(stack: Stack, body: dict, field: str) -> None:
    r = http.post(stack.url + "/v1/chat/completions", body, O_HEADERS)
    assert r.status == 400
    err = o_err(r)
    assert err["param"] == field and err["type"] == "invalid_request_error"


def test_sdk_bad_request_classes(stack: Stack) -> None:
    with pytest.raises(anthropic.BadRequestError):
        stack.anthropic().messages.create(
            model="coder",
            max_tokens=10,
            messages=[{"role": "robot", "content": "x"}],  # type: ignore[list-item]
        )
    with pytest.raises(openai.BadRequestError):
        stack.openai().chat.completions.create(model="coder", messages=[])


def test_auth_missing_and_wrong(stack: Stack) -> None:
    r = http.post(stack.url + "/v1/messages", MSG, {"anthropic-version": "2023-06-01"})
    assert r.status == 401 and a_err(r)["type"] == "authentication_error"
    r = http.post(stack.url + "/v1/messages", MSG, {"x-api-key": "nope"})
    assert r.status == 401
    r = http.post(stack.url + "/v1/chat/completions", CHAT, {"authorization": "Bearer nope"})
    assert r.status == 401 and o_err(r)["code"] == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=stack.url, api_key="bad", max_retries=0).messages.create(
            model="coder", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=stack.url + "/v1", api_key="bad", max_retries=0).models.list()


def test_bearer_works_for_anthropic_clients(stack: Stack) -> None:
    r = http.post(stack.url + "/v1/messages", MSG, {"authorization": f"Bearer {KEY}"})
    assert r.status == 200


def test_body_too_large_413(stack: Stack) -> None:
    big = {**MSG, "messages": [{"role": "user", "content": "x" * (3 * 1024 * 1024)}]}
    r = http.post(stack.url + "/v1/messages", big, A_HEADERS)
    assert r.status == 413 and a_err(r)["type"] == "request_too_large"
    r = http.post(stack.url + "/v1/chat/completions", {**CHAT, **big}, O_HEADERS)
    assert r.status == 413 and o_err(r)["type"] == "invalid_request_error"


def test_unknown_model_404_both_dialects(stack: Stack) -> None:
    r = http.post(stack.url + "/v1/messages", {**MSG, "model": "no-such-model"}, A_HEADERS)
    assert r.status == 404 and a_err(r)["type"] == "not_found_error"
    r = http.post(stack.url + "/v1/chat/completions", {**CHAT, "model": "nope"}, O_HEADERS)
    assert r.status == 404 and o_err(r)["code"] == "model_not_found"


# -- upstream errors, translated -------------------------------------------------------------


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
@pytest.mark.parametrize(
    ("status", "a_status", "a_type", "o_status"),
    [
        (400, 400, "invalid_request_error", 400),
        # our provider key refused: a bad gateway, never the client's auth error (#3)
        (401, 502, "api_error", 502),
        (404, 404, "not_found_error", 404),
        (429, 429, "rate_limit_error", 429),
        (500, 500, "api_error", 500),
        (503, 529, "overloaded_error", 503),
    ],
)
def test_openai_upstream_errors(
    stack: Stack, status: int, a_status: int, a_type: str, o_status: int
) -> None:
    headers = {"retry-after": "7"} if status == 429 else {}
    stack.vllm.enqueue(OpenAIErrorReply(status=status, message="upstream says no", headers=headers))
    r = http.post(stack.url + "/v1/messages", MSG, A_HEADERS)
    assert r.status == a_status
    err = a_err(r)
    assert err["type"] == a_type
    if status == 429:
        assert r.headers["retry-after"] == "7"
    # the same upstream failure to an OpenAI client reaching the same backend (pass-through):
    # a 429/529 has cooled the only deployment down, but the last route is always tried, so
    # the client gets the upstream's own answer again, not a made-up one
    stack.vllm.enqueue(OpenAIErrorReply(status=status, message="upstream says no"))
    r = http.post(stack.url + "/v1/chat/completions", CHAT, O_HEADERS)
    assert r.status == o_status
    if status == 401:
        assert o_err(r)["type"] == "upstream_error"
        assert o_err(r)["message"] == "upstream vllm rejected the gateway's credentials"
    else:
        assert "upstream says no" in o_err(r)["message"]
    assert len(stack.vllm.requests) == 2


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
@pytest.mark.parametrize(
    ("status", "etype", "o_status"),
    [
        (429, "rate_limit_error", 429),
        (529, "overloaded_error", 503),
        (500, "api_error", 500),
        (400, "invalid_request_error", 400),
    ],
)
def test_anthropic_upstream_errors(stack: Stack, status: int, etype: str, o_status: int) -> None:
    stack.anthropic_fake.enqueue(ErrorReply(status=status, type=etype, message="nope nope"))
    r = http.post(stack.url + "/v1/messages", {**MSG, "model": "claude-sonnet-4-5"}, A_HEADERS)
    assert r.status == status and a_err(r)["type"] == etype  # pass-through keeps the envelope
    stack.anthropic_fake.enqueue(ErrorReply(status=status, type=etype, message="nope nope"))
    r = http.post(
        stack.url + "/v1/chat/completions", {**CHAT, "model": "claude-sonnet-4-5"}, O_HEADERS
    )
    assert r.status == o_status and "nope nope" in o_err(r)["message"]
    assert len(stack.anthropic_fake.requests) == 2


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
def test_overloaded_sdk_class(stack: Stack) -> None:
    stack.anthropic_fake.enqueue(ErrorReply(status=529, type="overloaded_error"))
    with pytest.raises(anthropic.APIStatusError) as ei:
        stack.anthropic().messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert ei.value.status_code == 529


def test_context_overflow_is_prompt_too_long(stack: Stack) -> None:
    """The vLLM fake rejects prompt + max_tokens > 32768 with vLLM's wording; a prompt longer
    than the window alone reaches the client as Anthropic's `prompt is too long`."""
    huge = "word " * 60000
    r = http.post(
        stack.url + "/v1/messages",
        {**MSG, "max_tokens": 100, "messages": [{"role": "user", "content": huge}]},
        A_HEADERS,
    )
    assert r.status == 400
    msg = a_err(r)["message"]
    assert msg.startswith("prompt is too long: ") and "maximum" in msg


def test_clamped_max_tokens_avoid_overflow(stack: Stack) -> None:
    """Claude Code asks for 32000 output tokens; the gateway clamps to fit 32768 - prompt."""
    prompt = "word " * 5000
    r = http.post(
        stack.url + "/v1/messages",
        {**MSG, "max_tokens": 32000, "messages": [{"role": "user", "content": prompt}]},
        A_HEADERS,
    )
    assert r.status == 200, r.body
    sent = stack.vllm.last_request.body
    assert sent["max_tokens"] <= 8192


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"[1, 2]", b'{"choices": 7}'])
def test_unreadable_upstream_answer_is_502_not_500(stack: Stack, body: bytes) -> None:
    stack.vllm.enqueue(OpenAIErrorReply(status=200, body=body))
    r = http.post(stack.url + "/v1/messages", MSG, A_HEADERS)
    assert r.status == 502, r.body
    assert a_err(r)["type"] == "api_error"
    assert b"internal error in the gateway" not in r.body


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
def test_unreadable_stream_event_becomes_error_event(stack: Stack) -> None:
    from tests.fakes import RawStream

    stack.vllm.enqueue(
        RawStream(
            b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}\n\n'
            b"data: {this is not json}\n\n"
        )
    )
    r = http.post(stack.url + "/v1/messages", {**MSG, "stream": True}, A_HEADERS)
    assert r.status == 200
    names = [e.event for e in r.events()]
    assert names[-1] == "error" and "message_stop" not in names
