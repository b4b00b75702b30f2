"""The fake Anthropic upstream is wire-correct: the official SDK, pointed straight at it, parses
every answer (JSON, SSE, errors) the way it parses api.anthropic.com's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from tests.fakes import (
    ErrorReply,
    FakeAnthropic,
    RawStream,
    Reply,
    error_reply,
    text_block,
    thinking_block,
    tokens,
    tool_use_block,
)
from tests.fakes.anthropic_upstream import BETA_CONTEXT_MANAGEMENT, BETA_MID_CONV_SYSTEM
from tests.support import http
from tests.support.fixtures import load_json, load_request, load_sse

MODEL = "claude-sonnet-4-6"
USER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropic) -> FakeAnthropic:
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=fake.url, api_key=fake.api_key, max_retries=0, timeout=10
    ) as c:
        yield c


def headers(fake: FakeAnthropic, **extra: str) -> dict[str, str]:
    return {"x-api-key": fake.api_key, "anthropic-version": "2023-06-01", **extra}


def raw_messages(fake: FakeAnthropic, body: dict[str, Any], **extra: str) -> http.RawResponse:
    return http.post(fake.url + "/v1/messages", body, headers(fake, **extra))


def error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    assert isinstance(body, dict)
    return body["error"]["message"]


# ----------------------------------------------------------------------------- happy paths


def test_default_reply_non_streaming(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=USER)
    msg = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert msg.type == "message" and msg.role == "assistant" and msg.model == MODEL
    assert msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Hello from fake Anthropic"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    body = fake.last_request.body
    assert msg.usage.input_tokens == fake.count_tokens(body) == tokens.anthropic_input_tokens(body)
    assert msg.usage.output_tokens == tokens.count_text("Hello from fake Anthropic")
    assert msg.usage.cache_read_input_tokens == 0 and msg.usage.cache_creation_input_tokens == 0


def test_requests_are_recorded(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    client.beta.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=USER,
        betas=["interleaved-thinking-2025-05-14"],
        extra_query={"beta": "true"},  # what Claude Code sends
    )
    rec = fake.last_request
    assert (rec.method, rec.path, rec.query) == ("POST", "/v1/messages", {"beta": "true"})
    assert rec.header("anthropic-beta") == "interleaved-thinking-2025-05-14"
    assert rec.body["messages"] == USER and rec.status == 200
    assert fake.requests_to("/v1/messages") == [rec]


def test_scripted_tool_use_and_thinking(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(
        Reply(
            content=[
                thinking_block("The user wants the weather."),
                text_block("Let me check."),
                tool_use_block("get_weather", {"city": "Paris"}, id="toolu_01abc"),
            ],
            usage={"cache_read_input_tokens": 2048},
        )
    )
    msg = client.messages.create(
        model=MODEL,
        max_tokens=4096,
        messages=USER,
        tools=[WEATHER_TOOL],
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.stop_reason == "tool_use"
    thinking, _, tool = msg.content
    assert thinking.signature in fake.issued_signatures  # type: ignore[union-attr]
    assert tool.id == "toolu_01abc" and tool.input == {"city": "Paris"}  # type: ignore[union-attr]
    assert msg.usage.cache_read_input_tokens == 2048


def test_stream_accumulates_like_the_real_api(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.enqueue(
        Reply(
            content=[
                thinking_block("I should call the weather tool for Paris."),
                text_block("Checking the weather in Paris for you."),
                tool_use_block("get_weather", {"city": "Paris", "unit": "celsius"}),
            ]
        )
    )
    with client.messages.stream(
        model=MODEL, max_tokens=4096, messages=USER, tools=[WEATHER_TOOL]
    ) as stream:
        texts = list(stream.text_stream)
        msg = stream.get_final_message()
    assert len(texts) > 1 and "".join(texts) == "Checking the weather in Paris for you."
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[0].thinking == "I should call the weather tool for Paris."  # type: ignore[union-attr]
    assert msg.content[0].signature in fake.issued_signatures  # type: ignore[union-attr]
    assert msg.content[2].input == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]
    assert msg.stop_reason == "tool_use"
    assert msg.usage.input_tokens == fake.count_tokens(fake.last_request.body)


def test_stream_wire_format(fake: FakeAnthropic) -> None:
    fake.enqueue(
        Reply(
            content=[
                thinking_block("Think."),
                text_block("Hello there, general Kenobi."),
                tool_use_block("get_weather", {"city": "Paris"}),
                tool_use_block("get_weather", {}),
            ]
        )
    )
    resp = raw_messages(fake, {"model": MODEL, "max_tokens": 100, "messages": USER, "stream": True})
    assert resp.status == 200
    assert resp.content_type.startswith("text/event-stream")
    assert resp.headers["request-id"].startswith("req_")
    # every frame is "event: X\ndata: {...}\n\n" with data.type == X
    frames = resp.body.split(b"\n\n")
    assert frames[-1] == b""
    for frame in frames[:-1]:
        lines = frame.split(b"\n")
        assert (
            len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
        )
    events = resp.events()
    assert all(e.event == e.json()["type"] for e in events)
    names = [e.event for e in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    start = events[0].json()["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1
    assert {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"} <= set(
        start["usage"]
    )
    blocks: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        data = e.json()
        if e.event == "content_block_start":
            assert data["index"] == len(blocks)  # indices 0,1,2... in start order
            blocks[data["index"]] = [data["content_block"]]
        elif e.event == "content_block_delta":
            assert data["index"] == max(blocks)  # sequential blocks
            blocks[data["index"]].append(data["delta"])
    thinking, text, tool, empty_tool = blocks.values()
    assert thinking[0] == {"type": "thinking", "thinking": "", "signature": ""}
    assert [d["type"] for d in thinking[1:]][-1] == "signature_delta"
    assert text[0] == {"type": "text", "text": ""} and len(text) > 3
    assert tool[0]["input"] == {} and tool[1] == {"type": "input_json_delta", "partial_json": ""}
    assert "".join(d["partial_json"] for d in tool[1:]) == '{"city": "Paris"}'
    assert empty_tool[1:] == [{"type": "input_json_delta", "partial_json": ""}]
    final = events[-2].json()
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"]["output_tokens"] > 1


def test_default_reply_respects_max_tokens(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model=MODEL, max_tokens=1, messages=USER)
    assert msg.stop_reason == "max_tokens"
    assert msg.content[0].text == "Hello"  # type: ignore[union-attr]
    assert msg.usage.output_tokens == 1


def test_callable_reply_sees_the_request(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(lambda req: Reply(content=f"you said {len(req.body['messages'])} message(s)"))
    msg = client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert msg.content[0].text == "you said 1 message(s)"  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- count, models


def test_count_tokens_matches_usage(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "messages": USER,
        "system": "Be brief.",
        "tools": [WEATHER_TOOL],
    }
    counted = client.messages.count_tokens(**kwargs)
    msg = client.messages.create(max_tokens=20, **kwargs)
    assert counted.input_tokens == msg.usage.input_tokens > 0
    assert fake.requests_to("/v1/messages/count_tokens")[0].body == kwargs


def test_count_tokens_rejects_generation_knobs(fake: FakeAnthropic) -> None:
    resp = http.post(
        fake.url + "/v1/messages/count_tokens",
        {"model": MODEL, "messages": USER, "max_tokens": 10},
        headers(fake),
    )
    assert resp.status == 400
    assert resp.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"


def test_models(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == ["claude-opus-4-8", "claude-sonnet-4-6"]
    assert page.has_more
    everything = [m.id for m in client.models.list(limit=2)]  # auto-pagination via after_id
    assert everything == [m["id"] for m in fake.models]
    model = client.models.retrieve("claude-haiku-4-5-20251001")
    assert model.display_name == "Claude Haiku 4.5" and model.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")


# ----------------------------------------------------------------------------- auth


def test_wrong_api_key(fake: FakeAnthropic) -> None:
    bad = anthropic.Anthropic(base_url=fake.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        bad.messages.create(model=MODEL, max_tokens=10, messages=USER)
    body = err.value.body
    assert body["type"] == "error" and body["request_id"].startswith("req_")  # type: ignore[index]
    assert body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}  # type: ignore[index]


def test_x_api_key_and_version_header(fake: FakeAnthropic) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": USER}
    assert raw_messages(fake, body).status == 200
    resp = http.post(fake.url + "/v1/messages", body, {"x-api-key": fake.api_key})
    assert resp.status == 400 and resp.headers["request-id"].startswith("req_")
    assert resp.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    assert http.post(fake.url + "/v1/messages", body, {}).status == 401


def test_bearer_can_be_refused(fake: FakeAnthropic) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": USER}
    bearer = {"authorization": f"Bearer {fake.api_key}", "anthropic-version": "2023-06-01"}
    assert http.post(fake.url + "/v1/messages", body, bearer).status == 200
    fake.accept_bearer = False
    try:
        assert http.post(fake.url + "/v1/messages", body, bearer).status == 401
    finally:
        fake.accept_bearer = True


# ----------------------------------------------------------------------------- validation


def _bad(client: anthropic.Anthropic, **kwargs: Any) -> str:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("max_tokens", 100)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(**kwargs)
    assert err.value.status_code == 400
    assert err.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    return error_message(err.value)


def test_required_fields(fake: FakeAnthropic) -> None:
    resp = raw_messages(fake, {"model": MODEL, "messages": USER})
    assert resp.status == 400
    assert resp.json()["error"]["message"] == "max_tokens: Field required"
    resp = raw_messages(fake, {"max_tokens": 5, "messages": USER})
    assert resp.json()["error"]["message"] == "model: Field required"


def test_unknown_top_level_key(client: anthropic.Anthropic) -> None:
    msg = _bad(client, messages=USER, extra_body={"reasoning_effort": "high"})
    assert msg == "reasoning_effort: Extra inputs are not permitted"


def test_known_top_level_keys_are_accepted(client: anthropic.Anthropic) -> None:
    client.messages.create(
        model=MODEL,
        max_tokens=2000,
        messages=USER,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        metadata={"user_id": '{"device_id":"abc","session_id":"x"}'},
        stop_sequences=["\n\nHuman:"],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        service_tier="auto",
        output_config={"effort": "high"},
        cache_control={"type": "ephemeral"},
        # sampling knobs are no longer in SDK 2.x's signature, but the API still takes them
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},
    )
    client.messages.create(
        model=MODEL,
        max_tokens=2000,
        messages=USER,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto"},
        thinking={"type": "adaptive"},
        extra_body={"temperature": 1, "top_p": 0.95},
    )


def test_empty_text_block(client: anthropic.Anthropic) -> None:
    msg = _bad(client, messages=[{"role": "user", "content": [{"type": "text", "text": " "}]}])
    assert msg == "messages: text content blocks must be non-empty"


def test_tool_use_without_result(client: anthropic.Anthropic) -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_x", "name": "get_weather", "input": {}},
            ],
        },
        {"role": "user", "content": "and?"},
    ]
    assert _bad(client, messages=messages, tools=[WEATHER_TOOL]) == (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_x. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message."
    )


def test_tool_result_must_come_first(client: anthropic.Anthropic) -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_x", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "here you go"},
                {"type": "tool_result", "tool_use_id": "toolu_x", "content": "18C"},
            ],
        },
    ]
    assert "`tool_use` ids were found without `tool_result`" in _bad(
        client, messages=messages, tools=[WEATHER_TOOL]
    )
    messages[2]["content"].reverse()  # type: ignore[attr-defined]
    client.messages.create(model=MODEL, max_tokens=10, messages=messages, tools=[WEATHER_TOOL])


def test_unexpected_tool_result(client: anthropic.Anthropic) -> None:
    messages = [
        *USER,
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_y"}]},
    ]
    assert _bad(client, messages=messages) == (
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_y. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
        "message."
    )


def test_mid_conversation_system_needs_the_beta(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [*USER, {"role": "system", "content": "Agents: general-purpose"}]
    assert (
        _bad(client, messages=messages) == "messages.1.role: Input should be 'user' or 'assistant'"
    )
    client.beta.messages.create(
        model=MODEL, max_tokens=10, messages=messages, betas=[BETA_MID_CONV_SYSTEM]
    )


def test_context_management_needs_the_beta(client: anthropic.Anthropic) -> None:
    cm = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    assert (
        _bad(client, messages=USER, extra_body={"context_management": cm})
        == "context_management: Extra inputs are not permitted"
    )
    client.beta.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=USER,
        betas=[BETA_CONTEXT_MANAGEMENT],
        extra_body={"context_management": cm},
    )


def test_unknown_block_keys_and_types(client: anthropic.Anthropic) -> None:
    leaked = [{"role": "user", "content": [{"type": "text", "text": "hi", "name": "bob"}]}]
    assert _bad(client, messages=leaked) == (
        "messages.0.content.0.text.name: Extra inputs are not permitted"
    )
    odd = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert _bad(client, messages=odd).startswith(
        "messages.0.content.0: Input tag 'image_url' found using 'type'"
    )
    assert _bad(client, messages=[{"role": "tool", "content": "x"}]).startswith(
        "messages.0.role: Input should be"
    )


def test_thinking_signatures_must_be_issued_by_the_fake(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.enqueue(
        Reply(content=[thinking_block("hmm"), tool_use_block("get_weather", {"city": "Paris"})])
    )
    first = client.messages.create(
        model=MODEL,
        max_tokens=4096,
        messages=USER,
        tools=[WEATHER_TOOL],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    history = [
        *USER,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": first.content[1].id, "content": "18C"}  # type: ignore[union-attr]
            ],
        },
    ]
    client.messages.create(model=MODEL, max_tokens=100, messages=history, tools=[WEATHER_TOOL])
    history[1]["content"][0]["signature"] = "gw1.synthetic-signature"  # type: ignore[index]
    assert _bad(client, messages=history, tools=[WEATHER_TOOL]) == (
        "messages.1.content.0: Invalid `signature` in `thinking` block"
    )


def test_thinking_budget_rules(client: anthropic.Anthropic) -> None:
    assert _bad(
        client, max_tokens=1024, messages=USER, thinking={"type": "enabled", "budget_tokens": 1024}
    ).startswith("`max_tokens` must be greater than `thinking.budget_tokens`")
    assert _bad(
        client, max_tokens=4096, messages=USER, thinking={"type": "enabled", "budget_tokens": 100}
    ) == ("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")


# ---- thinking in use (sources: tests/fakes/README.md, "Where each rule comes from")

CONSIDER = (
    " Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/"
    "extended-thinking#important-considerations-when-using-extended-thinking"
)
ENABLED = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("thinking", [ENABLED, {"type": "adaptive"}], ids=["enabled", "adaptive"])
def test_thinking_rejects_sampling_knobs(client: anthropic.Anthropic, thinking: Any) -> None:
    kw: dict[str, Any] = {"max_tokens": 4096, "messages": USER, "thinking": thinking}
    assert _bad(client, extra_body={"temperature": 0.7}, **kw) == (
        "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode."
        + CONSIDER
    )
    assert _bad(client, extra_body={"top_k": 40}, **kw) == (
        "`top_k` must be unset when thinking is enabled." + CONSIDER
    )
    assert _bad(client, extra_body={"top_p": 0.9}, **kw) == (
        "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."
        + CONSIDER
    )
    client.messages.create(model=MODEL, extra_body={"temperature": 1, "top_p": 0.95}, **kw)
    # without thinking the same knobs are fine
    client.messages.create(
        model=MODEL, max_tokens=10, messages=USER, extra_body={"temperature": 0.7, "top_k": 40}
    )


def test_forced_tool_choice_only_with_manual_thinking(client: anthropic.Anthropic) -> None:
    for choice in ({"type": "any"}, {"type": "tool", "name": "get_weather"}):
        assert (
            _bad(
                client,
                max_tokens=4096,
                messages=USER,
                tools=[WEATHER_TOOL],
                tool_choice=choice,
                thinking=ENABLED,
            )
            == "Thinking may not be enabled when tool_choice forces tool use."
        )
    for thinking in (ENABLED, {"type": "adaptive"}):
        client.messages.create(
            model=MODEL,
            max_tokens=4096,
            messages=USER,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "auto"},
            thinking=thinking,  # type: ignore[arg-type]
        )
    # adaptive thinking takes a forced tool choice
    client.messages.create(
        model=MODEL,
        max_tokens=4096,
        messages=USER,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        thinking={"type": "adaptive"},
    )


def _loop(fake: FakeAnthropic, with_thinking: bool) -> list[dict[str, Any]]:
    first: list[dict[str, Any]] = []
    if with_thinking:
        first.append({"type": "thinking", "thinking": "hmm", "signature": fake.issue_signature()})
    first.append({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}})
    return [
        *USER,
        {"role": "assistant", "content": first},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}],
        },
    ]


def test_a_tool_loop_under_thinking_starts_with_thinking(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    kw: dict[str, Any] = {"max_tokens": 4096, "tools": [WEATHER_TOOL]}
    assert _bad(client, messages=_loop(fake, False), thinking=ENABLED, **kw) == (
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        "`tool_use`. When `thinking` is enabled, a final `assistant` message must start with a "
        "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
        "recommend you include thinking blocks from previous turns. To avoid this requirement, "
        "disable `thinking`. Please consult our documentation at "
        "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    )
    assert _bad(
        client, messages=_loop(fake, False), thinking={"type": "adaptive"}, **kw
    ).startswith("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`")
    client.messages.create(model=MODEL, messages=_loop(fake, True), thinking=ENABLED, **kw)  # type: ignore[arg-type]
    client.messages.create(model=MODEL, messages=_loop(fake, False), **kw)  # type: ignore[arg-type]
    redacted = _loop(fake, False)
    redacted[1]["content"].insert(0, {"type": "redacted_thinking", "data": "EmwKAhgB"})
    client.messages.create(model=MODEL, messages=redacted, thinking=ENABLED, **kw)  # type: ignore[arg-type]
    # a new user turn ends the loop: earlier turns need no thinking
    done = [*_loop(fake, False), {"role": "assistant", "content": "18C."}, *USER]
    client.messages.create(model=MODEL, messages=done, thinking=ENABLED, **kw)  # type: ignore[arg-type]
    # the loop's first assistant message is what counts (interleaved thinking)
    use2 = {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}
    result2 = {"type": "tool_result", "tool_use_id": "toolu_2", "content": "19C"}
    longer = [
        *_loop(fake, True),
        {"role": "assistant", "content": [use2]},
        {"role": "user", "content": [result2]},
    ]
    client.messages.create(model=MODEL, messages=longer, thinking=ENABLED, **kw)  # type: ignore[arg-type]


def test_thinking_blocks_placement(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    sig = fake.issue_signature()
    thought = {"type": "thinking", "thinking": "hmm", "signature": sig}
    late = [
        *USER,
        {"role": "assistant", "content": [{"type": "text", "text": "So"}, thought]},
        *USER,
    ]
    assert _bad(client, max_tokens=4096, messages=late, thinking=ENABLED) == (
        "messages.1.content.0: If an assistant message contains any thinking blocks, the first "
        "block must be thinking or redacted_thinking. Found text."
    )
    prefill = [*USER, {"role": "assistant", "content": [thought]}]
    assert _bad(client, max_tokens=4096, messages=prefill, thinking=ENABLED) == (
        "messages.1: The final block in an assistant message cannot be `thinking`."
    )
    prefill_text = [
        *USER,
        {"role": "assistant", "content": [thought, {"type": "text", "text": "Sure"}]},
    ]
    client.messages.create(model=MODEL, max_tokens=4096, messages=prefill_text, thinking=ENABLED)  # type: ignore[arg-type]
    assert _bad(client, max_tokens=4096, messages=prefill_text) == (
        "messages.1.content.0: When thinking is disabled, an `assistant` message in the final "
        "position cannot contain `thinking`. To use thinking blocks, enable `thinking` in your "
        "request."
    )
    assert _bad(
        client, max_tokens=4096, messages=prefill_text, thinking={"type": "disabled"}
    ).startswith("messages.1.content.0: When thinking is disabled")
    # thinking in an earlier turn is fine without thinking on
    earlier = [*prefill_text, *USER]
    client.messages.create(model=MODEL, max_tokens=100, messages=earlier)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "cap", "full"),
    [
        ("claude-sonnet-4-5", 64_000, "claude-sonnet-4-5-20250929"),
        ("claude-sonnet-4-5-20250929", 64_000, "claude-sonnet-4-5-20250929"),
        ("claude-opus-4-1-20250805", 32_000, "claude-opus-4-1-20250805"),
        ("claude-haiku-4-5", 64_000, "claude-haiku-4-5-20251001"),
        ("claude-opus-4-8", 128_000, "claude-opus-4-8"),
    ],
)
def test_max_tokens_cap_per_model(
    client: anthropic.Anthropic, model: str, cap: int, full: str
) -> None:
    assert _bad(client, model=model, max_tokens=cap + 1, messages=USER) == (
        f"max_tokens: {cap + 1} > {cap}, which is the maximum allowed number of output tokens "
        f"for {full}"
    )
    client.messages.create(model=model, max_tokens=cap, messages=USER)


def test_context_window(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    big = [{"role": "user", "content": "word " * 200_000}]
    n = fake.count_tokens({"messages": big})
    assert 200_000 < n < 1_000_000
    assert _bad(client, model="claude-sonnet-4-5", messages=big) == (
        f"prompt is too long: {n} tokens > 200000 maximum"
    )
    # the 1M window: models that have it, or the beta on the models that allow it
    client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=big)  # type: ignore[arg-type]
    client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=10,
        messages=big,  # type: ignore[arg-type]
        extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
    )
    assert _bad(
        client,
        model="claude-haiku-4-5",
        messages=big,
        extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
    ).startswith("prompt is too long:")


def test_strict_models_accept_aliases(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.strict_models = True
    try:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=USER)
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="claude-sonnet-9", max_tokens=10, messages=USER)
    finally:
        fake.strict_models = False


def test_at_most_four_cache_breakpoints(client: anthropic.Anthropic) -> None:
    cc = {"type": "ephemeral"}
    system = [{"type": "text", "text": f"part {i}", "cache_control": cc} for i in range(5)]
    assert _bad(client, messages=USER, system=system) == (
        "A maximum of 4 blocks with cache_control may be provided. Found 5."
    )


def test_temperature_and_tool_name(client: anthropic.Anthropic) -> None:
    assert _bad(client, messages=USER, extra_body={"temperature": 1.5}) == (
        "temperature: Input should be less than or equal to 1"
    )
    bad_tool = {**WEATHER_TOOL, "name": "get.weather"}
    assert _bad(client, messages=USER, tools=[bad_tool]).startswith(
        "tools.0.custom.name: String should match pattern"
    )
    leaky_tool = {**WEATHER_TOOL, "parameters": {}}
    assert _bad(client, messages=USER, tools=[leaky_tool]) == (
        "tools.0.custom.parameters: Extra inputs are not permitted"
    )


def test_validation_does_not_consume_queued_replies(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.enqueue(Reply(content="scripted"))
    _bad(client, messages=USER, extra_body={"temperature": 3})
    msg = client.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert msg.content[0].text == "scripted"  # type: ignore[union-attr]
    assert [r.status for r in fake.requests] == [400, 200]


# ----------------------------------------------------------------------------- errors


def test_rate_limit_error(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(ErrorReply(429, "rate_limit_error", "slow down", headers={"retry-after": "2"}))
    with pytest.raises(anthropic.RateLimitError) as err:
        client.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert err.value.response.headers["retry-after"] == "2"
    assert err.value.body["error"] == {"type": "rate_limit_error", "message": "slow down"}  # type: ignore[index]


def test_overloaded_and_server_errors(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(
        ErrorReply(status=529, type="overloaded_error", message="Overloaded"),
        error_reply(500),
        error_reply(504),
    )
    with pytest.raises(anthropic.OverloadedError) as err:
        client.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert err.value.status_code == 529
    assert isinstance(err.value, anthropic.APIStatusError)
    with pytest.raises(anthropic.InternalServerError) as err2:
        client.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert err2.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as err3:
        client.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert err3.value.status_code == 504


def test_retrying_client_recovers(fake: FakeAnthropic) -> None:
    fake.enqueue(ErrorReply(529, headers={"retry-after-ms": "10"}), Reply(content="after retry"))
    c = anthropic.Anthropic(base_url=fake.url, api_key=fake.api_key, max_retries=2)
    msg = c.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert msg.content[0].text == "after retry"  # type: ignore[union-attr]
    assert [r.status for r in fake.requests] == [529, 200]


def test_error_with_foreign_body(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(ErrorReply(502, body=b"<html>Bad Gateway</html>", content_type="text/html"))
    with pytest.raises(anthropic.InternalServerError) as err:
        client.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert err.value.status_code == 502


# ----------------------------------------------------------------------------- stream faults


def test_mid_stream_error_event(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(content="a long answer that gets interrupted", error_after=5))
    with (
        pytest.raises(anthropic.APIStatusError) as err,
        client.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream,
    ):
        for _ in stream:
            pass
    body = err.value.body
    assert body["type"] == "error"  # type: ignore[index]
    assert body["error"] == {"type": "overloaded_error", "message": "Overloaded"}  # type: ignore[index]
    resp = raw_messages(fake, {"model": MODEL, "max_tokens": 100, "messages": USER, "stream": True})
    assert resp.events()[-1].event == "message_stop"  # the queue is empty again


def test_stream_cut_without_message_stop(fake: FakeAnthropic) -> None:
    fake.enqueue(Reply(content="hello there my friend", cut_after=4))
    resp = raw_messages(fake, {"model": MODEL, "max_tokens": 100, "messages": USER, "stream": True})
    assert [e.event for e in resp.events()] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
    ]


def test_stream_abort(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(content="hello there my friend", cut_after=4, cut_mode="abort"))
    with (
        pytest.raises(Exception) as err,  # the transport error type is the HTTP library's
        client.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream,
    ):
        stream.get_final_message()
    assert "incomplete" in str(err.value) or "closed" in str(err.value)


def test_slow_first_byte_times_out(fake: FakeAnthropic) -> None:
    fake.enqueue(Reply(content="late", first_byte_delay=1.0))
    c = anthropic.Anthropic(base_url=fake.url, api_key=fake.api_key, max_retries=0, timeout=0.2)
    with pytest.raises(anthropic.APITimeoutError):
        c.messages.create(model=MODEL, max_tokens=10, messages=USER)


def test_event_delays(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(content="abcdefgh" * 2, event_delay=0.02, pauses={3: 0.1}))
    t0 = time.monotonic()
    with client.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
        msg = stream.get_final_message()
    assert time.monotonic() - t0 >= 0.2  # 7 gaps of 0.02 s + one 0.1 s pause
    assert msg.content[0].text == "abcdefgh" * 2  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- cache emulation


def test_prompt_cache_emulation() -> None:
    with FakeAnthropic(emulate_cache=True, min_cacheable_tokens=10) as fake:
        c = anthropic.Anthropic(base_url=fake.url, api_key=fake.api_key, max_retries=0)
        system = [
            {"type": "text", "text": "word " * 50, "cache_control": {"type": "ephemeral"}},
        ]
        first = c.messages.create(model=MODEL, max_tokens=10, system=system, messages=USER)
        second = c.messages.create(model=MODEL, max_tokens=10, system=system, messages=USER)
    total = fake.count_tokens(fake.last_request.body)
    assert first.usage.cache_creation_input_tokens == second.usage.cache_read_input_tokens > 50
    assert first.usage.cache_read_input_tokens == 0
    for u in (first.usage, second.usage):
        cached = (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0)
        assert u.input_tokens + cached == total


# ----------------------------------------------------------------------------- fixtures


def test_replay_recorded_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(RawStream("anthropic_stream_thinking_tools.sse"))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
        msg = stream.get_final_message()
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[2].input == {  # type: ignore[union-attr]
        "command": "ls -1",
        "description": "List files in current directory",
    }
    assert msg.usage.cache_read_input_tokens == 21873 and msg.usage.output_tokens == 121
    # the replayed signature counts as issued by this fake
    assert msg.content[0].signature in fake.issued_signatures  # type: ignore[union-attr]
    events = load_sse("anthropic_stream_thinking_tools.sse")
    assert [e.event for e in events][:2] == ["message_start", "ping"]


def test_claude_code_main_request_is_accepted(fake: FakeAnthropic) -> None:
    hdrs, body = load_request("claude_code_main_request.json")
    assert len(body["tools"]) == 24 and body["messages"][-1]["role"] == "system"
    resp = http.post(fake.url + "/v1/messages?beta=true", body, hdrs)
    assert resp.status == 200, resp.body
    assert [e.event for e in resp.events()][-1] == "message_stop"
    start = resp.events()[0].json()["message"]
    assert start["usage"]["input_tokens"] == fake.count_tokens(body)
    rec = fake.last_request
    assert rec.query == {"beta": "true"} and rec.header("x-app") == "cli"
    # the same request without the mid-conversation-system beta is refused, like the real API
    betas = hdrs["anthropic-beta"].replace(BETA_MID_CONV_SYSTEM, "").replace(",,", ",")
    resp = http.post(fake.url + "/v1/messages", body, {**hdrs, "anthropic-beta": betas})
    assert resp.status == 400
    assert resp.json()["error"]["message"] == (
        "messages.1.role: Input should be 'user' or 'assistant'"
    )


def test_claude_code_turn2_needs_trusted_signature(fake: FakeAnthropic) -> None:
    hdrs, body = load_request("claude_code_turn2_request.json")
    resp = http.post(fake.url + "/v1/messages?beta=true", body, hdrs)
    assert resp.status == 400
    assert resp.json()["error"]["message"] == (
        "messages.2.content.0: Invalid `signature` in `thinking` block"
    )
    fake.trust_signatures_in(body)
    resp = http.post(fake.url + "/v1/messages?beta=true", body, hdrs)
    assert resp.status == 200, resp.body


def test_claude_code_title_count_and_probe(fake: FakeAnthropic) -> None:
    hdrs, body = load_request("claude_code_title_request.json")
    assert body["tools"] == []
    assert http.post(fake.url + "/v1/messages?beta=true", body, hdrs).status == 200
    data = load_json("claude_code_count_tokens.json")
    resp = http.post(fake.url + data["path"] + "?beta=true", data["body"], data["headers"])
    assert resp.status == 200
    assert resp.json() == {"input_tokens": fake.count_tokens(data["body"])}
    hdrs, body = load_request("claude_code_quota_probe.json")
    resp = http.post(fake.url + "/v1/messages?beta=true", body, hdrs)
    assert resp.status == 200
    msg = resp.json()
    assert msg["stop_reason"] == "max_tokens" and msg["usage"]["output_tokens"] == 1
