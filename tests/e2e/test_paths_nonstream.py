"""The four paths, non-streaming, driven by the official SDKs through a running dragoman."""

from __future__ import annotations

import base64
import json

import anthropic
import pytest
from tests.e2e.harness import Stack
from tests.fakes import ChatReply, Reply, text_block, thinking_block, tool_use_block

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()

BETAS = "interleaved-thinking-2025-05-14,context-management-2025-06-27"

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


# -- A -> A ----------------------------------------------------------------------------------


def test_a2a_passthrough_keeps_everything_but_the_model(stack: Stack) -> None:
    fake = stack.anthropic_fake
    sig = fake.issue_signature()
    fake.enqueue(Reply(content=[text_block("Paris is sunny.")], usage={"input_tokens": 42}))
    client = stack.anthropic()
    msg = client.messages.create(
        model="claude",  # alias -> claude-sonnet-4-5
        max_tokens=2048,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "use the tool", "signature": sig},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": "18C",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
        ],
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_headers={"anthropic-beta": BETAS},
        extra_body={"context_management": {"edits": []}},
    )
    assert msg.content[0].type == "text"
    assert msg.usage.input_tokens == 42
    req = fake.last_request
    assert req.body["model"] == "claude-sonnet-4-5"
    assert req.headers["x-api-key"] == fake.api_key  # our upstream key, not the client's
    assert req.headers["anthropic-version"]  # the client's version, forwarded
    assert req.headers["anthropic-beta"] == BETAS
    assert req.body["messages"][1]["content"][0]["signature"] == sig
    assert req.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert req.body["messages"][2]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert req.body["context_management"] == {"edits": []}


def test_a2a_response_headers_name_route(stack: Stack) -> None:
    raw = stack.anthropic().messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-dragoman-model"] == "claude-sonnet-4-5"
    assert raw.headers["x-dragoman-attempts"] == "1"
    assert raw.headers["x-dragoman-deployment"]


# -- A -> O ----------------------------------------------------------------------------------


def test_a2o_tools_images_thinking(stack: Stack) -> None:
    stack.vllm.enqueue(
        ChatReply(
            content="Let me check.",
            reasoning="The user wants weather; call the tool.",
            tool_calls=[("call_1", "get_weather", {"city": "Paris"})],
            usage={
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "prompt_tokens_details": {"cached_tokens": 20},
            },
        )
    )
    msg = stack.anthropic().messages.create(
        model="coder",
        max_tokens=20000,
        system="You are helpful.",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture, and the weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            }
        ],
        tools=[WEATHER],
        tool_choice={"type": "any"},
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    kinds = [b.type for b in msg.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert msg.stop_reason == "tool_use"
    tool = msg.content[2]
    assert tool.name == "get_weather" and tool.input == {"city": "Paris"}
    assert msg.model == "coder"
    assert msg.usage.input_tokens == 100 and msg.usage.cache_read_input_tokens == 20
    assert msg.usage.output_tokens == 30
    sent = stack.vllm.last_request.body
    assert sent["model"] == "qwen3-coder"
    assert sent["messages"][0] == {"role": "system", "content": "You are helpful."}
    parts = sent["messages"][1]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert sent["tool_choice"] == "required"
    assert sent["max_tokens"] <= 8192  # clamped to the model's output limit
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_a2o_tool_loop_with_thinking_round_trip(stack: Stack) -> None:
    """Turn 2 of a tool loop: thinking goes back as `reasoning`, tool results as tool messages,
    in the order vLLM's template requires."""
    stack.vllm.enqueue(ChatReply(content="It is 18C in Paris."))
    msg = stack.anthropic().messages.create(
        model="claude-opus-4-8",  # unknown claude-* name: routed by the pattern, no 404
        max_tokens=1024,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Call the tool.", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_02",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": [{"type": "text", "text": "18C"}],
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_02",
                        "content": "boom",
                        "is_error": True,
                    },
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        tools=[WEATHER],
    )
    assert msg.stop_reason == "end_turn"
    assert msg.content[0].text == "It is 18C in Paris."
    sent = stack.vllm.last_request.body["messages"]
    roles = [m["role"] for m in sent]
    assert roles == ["user", "assistant", "tool", "tool", "user"]
    assert sent[1]["reasoning"] == "Call the tool."
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["toolu_01", "toolu_02"]
    assert sent[2]["content"] == "18C"
    assert "error" in sent[3]["content"]
    assert sent[4]["content"] == "And tomorrow?"


