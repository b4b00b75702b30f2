"""The fake OpenAI-compatible upstream (vLLM / api.openai.com / Ollama modes) is wire-correct:
the official openai SDK, pointed straight at it, parses every answer the way it parses the real
servers'."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from tests.fakes import ChatReply, FakeOpenAI, OpenAIErrorReply, RawStream, tokens
from tests.support import http
from tests.support.fixtures import load_sse, load_sse_json

USER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_TURN: list[dict[str, Any]] = [
    *USER,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
]


def _serve(mode: str) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(mode) as fake:  # type: ignore[arg-type]
        yield fake


@pytest.fixture(scope="module")
def vllm_server() -> Iterator[FakeOpenAI]:
    yield from _serve("vllm")


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    yield from _serve("openai")


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[FakeOpenAI]:
    yield from _serve("ollama")


def _client(fake: FakeOpenAI, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=fake.base_url, api_key=fake.api_key or "none", max_retries=0, timeout=10, **kw
    )


@pytest.fixture
def vllm(vllm_server: FakeOpenAI) -> FakeOpenAI:
    vllm_server.reset()
    return vllm_server


@pytest.fixture
def oai(openai_server: FakeOpenAI) -> FakeOpenAI:
    openai_server.reset()
    return openai_server


@pytest.fixture
def ollama(ollama_server: FakeOpenAI) -> FakeOpenAI:
    ollama_server.reset()
    return ollama_server


@pytest.fixture
def client(vllm: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with _client(vllm) as c:
        yield c


def bad_request(c: openai.OpenAI, **kwargs: Any) -> openai.BadRequestError:
    kwargs.setdefault("model", "qwen3-coder")
    kwargs.setdefault("messages", USER)
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(**kwargs)
    assert err.value.status_code == 400
    return err.value


def auth(fake: FakeOpenAI) -> dict[str, str]:
    return {"authorization": f"Bearer {fake.api_key}"}


# ----------------------------------------------------------------------------- vLLM happy paths


def test_vllm_default_reply(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="qwen3-coder", messages=USER)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.message.content == "Hello from fake vLLM"
    assert choice.message.tool_calls == []  # vLLM sends an empty list, not null
    assert choice.finish_reason == "stop"
    assert choice.model_extra == {"stop_reason": None, "token_ids": None}
    assert r.usage is not None
    assert r.usage.prompt_tokens == vllm.count_prompt_tokens(vllm.last_request.body)
    assert r.usage.completion_tokens == tokens.count_text("Hello from fake vLLM")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_vllm_stream_with_usage(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.enqueue(ChatReply(content="Sunny and 18 degrees.", reasoning="Look it up."))
    chunks = list(
        client.chat.completions.create(
            model="qwen3-coder",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning", "") for c in chunks if c.choices
    )
    assert reasoning == "Look it up."
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Sunny and 18 degrees."
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == vllm.count_prompt_tokens(vllm.last_request.body)


def test_stream_wire_format(vllm: FakeOpenAI) -> None:
    vllm.enqueue(ChatReply(content="Hi there, how are you?", stop_reason="</answer>"))
    body = {"model": "qwen3-coder", "messages": USER, "stream": True}
    resp = http.post(vllm.url + "/v1/chat/completions", body, auth(vllm))
    assert resp.status == 200 and resp.content_type.startswith("text/event-stream")
    assert b"event:" not in resp.body
    frames = resp.body.split(b"\n\n")
    assert frames[-2:] == [b"data: [DONE]", b""]
    events = resp.events()
    assert all(e.event is None for e in events)
    chunks = [e.json() for e in events if not e.is_done]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert all("usage" not in c for c in chunks)  # no include_usage -> no usage at all
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["stop_reason"] == "</answer>"


def test_vllm_tool_calls_stream_accumulator(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.enqueue(
        ChatReply(
            content="Checking.",
            reasoning="Need both tools.",
            tool_calls=[
                ("call_a", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
                (None, "get_time", {"timezone": "Europe/Paris"}),
            ],
        )
    )
    with client.chat.completions.stream(
        model="qwen3-coder",
        messages=USER,
        tools=[WEATHER],
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    msg = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert msg.content == "Checking."
    calls = msg.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert calls[0].id == "call_a" and calls[1].id.startswith("chatcmpl-tool-")
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]
    assert json.loads(calls[1].function.arguments) == {"timezone": "Europe/Paris"}  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.completion_tokens > 0


def test_tool_call_fragments_on_the_wire(vllm: FakeOpenAI) -> None:
    vllm.enqueue(ChatReply(tool_calls=[("call_a", "get_weather", '{"city": "Paris"}')]))
    body = {"model": "qwen3-coder", "messages": USER, "tools": [WEATHER], "stream": True}
    chunks = [
        e.json()
        for e in http.post(vllm.url + "/v1/chat/completions", body, auth(vllm)).events()
        if not e.is_done
    ]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    tool_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert tool_deltas[0] == {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(set(d) == {"index", "function"} for d in tool_deltas[1:])
    assert len(tool_deltas) > 2
    assert "".join(d["function"]["arguments"] for d in tool_deltas) == '{"city": "Paris"}'


def test_reasoning_content_naming() -> None:
    with FakeOpenAI(reasoning_field="reasoning_content") as fake:
        fake.enqueue(ChatReply(content="ok", reasoning="thinking..."))
        r = _client(fake).chat.completions.create(model="qwen3-coder", messages=USER)
    assert (r.choices[0].message.model_extra or {})["reasoning_content"] == "thinking..."


def test_vllm_notes_ignored_fields(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="qwen3-coder",
        messages=USER,
        extra_body={"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}, "foo": 1},
    )
    assert vllm.last_request.notes == [
        "The following fields were present in the request but ignored: {'foo'}"
    ]


# ----------------------------------------------------------------------------- validation


def test_tool_pairing_on_openai(oai: FakeOpenAI) -> None:
    client = _client(oai)
    kw = {"model": "gpt-4.1"}
    msg = bad_request(client, messages=TOOL_TURN[:2], tools=[WEATHER], **kw).message
    assert (
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        "call_1"
    ) in msg
    orphan = [*USER, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]
    assert "messages with role 'tool' must be a response to a preceeding message" in (
        bad_request(client, messages=orphan, **kw).message
    )
    interrupted = [*TOOL_TURN[:2], {"role": "user", "content": "never mind"}, TOOL_TURN[2]]
    bad_request(client, messages=interrupted, tools=[WEATHER], **kw)
    client.chat.completions.create(model="gpt-4.1", messages=TOOL_TURN, tools=[WEATHER])


def test_vllm_does_not_check_tool_pairing(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    # vLLM renders whatever history it gets through the chat template; pairing is not checked
    # at the API layer (vllm/entrypoints/openai/chat_completion/serving.py)
    orphan = [*USER, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]
    unanswered = [*TOOL_TURN[:2], {"role": "user", "content": "never mind"}]
    for messages in (TOOL_TURN[:2], orphan, unanswered):
        r = client.chat.completions.create(model="qwen3-coder", messages=messages)
        assert r.choices[0].message.content == "Hello from fake vLLM"


def test_error_shape_is_vllm(client: openai.OpenAI) -> None:
    err = bad_request(client, tools=[])
    assert err.body == {
        "message": "[] is too short - 'tools'",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }


def test_vllm_flat_errors_of_older_versions(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.vllm_flat_errors = True
    try:
        resp = http.post(
            vllm.base_url + "/chat/completions",
            {"model": "qwen3-coder", "messages": USER, "tools": []},
            auth(vllm),
        )
        assert resp.status == 400
        assert resp.json() == {
            "object": "error",
            "message": "[] is too short - 'tools'",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
        vllm.enqueue(ChatReply(content="partial answer here", error_after=3))
        body = {"model": "qwen3-coder", "messages": USER, "stream": True}
        events = http.post(vllm.url + "/v1/chat/completions", body, auth(vllm)).events()
        assert events[-2].json()["object"] == "error" and events[-1].is_done
    finally:
        vllm.vllm_flat_errors = False


def test_system_must_be_first_on_vllm(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    late_system = [*USER, {"role": "system", "content": "Agents: ..."}]
    err = bad_request(client, messages=late_system)
    assert err.message.endswith("System message must be at the beginning.")
    client.chat.completions.create(
        model="qwen3-coder", messages=[{"role": "system", "content": "Be brief."}, *USER]
    )
    vllm.strict_system_first = False
    try:
        client.chat.completions.create(model="qwen3-coder", messages=late_system)
    finally:
        vllm.strict_system_first = True


def test_consecutive_users_and_strict_alternation(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    twice = [*USER, {"role": "user", "content": "hello?"}]
    client.chat.completions.create(model="qwen3-coder", messages=twice)
    vllm.strict_alternation = True
    try:
        err = bad_request(client, messages=twice)
        assert "Conversation roles must alternate user/assistant/user/assistant/..." in err.message
        client.chat.completions.create(model="qwen3-coder", messages=TOOL_TURN, tools=[WEATHER])
    finally:
        vllm.strict_alternation = False


def test_message_shape_checks(client: openai.OpenAI) -> None:
    as_object = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        TOOL_TURN[2],
    ]
    assert "function.arguments': expected a string, but got an object" in (
        bad_request(client, messages=as_object, tools=[WEATHER]).message
    )
    assert (
        "Invalid value: 'ctx'"
        in bad_request(client, messages=[{"role": "ctx", "content": "x"}]).message
    )
    resp = http.post(
        client.base_url.__str__() + "chat/completions",
        {"messages": USER},
        {"authorization": "Bearer sk-test-openai-key"},
    )
    assert resp.status == 400 and "'model'" in resp.json()["error"]["message"]


def test_context_overflow_wording(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    long_messages = [{"role": "user", "content": "word " * 9000}]
    prompt = vllm.count_prompt_tokens({"messages": long_messages})
    assert 9000 < prompt < 9100
    err = bad_request(client, messages=long_messages, max_tokens=32000)
    assert err.body["message"] == (  # type: ignore[index]
        f"'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's maximum "
        f"context length is 32768 tokens and your request has {prompt} input tokens "
        f"(32000 > 32768 - {prompt}). None"
    )
    client.chat.completions.create(
        model="qwen3-coder", messages=long_messages, max_tokens=32768 - prompt
    )
    huge = [{"role": "user", "content": "word " * 40000}]
    prompt = vllm.count_prompt_tokens({"messages": huge})
    err = bad_request(client, messages=huge)
    assert err.body["message"] == (  # type: ignore[index]
        f"This model's maximum context length is 32768 tokens. However, your request has "
        f"{prompt} input tokens. Please reduce the length of the input messages. None"
    )


def test_unknown_model_and_stream_options(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert err.value.body["message"] == "The model `gpt-4o` does not exist."  # type: ignore[index]
    bad_request(client, stream_options={"include_usage": True})


def test_auto_tool_choice_flag(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.auto_tool_choice = False
    try:
        err = bad_request(client, tools=[WEATHER])
        assert "--enable-auto-tool-choice" in err.message
    finally:
        vllm.auto_tool_choice = True


def test_validation_does_not_consume_queued_replies(
    vllm: FakeOpenAI, client: openai.OpenAI
) -> None:
    vllm.enqueue(ChatReply(content="scripted"))
    bad_request(client, tools=[])
    r = client.chat.completions.create(model="qwen3-coder", messages=USER)
    assert r.choices[0].message.content == "scripted"


# ----------------------------------------------------------------------------- errors, faults


def test_auth_vllm(vllm: FakeOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        openai.OpenAI(base_url=vllm.base_url, api_key="wrong", max_retries=0).models.list()
    assert err.value.body is None or err.value.body == "Unauthorized"
    assert err.value.response.json() == {"error": "Unauthorized"}
    # /health and /tokenize are outside /v1: not protected by --api-key
    assert http.get(vllm.url + "/health").status == 200


def test_scripted_errors(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.enqueue(
        OpenAIErrorReply(429, "Too many requests", headers={"retry-after": "1"}),
        OpenAIErrorReply(500, "boom"),
        OpenAIErrorReply(503, "The server is overloaded"),
        OpenAIErrorReply(502, body=b"<html>bad gateway</html>", content_type="text/html"),
    )
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="qwen3-coder", messages=USER)
    assert err.value.response.headers["retry-after"] == "1"
    assert err.value.body == {
        "message": "Too many requests",
        "type": "RateLimitError",
        "param": None,
        "code": 429,
    }
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="qwen3-coder", messages=USER)
    with pytest.raises(openai.InternalServerError) as err2:
        client.chat.completions.create(model="qwen3-coder", messages=USER)
    assert err2.value.status_code == 503
    with pytest.raises(openai.InternalServerError) as err3:
        client.chat.completions.create(model="qwen3-coder", messages=USER)
    assert err3.value.status_code == 502


def test_mid_stream_error_then_done(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.enqueue(ChatReply(content="partial answer here", error_after=3))
    with pytest.raises(openai.APIError) as err:
        for _ in client.chat.completions.create(model="qwen3-coder", messages=USER, stream=True):
            pass
    assert err.value.message == "The engine encountered an internal error"
    vllm.enqueue(ChatReply(content="partial answer here", error_after=3))
    body = {"model": "qwen3-coder", "messages": USER, "stream": True}
    events = http.post(vllm.url + "/v1/chat/completions", body, auth(vllm)).events()
    assert events[-2].json()["error"]["type"] == "InternalServerError"
    assert events[-1].is_done


def test_stream_cut_and_abort(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.enqueue(ChatReply(content="never finished", cut_after=3))
    body = {"model": "qwen3-coder", "messages": USER, "stream": True}
    events = http.post(vllm.url + "/v1/chat/completions", body, auth(vllm)).events()
    assert len(events) == 3 and not events[-1].is_done
    vllm.enqueue(ChatReply(content="never finished", cut_after=3, cut_mode="abort"))
    with pytest.raises(openai.APIConnectionError):
        for _ in client.chat.completions.create(model="qwen3-coder", messages=USER, stream=True):
            pass


def test_slow_first_byte(vllm: FakeOpenAI) -> None:
    vllm.enqueue(ChatReply(content="late", first_byte_delay=1.0))
    c = openai.OpenAI(base_url=vllm.base_url, api_key=vllm.api_key, max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="qwen3-coder", messages=USER)


# ----------------------------------------------------------------------------- other endpoints


def test_models_tokenize_health(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["qwen3-coder"]
    assert models.data[0].owned_by == "vllm"
    assert (models.data[0].model_extra or {})["max_model_len"] == 32768
    body = {"model": "qwen3-coder", "messages": TOOL_TURN, "tools": [WEATHER]}
    tok = http.post(vllm.url + "/tokenize", {**body, "add_generation_prompt": True}).json()
    assert tok["max_model_len"] == 32768 and len(tok["tokens"]) == tok["count"]
    r = client.chat.completions.create(**body)  # type: ignore[call-overload]
    assert r.usage.prompt_tokens == tok["count"]  # /tokenize agrees with usage
    late = [*USER, {"role": "system", "content": "x"}]
    resp = http.post(vllm.url + "/tokenize", {"model": "qwen3-coder", "messages": late})
    assert resp.status == 400
    health = http.get(vllm.url + "/health")
    assert health.status == 200 and health.body == b""
    assert http.get(vllm.url + "/v1/nope").json() == {"detail": "Not Found"}


def test_legacy_completions(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    r = client.completions.create(model="qwen3-coder", prompt="Say hello", max_tokens=2)
    assert r.object == "text_completion"
    assert r.choices[0].text == "Hello from" and r.choices[0].finish_reason == "length"
    vllm.enqueue(ChatReply(content="streamed completion text"))
    chunks = list(
        client.completions.create(
            model="qwen3-coder",
            prompt="Say hello",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "streamed completion text"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 2


# ----------------------------------------------------------------------------- openai mode


def test_openai_mode_rejects_anthropic_leaks(oai: FakeOpenAI) -> None:
    c = _client(oai)
    for extra, name in [
        ({"top_k": 40}, "top_k"),
        ({"thinking": {"type": "adaptive"}}, "thinking"),
        ({"context_management": {"edits": []}}, "context_management"),
        ({"output_config": {"effort": "high"}}, "output_config"),
    ]:
        err = bad_request(c, model="gpt-4.1", extra_body=extra)
        assert err.body == {
            "message": f"Unrecognized request argument supplied: {name}",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    cached_part = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
        }
    ]
    assert bad_request(c, model="gpt-4.1", messages=cached_part).message.endswith(
        "Additional properties are not allowed ('cache_control' was unexpected) - "
        "'messages.0.content.0'"
    )
    cached_tool = {**WEATHER, "cache_control": {"type": "ephemeral"}}
    bad_request(c, model="gpt-4.1", tools=[cached_tool])
    reasoning_echo = [*USER, {"role": "assistant", "content": "ok", "reasoning_content": "..."}]
    bad_request(c, model="gpt-4.1", messages=reasoning_echo)
    err = bad_request(c, model="gpt-4.1", tools=[])
    assert err.body["message"] == "[] is too short - 'tools'"  # type: ignore[index]
    assert err.body["code"] == "empty_array"  # type: ignore[index]
    long_name = {"type": "function", "function": {"name": "mcp__" + "x" * 70, "parameters": {}}}
    assert "string too long" in bad_request(c, model="gpt-4.1", tools=[long_name]).message
    assert "'tool_choice' is only allowed when 'tools' are specified" in (
        bad_request(c, model="gpt-4.1", tool_choice="auto").message
    )
    late_system = [*USER, {"role": "system", "content": "fine on api.openai.com"}]
    c.chat.completions.create(model="gpt-4.1", messages=late_system)


@pytest.mark.parametrize("model", ["o4-mini", "o3", "gpt-5", "gpt-5-mini"])
def test_openai_reasoning_models_reject_chat_knobs(oai: FakeOpenAI, model: str) -> None:
    oai.accept_any_model = True
    try:
        c = _client(oai)
        assert bad_request(c, model=model, max_tokens=100).body == {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
        assert bad_request(c, model=model, temperature=0.2).body == {
            "message": "Unsupported value: 'temperature' does not support 0.2 with this model. "
            "Only the default (1) value is supported.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "unsupported_value",
        }
        assert bad_request(c, model=model, stop=["END"]).body == {
            "message": "Unsupported parameter: 'stop' is not supported with this model.",
            "type": "invalid_request_error",
            "param": "stop",
            "code": "unsupported_parameter",
        }
        c.chat.completions.create(
            model=model,
            messages=USER,
            max_completion_tokens=100,
            temperature=1,
            reasoning_effort="low",
        )
    finally:
        oai.accept_any_model = False


@pytest.mark.parametrize("model", ["gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-5-chat-latest"])
def test_openai_chat_models_reject_reasoning_effort(oai: FakeOpenAI, model: str) -> None:
    oai.accept_any_model = True
    try:
        c = _client(oai)
        assert bad_request(c, model=model, reasoning_effort="low").body == {
            "message": "Unsupported parameter: 'reasoning_effort' is not supported with this "
            "model.",
            "type": "invalid_request_error",
            "param": "reasoning_effort",
            "code": "unsupported_parameter",
        }
        c.chat.completions.create(
            model=model, messages=USER, max_tokens=100, temperature=0.2, stop=["END"]
        )
    finally:
        oai.accept_any_model = False


def test_openai_mode_auth_and_shapes(oai: FakeOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        openai.OpenAI(
            base_url=oai.base_url, api_key="sk-wrong-key-123", max_retries=0
        ).models.list()
    assert err.value.code == "invalid_api_key"
    c = _client(oai)
    oai.enqueue(ChatReply(content="hi", reasoning="hidden"))
    r = c.chat.completions.create(model="gpt-4.1", messages=USER)
    assert r.system_fingerprint and r.service_tier == "default"
    assert "reasoning" not in (r.choices[0].message.model_extra or {})
    assert (
        r.usage
        and r.usage.prompt_tokens_details
        and r.usage.prompt_tokens_details.cached_tokens == 0
    )
    body = {
        "model": "gpt-4.1",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks = [
        e.json()
        for e in http.post(oai.url + "/v1/chat/completions", body, auth(oai)).events()
        if not e.is_done
    ]
    assert all(c["usage"] is None for c in chunks[:-1])  # "usage": null until the last chunk
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    long = [{"role": "user", "content": "word " * 100}]
    oai.max_model_len = 50
    try:
        err2 = bad_request(c, model="gpt-4.1", messages=long)
        assert err2.code == "context_length_exceeded"
    finally:
        oai.max_model_len = 128000
    assert http.post(oai.url + "/tokenize", {"prompt": "x"}).status == 404
    assert c.models.retrieve("gpt-4.1").owned_by == "system"


# ----------------------------------------------------------------------------- ollama mode


def test_ollama_stream_shape(ollama: FakeOpenAI) -> None:
    c = _client(ollama)
    ollama.enqueue(
        ChatReply(reasoning="Thinking.", tool_calls=[("get_weather", {"city": "Paris"})])
    )
    body = {"model": "qwen3:8b", "messages": USER, "tools": [WEATHER], "stream": True}
    chunks = [
        e.json()
        for e in http.post(ollama.url + "/v1/chat/completions", body).events()
        if not e.is_done
    ]
    with_calls = [c for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert len(with_calls) == 1
    call = with_calls[0]["choices"][0]["delta"]["tool_calls"][0]
    assert call["index"] == 0 and call["function"]["arguments"] == '{"city": "Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # even with a tool call
    assert all(c["choices"] for c in chunks)  # no usage chunk unless asked
    ollama.enqueue(ChatReply(tool_calls=[("get_weather", {"city": "Paris"})]))
    with c.chat.completions.stream(model="qwen3:8b", messages=USER, tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert calls[0].function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "stop"
    assert http.get(ollama.url + "/").body == b"Ollama is running"
    assert http.post(ollama.url + "/tokenize", {"prompt": "x"}).status == 404
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="llama3", messages=USER)


# ----------------------------------------------------------------------------- fixture replay


def test_replay_vllm_reasoning_tools(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.enqueue(RawStream("vllm_stream_reasoning_tools.sse"))
    with client.chat.completions.stream(
        model="qwen3-coder", messages=USER, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_completion()
    msg = final.choices[0].message
    assert msg.content == "Let me check both for you."
    assert (msg.model_extra or {})["reasoning"] == (
        "The user asks for the weather in Paris and the local time. I need both tools."
    )
    calls = msg.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        {"city": "Paris", "unit": "celsius"},
        {"timezone": "Europe/Paris"},
    ]
    assert final.usage is not None and final.usage.total_tokens == 389
    assert load_sse("vllm_stream_reasoning_tools.sse")[-1].is_done


def test_replay_reasoning_content_and_ollama(vllm: FakeOpenAI, client: openai.OpenAI) -> None:
    vllm.enqueue(RawStream("vllm_stream_reasoning_content.sse"))
    chunks = list(client.chat.completions.create(model="qwen3-coder", messages=USER, stream=True))
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "")
        for c in chunks
        if c.choices
    )
    assert reasoning == "Okay, the user wants the file list. I'll call list_files."
    vllm.enqueue(RawStream("ollama_stream_tools.sse"))
    with client.chat.completions.stream(
        model="qwen3-coder", messages=USER, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    assert [c.function.name for c in final.choices[0].message.tool_calls or []] == [  # type: ignore[union-attr]
        "get_weather",
        "get_time",
    ]
    raw = load_sse_json("ollama_stream_tools.sse")
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in raw)


# ----------------------------------------------------------------------------- mistral mode

M_TOOL_TURN: list[dict[str, Any]] = [
    *USER,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "D681PevKs",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "D681PevKs", "content": "18C"},
]
ID_RULE = "Tool call id was {} but must be a-z, A-Z, 0-9, with a length of 9."


@pytest.fixture(scope="module")
def mistral_server() -> Iterator[FakeOpenAI]:
    yield from _serve("mistral")


@pytest.fixture
def mistral(mistral_server: FakeOpenAI) -> FakeOpenAI:
    mistral_server.reset()
    return mistral_server


def _mistral_400(fake: FakeOpenAI, messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    body = {"model": "mistral-large-latest", "messages": messages, **kw}
    resp = http.post(fake.base_url + "/chat/completions", body, auth(fake))
    assert resp.status == 400, resp.body
    got: dict[str, Any] = resp.json()
    return got


def _with_ids(call_id: str, result_id: str) -> list[dict[str, Any]]:
    turn = json.loads(json.dumps(M_TOOL_TURN))
    turn[1]["tool_calls"][0]["id"] = call_id
    turn[2]["tool_call_id"] = result_id
    return turn


def test_mistral_rejects_foreign_tool_call_ids(mistral: FakeOpenAI) -> None:
    # mistral_common MistralRequestValidatorV3._validate_tool_call / _validate_tool_message
    for bad in ("toolu_01A09q90qw90lq917835lq9", "call_abc123", "abcdefgh", "abcdefgh-"):
        assert _mistral_400(mistral, _with_ids(bad, bad)) == {
            "object": "error",
            "message": ID_RULE.format(bad),
            "type": "invalid_function_call",
            "param": None,
            "code": "3280",
        }
    # the tool message is checked too
    assert _mistral_400(mistral, _with_ids("D681PevKs", "call_1"))["message"] == (
        ID_RULE.format("call_1")
    )
    r = _client(mistral).chat.completions.create(
        model="mistral-large-latest", messages=M_TOOL_TURN, tools=[WEATHER]
    )
    assert r.choices[0].message.content == "Hello from fake Mistral"


def test_mistral_message_order_and_counts(mistral: FakeOpenAI) -> None:
    order = {"type": "invalid_request_message_order", "param": None, "code": "3230"}
    after_tool = [*M_TOOL_TURN, {"role": "user", "content": "and tomorrow?"}]
    assert _mistral_400(mistral, after_tool) == {
        "object": "error",
        "message": "Unexpected role 'user' after role 'tool'",
        **order,
    }
    unanswered = [*M_TOOL_TURN[:2], {"role": "assistant", "content": "x"}, *USER]
    assert _mistral_400(mistral, unanswered)["message"] == (
        "Not the same number of function calls and responses"
    )
    ends_with_assistant = [*USER, {"role": "assistant", "content": "Sure"}]
    assert _mistral_400(mistral, ends_with_assistant)["message"] == (
        "Expected last role User or Tool (or Assistant with prefix or continue_final_message set "
        "to True) for serving but got assistant"
    )
    prefixed = [*USER, {"role": "assistant", "content": "Sure", "prefix": True}]
    r = _client(mistral).chat.completions.create(
        model="mistral-large-latest",
        messages=prefixed,  # type: ignore[arg-type]
    )
    assert r.choices[0].finish_reason == "stop"


def test_mistral_rejects_unknown_inputs_with_422(mistral: FakeOpenAI) -> None:
    body = {
        "model": "mistral-large-latest",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    resp = http.post(mistral.base_url + "/chat/completions", body, auth(mistral))
    assert resp.status == 422
    assert resp.json() == {
        "object": "error",
        "message": {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "stream_options", "include_usage"],
                    "msg": "Extra inputs are not permitted",
                    "input": True,
                }
            ]
        },
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    body = {"model": "mistral-large-latest", "messages": USER, "max_completion_tokens": 10}
    resp = http.post(mistral.base_url + "/chat/completions", body, auth(mistral))
    assert resp.status == 422
    assert resp.json()["message"]["detail"][0]["loc"] == ["body", "max_completion_tokens"]
    leaked = [*USER, {"role": "assistant", "content": "a", "reasoning": "hmm"}, *USER]
    body = {"model": "mistral-large-latest", "messages": leaked}
    resp = http.post(mistral.base_url + "/chat/completions", body, auth(mistral))
    assert resp.status == 422
    assert resp.json()["message"]["detail"][0]["loc"] == [
        "body",
        "messages",
        1,
        "assistant",
        "reasoning",
    ]


def test_mistral_answers_parse_with_the_sdk(mistral: FakeOpenAI) -> None:
    client = _client(mistral)
    mistral.enqueue(ChatReply(content="Checking.", tool_calls=[("get_weather", {"city": "Oslo"})]))
    r = client.chat.completions.create(model="mistral-large-latest", messages=USER, tools=[WEATHER])
    tc = (r.choices[0].message.tool_calls or [])[0]
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", tc.id)
    assert r.id.startswith("cmpl-") and r.choices[0].finish_reason == "tool_calls"
    mistral.enqueue(ChatReply(content="Checking.", tool_calls=[("get_weather", {"city": "Oslo"})]))
    chunks = list(
        client.chat.completions.create(
            model="mistral-large-latest", messages=USER, tools=[WEATHER], stream=True
        )
    )
    calls = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(calls) == 1  # whole calls in one delta
    whole = (calls[0].choices[0].delta.tool_calls or [])[0]
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", whole.id or "")
    assert json.loads(whole.function.arguments or "") == {"city": "Oslo"}  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_mistral_auth_and_model(mistral: FakeOpenAI) -> None:
    resp = http.post(mistral.base_url + "/chat/completions", {"model": "x", "messages": USER})
    assert resp.status == 401 and resp.json()["message"] == "Unauthorized"
    err = _mistral_400(mistral, USER, model="mistral-huge")
    assert err == {
        "object": "error",
        "message": "Invalid model: mistral-huge",
        "type": "invalid_model",
        "param": None,
        "code": "1500",
    }


def test_vllm_with_the_mistral_tokenizer() -> None:
    with FakeOpenAI("vllm", models=["mistralai/Devstral-Small-2505"], mistral_tokenizer=True) as f:
        body = {"model": "mistralai/Devstral-Small-2505", "messages": _with_ids("call_1", "call_1")}
        resp = http.post(f.base_url + "/chat/completions", body, auth(f))
        assert resp.status == 400
        assert resp.json() == {
            "error": {
                "message": ID_RULE.format("call_1"),
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        }
        f.enqueue(ChatReply(tool_calls=[("get_weather", {"city": "Oslo"})]))
        r = _client(f).chat.completions.create(
            model="mistralai/Devstral-Small-2505", messages=M_TOOL_TURN, tools=[WEATHER]
        )
        tc = (r.choices[0].message.tool_calls or [])[0]
        assert re.fullmatch(r"[a-zA-Z0-9]{9}", tc.id)


# ----------------------------------------------------------------------------- DeepSeek mode


@pytest.fixture(scope="module")
def deepseek_server() -> Iterator[FakeOpenAI]:
    yield from _serve("deepseek")


@pytest.fixture
def deepseek(deepseek_server: FakeOpenAI) -> FakeOpenAI:
    deepseek_server.reset()
    return deepseek_server


DS_TOOL_TURN: list[dict[str, Any]] = [
    *USER,
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_00_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_00_abc", "content": "18C"},
]


def _ds_error(fake: FakeOpenAI, body: dict[str, Any]) -> Any:
    r = http.post(fake.base_url + "/chat/completions", body, auth(fake))
    assert r.status == 400, r.body
    return r.json()


def test_deepseek_thinking_mode_answers_with_reasoning_content(deepseek: FakeOpenAI) -> None:
    """Thinking mode (the default on deepseek-v4-*) always thinks, in ``reasoning_content``,
    streamed and not; ``thinking: disabled`` and ``deepseek-chat`` never show any."""
    c = _client(deepseek)
    r = c.chat.completions.create(model="deepseek-v4-pro", messages=USER)  # type: ignore[arg-type]
    msg = r.choices[0].message
    assert msg.model_extra == {"reasoning_content": "Let me think about this."}
    assert msg.content == "Hello from fake DeepSeek"
    assert r.usage is not None and r.usage.model_extra["prompt_cache_miss_tokens"] > 0
    chunks = list(
        c.chat.completions.create(
            model="deepseek-v4-flash",
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    thought = "".join(
        (ch.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for ch in chunks
        if ch.choices
    )
    assert thought == "Let me think about this."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    for model, extra in (
        ("deepseek-chat", {}),
        ("deepseek-v4-pro", {"thinking": {"type": "disabled"}}),
    ):
        r = c.chat.completions.create(model=model, messages=USER, extra_body=extra)  # type: ignore[arg-type]
        assert "reasoning_content" not in (r.choices[0].message.model_extra or {})


def test_deepseek_rejects_effort_with_thinking_disabled(deepseek: FakeOpenAI) -> None:
    """What Claude Code's subagents would send (thinking off + an effort): DeepSeek's 400."""
    body = {
        "model": "deepseek-v4-pro",
        "messages": USER,
        "thinking": {"type": "disabled"},
        "reasoning_effort": "high",
    }
    assert _ds_error(deepseek, body) == {
        "error": {
            "message": "thinking options type cannot be disabled when reasoning_effort is set",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request_error",
        }
    }
    ok = http.post(
        deepseek.base_url + "/chat/completions",
        {**body, "thinking": {"type": "enabled"}},
        auth(deepseek),
    )
    assert ok.status == 200
    del body["reasoning_effort"]
    assert http.post(deepseek.base_url + "/chat/completions", body, auth(deepseek)).status == 200


def test_deepseek_requires_reasoning_content_back_on_tool_turns(deepseek: FakeOpenAI) -> None:
    """Thinking mode: an assistant turn with tool calls must carry ``reasoning_content`` (an
    empty string will do); outside thinking mode it need not."""
    body = {"model": "deepseek-v4-pro", "messages": DS_TOOL_TURN, "tools": [WEATHER]}
    assert _ds_error(deepseek, body) == {
        "error": {
            "message": "The `reasoning_content` in the thinking mode must be passed back to the "
            "API.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request_error",
        }
    }
    # a reasoning field under another name does not count
    other = [DS_TOOL_TURN[0], {**DS_TOOL_TURN[1], "reasoning": "x"}, DS_TOOL_TURN[2]]
    assert _ds_error(deepseek, {**body, "messages": other})["error"]["message"].startswith(
        "The `reasoning_content`"
    )
    # every assistant message of a turn that called tools, the final answer too, later on
    called = {**DS_TOOL_TURN[1], "reasoning_content": "Call it."}
    answer = {"role": "assistant", "content": "18C."}
    later = [DS_TOOL_TURN[0], called, DS_TOOL_TURN[2], answer, {"role": "user", "content": "ok"}]
    assert _ds_error(deepseek, {**body, "messages": later})["error"]["message"].startswith(
        "The `reasoning_content`"
    )
    chat_only = [*USER, answer, {"role": "user", "content": "ok"}]  # no tools in that turn
    for msgs, extra in (
        ([DS_TOOL_TURN[0], called, DS_TOOL_TURN[2], {**answer, "reasoning_content": ""}], {}),
        (chat_only, {}),
        (
            [
                DS_TOOL_TURN[0],
                {**DS_TOOL_TURN[1], "reasoning_content": "Call it."},
                DS_TOOL_TURN[2],
            ],
            {},
        ),
        ([DS_TOOL_TURN[0], {**DS_TOOL_TURN[1], "reasoning_content": ""}, DS_TOOL_TURN[2]], {}),
        (DS_TOOL_TURN, {"thinking": {"type": "disabled"}}),
        (DS_TOOL_TURN, {"model": "deepseek-chat"}),
    ):
        r = http.post(
            deepseek.base_url + "/chat/completions",
            {**body, "messages": msgs, **extra},
            auth(deepseek),
        )
        assert r.status == 200, (extra, r.body)


def test_deepseek_auth_and_unknown_model(deepseek: FakeOpenAI) -> None:
    r = http.post(
        deepseek.base_url + "/chat/completions",
        {"model": "deepseek-v4-pro", "messages": USER},
        {"authorization": "Bearer sk-wrong-key-1234"},
    )
    assert r.status == 401
    assert r.json()["error"] == {
        "message": "Authentication Fails, Your api key: ****1234 is invalid",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_request_error",
    }
    r = http.post(
        deepseek.base_url + "/chat/completions", {"model": "deepseek-v4-pro", "messages": USER}
    )
    assert r.status == 401 and r.json()["error"]["message"] == (
        "Authentication Fails (auth header format should be Bearer sk-...)"
    )
    err = _ds_error(deepseek, {"model": "deepseek-v9", "messages": USER})
    assert err["error"]["message"] == "Model Not Exist"


# ----------------------------------------------------------------------------- detection


def test_detection_endpoints_per_mode() -> None:
    """Each mode answers what dragoman's flavor detection asks, as the real server does; the
    probes are recorded apart from the generation requests."""
    with FakeOpenAI("vllm", max_model_len=4096) as f:
        assert http.get(f.url + "/version").json() == {"version": "0.11.0"}
        m = http.get(f.base_url + "/models", auth(f)).json()["data"][0]
        assert (m["owned_by"], m["max_model_len"]) == ("vllm", 4096)
        assert [p.path for p in f.probes] == ["/version", "/v1/models"] and f.requests == []
    with FakeOpenAI("sglang") as f:
        info = http.get(f.url + "/get_server_info").json()
        assert info["version"] == "0.5.4" and info["context_length"] == 40960
        m = http.get(f.base_url + "/models", auth(f)).json()["data"][0]
        assert (m["owned_by"], m["max_model_len"]) == ("sglang", 40960)
        assert http.get(f.url + "/version").status == 404
    with FakeOpenAI("ollama", max_model_len=16384) as f:
        assert http.get(f.url + "/api/version").json() == {"version": "0.12.6"}
        show = http.post(f.url + "/api/show", {"model": "qwen3:8b"}).json()
        assert show["model_info"]["qwen3.context_length"] == 16384
        missing = http.post(f.url + "/api/show", {"model": "nope"})
        assert missing.status == 404 and missing.json() == {"error": "model 'nope' not found"}
    with FakeOpenAI("llamacpp") as f:
        props = http.get(f.url + "/props").json()
        assert props["default_generation_settings"]["n_ctx"] == 8192
        assert props["build_info"] == "b6700-5e4b1b4"
        assert http.get(f.base_url + "/models", auth(f)).json()["data"][0]["owned_by"] == "llamacpp"
    with FakeOpenAI("vllm", detectable=False) as f:
        assert http.get(f.url + "/version").status == 404
        m = http.get(f.base_url + "/models", auth(f)).json()["data"][0]
        assert m["owned_by"] == "organization" and "max_model_len" not in m


def test_new_modes_error_shapes() -> None:
    """SGLang's errors are not wrapped in ``error``; llama.cpp's carry an integer code and
    refuse a prompt longer than the slot's context."""
    with FakeOpenAI("sglang") as f:
        r = http.post(f.base_url + "/chat/completions", {"model": "x", "messages": USER}, auth(f))
        assert r.status == 404
        assert r.json() == {
            "object": "error",
            "message": "The model `x` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    with FakeOpenAI("llamacpp", max_model_len=64) as f:
        long = [{"role": "user", "content": "word " * 200}]
        body = {"model": "qwen3-8b-q4_k_m.gguf", "messages": long}
        r = http.post(f.base_url + "/chat/completions", body, auth(f))
        assert r.status == 400
        err = r.json()["error"]
        assert err["type"] == "exceed_context_size_error" and err["code"] == 400
        assert "exceeds the available context size (64 tokens)" in err["message"]
