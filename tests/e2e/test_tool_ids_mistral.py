"""A tool loop begun on Anthropic or vLLM continues on Mistral (api.mistral.ai, and vLLM serving a
Mistral model with the mistral tokenizer), through the official SDKs, streamed and not.

The fakes reject what ``mistral_common`` rejects ("Tool call id was X but must be a-z, A-Z, 0-9,
with a length of 9.", a user turn right after a tool result, unknown parameters on
api.mistral.ai), so a request that reaches them and is answered is one the real services accept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from tests.e2e.harness import KEY, base_config
from tests.fakes import ChatReply, FakeAnthropic, FakeOpenAI, Reply, text_block, tool_use_block
from tests.support.servers import ServerThread

from dragoman.config import load_config_dict
from dragoman.server.app import create_app

M9 = re.compile(r"^[a-zA-Z0-9]{9}$")
WEATHER_A = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
WEATHER_O = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


class Stack:
    def __init__(self) -> None:
        self.anth = FakeAnthropic(accept_bearer=False).start()
        self.vllm = FakeOpenAI("vllm").start()
        self.oai = FakeOpenAI("openai").start()
        self.ollama = FakeOpenAI("ollama").start()
        self.mistral = FakeOpenAI("mistral").start()
        self.devstral = FakeOpenAI(
            "vllm", models=["mistralai/Devstral-Small-2505"], mistral_tokenizer=True
        ).start()
        cfg = base_config(self.anth, self.vllm, self.oai, self.ollama)
        cfg["providers"]["mistral"] = {
            "kind": "openai",
            "base_url": self.mistral.base_url,
            "api_key": self.mistral.api_key,
            "flavor": "mistral",
        }
        cfg["providers"]["devstral-vllm"] = {
            "kind": "openai",
            "base_url": self.devstral.base_url,
            "api_key": self.devstral.api_key,
            "flavor": "vllm",
        }
        cfg["models"]["mistral-large"] = {
            "provider": "mistral",
            "model": "mistral-large-latest",
            "context_window": 131072,
        }
        cfg["models"]["devstral"] = {
            "provider": "devstral-vllm",
            "model": "mistralai/Devstral-Small-2505",
            "context_window": 32768,
        }
        config = load_config_dict(cfg)
        self.server = ServerThread(lambda: create_app(config), shutdown_timeout=0.5).start()

    @property
    def fakes(self) -> tuple[Any, ...]:
        return (self.anth, self.vllm, self.oai, self.ollama, self.mistral, self.devstral)

    def a(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.server.url, api_key=KEY, max_retries=0)

    def o(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.server.url + "/v1", api_key=KEY, max_retries=0)

    def stop(self) -> None:
        self.server.stop()
        for f in self.fakes:
            f.stop()


@pytest.fixture(scope="module")
def _stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.stop()


@pytest.fixture
def stack(_stack: Stack) -> Iterator[Stack]:
    for f in _stack.fakes:
        f.reset()
    yield _stack
    for f in _stack.fakes:
        assert f.pending == 0, f"{type(f).__name__} left scripted replies unused"


def _anthropic_call(client: anthropic.Anthropic, stream: bool, **kw: Any) -> Any:
    if not stream:
        return client.messages.create(**kw)
    with client.messages.stream(**kw) as s:
        return s.get_final_message()


def _openai_call(client: openai.OpenAI, stream: bool, **kw: Any) -> Any:
    if not stream:
        return client.chat.completions.create(**kw).choices[0].message
    with client.chat.completions.stream(**kw) as s:
        return s.get_final_completion().choices[0].message


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    ("first_model", "first_fake"), [("claude-sonnet-4-5", "anth"), ("coder", "vllm")]
)
@pytest.mark.parametrize(
    ("next_model", "next_fake"), [("mistral-large", "mistral"), ("devstral", "devstral")]
)
def test_anthropic_client_tool_loop_moves_to_mistral(
    stack: Stack, stream: bool, first_model: str, first_fake: str, next_model: str, next_fake: str
) -> None:
    client = stack.a()
    first = getattr(stack, first_fake)
    if first_fake == "anth":
        first.enqueue(Reply(content=[tool_use_block("get_weather", {"city": "Paris"})]))
    else:
        first.enqueue(
            ChatReply(tool_calls=[("chatcmpl-tool-5f2a9c", "get_weather", {"city": "Paris"})])
        )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris, then Oslo?"}]
    kw = {"max_tokens": 1000, "tools": [WEATHER_A]}
    m1 = _anthropic_call(client, stream, model=first_model, messages=messages, **kw)
    first_id = m1.content[-1].id
    assert first_id.startswith("toolu_" if first_fake == "anth" else "chatcmpl-tool-")
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m1.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": first_id, "content": "18C"},
                # Claude Code puts reminders next to tool results: a user turn after a tool
                # result is something mistral_common rejects
                {"type": "text", "text": "<system-reminder>Keep it short.</system-reminder>"},
            ],
        },
    ]
    nxt = getattr(stack, next_fake)
    nxt.enqueue(ChatReply(content="Now Oslo.", tool_calls=[("get_weather", {"city": "Oslo"})]))
    m2 = _anthropic_call(client, stream, model=next_model, messages=messages, **kw)
    sent = nxt.last_request.body
    call_id = sent["messages"][1]["tool_calls"][0]["id"]
    assert M9.match(call_id) and sent["messages"][2]["tool_call_id"] == call_id
    reminder = "<system-reminder>Keep it short.</system-reminder>"
    assert sent["messages"][2]["content"] == "18C\n\n" + reminder
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    tool = next(b for b in m2.content if b.type == "tool_use")
    assert m2.stop_reason == "tool_use"
    assert tool.id.startswith("toolu_") and M9.match(tool.id[len("toolu_") :])
    upstream_id = tool.id[len("toolu_") :]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m2.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "-2C"}],
        },
    ]
    nxt.enqueue(ChatReply(content="Paris 18C, Oslo -2C."))
    m3 = _anthropic_call(client, stream, model=next_model, messages=messages, **kw)
    assert m3.content[-1].text == "Paris 18C, Oslo -2C."
    sent = nxt.last_request.body
    # the upstream sees its own id again, and the first id maps as it did the turn before
    assert sent["messages"][1]["tool_calls"][0]["id"] == call_id
    assert sent["messages"][3]["tool_calls"][0]["id"] == upstream_id
    assert sent["messages"][4]["tool_call_id"] == upstream_id
    # and back on Anthropic: the dressed ids are valid there as they are
    stack.anth.enqueue(Reply(content=[text_block("ok")]))
    messages += [
        {"role": "assistant", "content": "Paris 18C, Oslo -2C."},
        {"role": "user", "content": "Thanks"},
    ]
    _anthropic_call(client, stream, model="claude-sonnet-4-5", messages=messages, **kw)
    back = stack.anth.last_request.body["messages"]
    assert back[3]["content"][-1]["id"] == tool.id


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    ("model", "fake"), [("mistral-large", "mistral"), ("devstral", "devstral")]
)
def test_openai_client_tool_loop_moves_to_mistral(
    stack: Stack, stream: bool, model: str, fake: str
) -> None:
    client = stack.o()
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris, then Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_Xk3bq1Jz0VYbQ4dFmm4pJw2a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_Xk3bq1Jz0VYbQ4dFmm4pJw2a", "content": "18C"},
    ]
    up = getattr(stack, fake)
    up.enqueue(ChatReply(content="", tool_calls=[("get_weather", {"city": "Oslo"})]))
    msg = _openai_call(
        client, stream, model=model, messages=history, tools=[WEATHER_O], temperature=0.2
    )
    tc = (msg.tool_calls or [])[0]
    assert tc.id.startswith("call_") and M9.match(tc.id[len("call_") :])
    assert json.loads(tc.function.arguments) == {"city": "Oslo"}
    sent = up.last_request.body
    mapped = sent["messages"][2]["tool_calls"][0]["id"]
    assert M9.match(mapped) and sent["messages"][3]["tool_call_id"] == mapped
    # pass-through: nothing but the ids (and the model name) changed
    expected = json.loads(json.dumps(history).replace("call_Xk3bq1Jz0VYbQ4dFmm4pJw2a", mapped))
    assert sent["messages"] == expected
    assert sent["temperature"] == 0.2 and sent["tools"] == [WEATHER_O]
    if fake == "mistral":
        assert "stream_options" not in sent
    history += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": tc.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": tc.id, "content": "-2C"},
    ]
    up.enqueue(ChatReply(content="Paris 18C, Oslo -2C."))
    msg = _openai_call(client, stream, model=model, messages=history, tools=[WEATHER_O])
    assert msg.content == "Paris 18C, Oslo -2C."
    sent = up.last_request.body
    assert sent["messages"][2]["tool_calls"][0]["id"] == mapped
    assert sent["messages"][4]["tool_calls"][0]["id"] == tc.id[len("call_") :]
    assert sent["messages"][5]["tool_call_id"] == tc.id[len("call_") :]


def test_unmapped_ids_are_what_mistral_rejects(stack: Stack) -> None:
    """The same history sent straight to the fake is refused: the mapping is what makes it
    pass, not a lenient fake."""
    raw = openai.OpenAI(
        base_url=stack.mistral.base_url, api_key=stack.mistral.api_key, max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as err:
        raw.chat.completions.create(
            model="mistral-large-latest",
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_Xk3bq1Jz0VYbQ4dFmm4pJw2a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_Xk3bq1Jz0VYbQ4dFmm4pJw2a", "content": "x"},
            ],
        )
    assert err.value.body == {
        "object": "error",
        "message": "Tool call id was call_Xk3bq1Jz0VYbQ4dFmm4pJw2a but must be a-z, A-Z, 0-9, "
        "with a length of 9.",
        "type": "invalid_function_call",
        "param": None,
        "code": "3280",
    }