def test_a2o_structured_output_and_stop_sequence(stack: Stack) -> None:
    stack.vllm.enqueue(ChatReply(content='{"title": "Hi"}', stop_reason="END"))
    msg = stack.anthropic().messages.create(
        model="coder",
        max_tokens=100,
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "title?"}],
        extra_body={
            "output_config": {
                "format": {
                    "type": "json_schema",
                    "schema": {
                        "type": "object",
                        "properties": {"title": {"type": "string"}},
                        "required": ["title"],
                        "additionalProperties": False,
                    },
                }
            }
        },
    )
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "END"
    assert json.loads(msg.content[0].text) == {"title": "Hi"}
    sent = stack.vllm.last_request.body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["title"]
    assert sent["stop"] == ["END"]


def test_a2o_long_tool_names_are_shortened_and_restored(stack: Stack) -> None:
    long = "mcp__some_server_with_a_long_name__" + "do_a_very_specific_thing_" * 3
    assert len(long) > 64
    stack.vllm.enqueue(
        lambda req: ChatReply(
            tool_calls=[("call_9", req.body["tools"][0]["function"]["name"], {"x": 1})]
        )
    )
    msg = stack.anthropic().messages.create(
        model="coder",
        max_tokens=100,
        messages=[{"role": "user", "content": "go"}],
        tools=[
            {
                "name": long,
                "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
            }
        ],
    )
    sent_name = stack.vllm.last_request.body["tools"][0]["function"]["name"]
    assert len(sent_name) <= 64
    assert msg.content[-1].type == "tool_use" and msg.content[-1].name == long


# -- O -> O ----------------------------------------------------------------------------------


def test_o2o_passthrough(stack: Stack) -> None:
    stack.vllm.enqueue(ChatReply(content="pong", reasoning="thinking..."))
    client = stack.openai()
    resp = client.chat.completions.create(
        model="coder",
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "ping"}],
        max_tokens=20,
        extra_body={"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
    )
    assert resp.choices[0].message.content == "pong"
    sent = stack.vllm.last_request.body
    assert sent["model"] == "qwen3-coder"
    assert sent["top_k"] == 20 and sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert resp.usage is not None and resp.usage.completion_tokens > 0


# -- O -> A ----------------------------------------------------------------------------------


def test_o2a_tools_images_structured(stack: Stack) -> None:
    stack.anthropic_fake.enqueue(
        Reply(
            content=[
                text_block("Calling."),
                tool_use_block("get_weather", {"city": "Oslo"}, id="toolu_abc"),
            ],
            usage={"input_tokens": 50, "cache_read_input_tokens": 10, "output_tokens": 7},
        )
    )
    client = stack.openai()
    resp = client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
        ],
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]},
            }
        ],
        parallel_tool_calls=False,
    )
    ch = resp.choices[0]
    assert ch.finish_reason == "tool_calls"
    assert ch.message.content == "Calling."
    tc = ch.message.tool_calls[0]
    assert tc.id == "toolu_abc" and json.loads(tc.function.arguments) == {"city": "Oslo"}
    assert resp.usage.prompt_tokens == 60 and resp.usage.completion_tokens == 7
    assert resp.usage.prompt_tokens_details.cached_tokens == 10
    sent = stack.anthropic_fake.last_request.body
    assert sent["system"][0]["text"] == "sys"
    assert sent["messages"][0]["content"][1]["source"]["type"] == "base64"
    assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert sent["max_tokens"] > 0


def test_o2a_tool_loop_and_reasoning(stack: Stack) -> None:
    """OpenAI clients send no reasoning back, so during a tool loop there is no signed thinking
    block to open the assistant turn: the real API would reject ``thinking`` there (the fake does
    too), so dragoman drops it for the rest of the loop (docs/translation.md)."""
    stack.anthropic_fake.enqueue(Reply(content=[text_block("Done: 18C.")]))
    resp = stack.openai().chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ],
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]},
            }
        ],
        max_tokens=4000,
        reasoning_effort="low",
        temperature=0.3,
    )
    msg = resp.choices[0].message
    assert msg.content == "Done: 18C."
    sent = stack.anthropic_fake.last_request.body
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"
    assert "thinking" not in sent
    assert sent["max_tokens"] == 4000 and sent["temperature"] == 0.3


def test_o2a_reasoning_on_a_new_user_turn(stack: Stack) -> None:
    """Outside a tool loop no earlier turn needs its thinking back: reasoning stays on."""
    sig = stack.anthropic_fake.issue_signature()
    stack.anthropic_fake.enqueue(
        Reply(content=[thinking_block("hmm", sig), text_block("It was 18C.")])
    )
    resp = stack.openai().chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "assistant", "content": "18C in Paris."},
            {"role": "user", "content": "And what was it again?"},
        ],
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]},
            }
        ],
        max_tokens=4000,
        reasoning_effort="low",
    )
    msg = resp.choices[0].message
    assert msg.content == "It was 18C."
    assert msg.model_extra and msg.model_extra.get("reasoning_content") == "hmm"
    sent = stack.anthropic_fake.last_request.body
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["max_tokens"] == 4000


def test_o2a_structured_output(stack: Stack) -> None:
    stack.anthropic_fake.enqueue(Reply(content=[text_block('{"a": 1}')]))
    resp = stack.openai().chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "json"}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "x",
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        },
    )
    assert json.loads(resp.choices[0].message.content) == {"a": 1}
    sent = stack.anthropic_fake.last_request.body
    assert sent["output_config"]["format"]["type"] == "json_schema"


# -- legacy completions ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["coder", "claude-sonnet-4-5"])
def test_legacy_completions(stack: Stack, model: str) -> None:
    # only the backend the model routes to is scripted: a misroute would not get "four"
    if model == "coder":
        stack.vllm.enqueue(ChatReply(content="four"))
    else:
        stack.anthropic_fake.enqueue(Reply(content=[text_block("four")]))
    resp = stack.openai().completions.create(model=model, prompt="2+2=", max_tokens=5)
    assert resp.object == "text_completion"
    assert resp.choices[0].text == "four"


def test_anthropic_sdk_errors_are_typed(stack: Stack) -> None:
    with pytest.raises(anthropic.NotFoundError):
        stack.anthropic().models.retrieve("does-not-exist-and-no-pattern")


@pytest.mark.parametrize(("model", "sends_effort"), [("gpt-4.1", False), ("o4-mini", True)])
def test_claude_code_thinking_to_openai_models(
    stack: Stack, model: str, sends_effort: bool
) -> None:
    """Claude Code sends adaptive thinking + effort to every model; api.openai.com rejects
    reasoning_effort on non-reasoning models, so it only reaches reasoning ones."""
    msg = stack.anthropic().messages.create(
        model=model,
        max_tokens=1000,
        messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "adaptive"},  # type: ignore[typeddict-item]
        extra_body={"output_config": {"effort": "high"}},
    )
    assert msg.content[0].type == "text"
    sent = stack.oai.last_request.body
    assert ("reasoning_effort" in sent) is sends_effort
    assert "thinking" not in sent and "output_config" not in sent
