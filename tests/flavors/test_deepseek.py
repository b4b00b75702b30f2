"""DeepSeek thinking mode through dragoman, with the official SDKs, against a fake that answers
what api.deepseek.com answers: multi-turn tool loops (streamed and not) keep the reasoning going
back in ``reasoning_content``, and a Claude Code subagent request (thinking off plus an effort)
goes through instead of DeepSeek's 400.

``ds`` is configured ``flavor: deepseek`` (api.deepseek.com is known by host; the fake lives on
127.0.0.1); ``ds-auto`` is the same server left to ``flavor: auto``: nobody recognises it, so it
gets standard fields only, and the reasoning field comes from the model's name and answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from tests.fakes import ChatReply, FakeAnthropic, FakeOpenAI, Reply, ToolCall, text_block
from tests.support.servers import ServerThread

from dragoman.config import load_config_dict
from dragoman.server.app import create_app

KEY = "dg-deepseek-key"
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
BILLING = "x-anthropic-billing-header: cc_version=2.1.197.fbe; cc_entrypoint=cli; cch=4f2a9;"
THOUGHT = "The user wants the weather: call get_weather."
CALL = ToolCall("call_00_x1", "get_weather", '{"city": "Paris"}')


class Stack:
    def __init__(self) -> None:
        self.ds = FakeOpenAI("deepseek").start()
        self.anth = FakeAnthropic().start()
        cfg = {
            "auth": {"keys": [KEY]},
            "providers": {
                "ds": {
                    "kind": "openai",
                    "base_url": self.ds.base_url,
                    "api_key": self.ds.api_key,
                    "flavor": "deepseek",
                },
                "ds-auto": {
                    "kind": "openai",
                    "base_url": self.ds.base_url,
                    "api_key": self.ds.api_key,
                },
                # DeepSeek's Anthropic endpoint (api.deepseek.com/anthropic) and Anthropic itself
                "ds-anth": {
                    "kind": "anthropic",
                    "base_url": self.anth.url,
                    "api_key": self.anth.api_key,
                    "flavor": "deepseek",
                },
                "anthropic": {
                    "kind": "anthropic",
                    "base_url": self.anth.url,
                    "api_key": self.anth.api_key,
                    "flavor": "anthropic",
                },
            },
            "models": {
                "ds": {"provider": "ds", "model": "deepseek-v4-pro"},
                "ds-auto": {"provider": "ds-auto", "model": "deepseek-v4-flash"},
                "ds-anth": {"provider": "ds-anth", "model": "deepseek-v4-pro"},
                "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            },
            "routing": {"retries": {"max_retries": 0}},
            "store": {"enabled": False},
        }
        config = load_config_dict(cfg)
        self.gw = ServerThread(lambda: create_app(config), shutdown_timeout=0.5).start()

    def a(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.gw.url, api_key=KEY, max_retries=0, timeout=20)

    def o(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20)

    def stop(self) -> None:
        self.gw.stop()
        self.ds.stop()
        self.anth.stop()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.stop()


@pytest.fixture
def s(stack: Stack) -> Stack:
    stack.ds.reset()
    stack.anth.reset()
    return stack


def _a_turn(s: Stack, stream: bool, **kw: Any) -> Any:
    client = s.a()
    if stream:
        with client.messages.stream(**kw) as st:
            return st.get_final_message()
    return client.messages.create(**kw)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", ["ds", "ds-auto"])
def test_anthropic_sdk_tool_loop(s: Stack, model: str, stream: bool) -> None:
    """Claude Code's shape (adaptive thinking + effort, tools): the thinking DeepSeek answered
    with comes back as a thinking block, and goes back to DeepSeek as ``reasoning_content``."""
    s.ds.enqueue(
        ChatReply(reasoning=THOUGHT, tool_calls=[CALL]),
        ChatReply(reasoning="Done.", tool_calls=[ToolCall("call_00_x2", "get_weather", "{}")]),
        ChatReply(content="18C in Paris."),
    )
    kw: dict[str, Any] = {
        "model": model,
        "max_tokens": 2000,
        "tools": [WEATHER_A],
        "thinking": {"type": "adaptive"},
        "extra_body": {"output_config": {"effort": "high"}},
        "system": [{"type": "text", "text": BILLING}, {"type": "text", "text": "Be brief."}],
    }
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = _a_turn(s, stream, messages=history, **kw)
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert first.content[0].thinking == THOUGHT
    sent = s.ds.last_request.body
    if model == "ds":  # DeepSeek's own switch, with an effort it takes
        assert sent["thinking"] == {"type": "enabled"} and sent["reasoning_effort"] == "high"
    else:  # not recognised: standard fields only (DeepSeek thinks by default anyway)
        assert "thinking" not in sent and "reasoning_effort" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    history += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_00_x1", "content": "18C"}],
        },
    ]
    # turn 2: the fake answers 400 unless reasoning_content comes back with the tool call
    second = _a_turn(s, stream, messages=history, **kw)
    assert [b.type for b in second.content] == ["thinking", "tool_use"]
    assistant = s.ds.last_request.body["messages"][2]
    assert assistant["reasoning_content"] == THOUGHT and "reasoning" not in assistant
    # turn 3, with the second turn's thinking dropped by the client (as a conversation begun
    # on a backend that shows no thinking would be): an empty reasoning_content is sent
    history += [
        {"role": "assistant", "content": [b.model_dump() for b in second.content[1:]]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_00_x2", "content": "ok"}],
        },
    ]
    final = _a_turn(s, stream, messages=history, **kw)
    assert final.content[-1].text == "18C in Paris."
    sent_msgs = s.ds.last_request.body["messages"]
    assert [m.get("reasoning_content") for m in sent_msgs if m["role"] == "assistant"] == [
        THOUGHT,
        "",
    ]


def _o_turn(s: Stack, stream: bool, **kw: Any) -> dict[str, Any]:
    """One OpenAI SDK turn; returns the assistant message as the client keeps it."""
    client = s.o()
    if not stream:
        msg = client.chat.completions.create(**kw).choices[0].message
        return msg.model_dump(exclude_none=True)
    reasoning, content = "", ""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in client.chat.completions.create(stream=True, **kw):
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        reasoning += (d.model_extra or {}).get("reasoning_content") or ""
        content += d.content or ""
        for tc in d.tool_calls or []:
            c = calls.setdefault(
                tc.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            c["id"] = tc.id or c["id"]
            if tc.function:
                c["function"]["name"] += tc.function.name or ""
                c["function"]["arguments"] += tc.function.arguments or ""
    out: dict[str, Any] = {"role": "assistant", "content": content, "reasoning_content": reasoning}
    if calls:
        out["tool_calls"] = [calls[k] for k in sorted(calls)]
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", ["ds", "ds-auto"])
def test_openai_sdk_tool_loop(s: Stack, model: str, stream: bool) -> None:
    """O->O: the client keeps ``reasoning_content`` and sends it back; a client that drops it
    (most agent frameworks keep only content and tool_calls) still gets through, and one that
    kept another server's ``reasoning`` has it renamed."""
    s.ds.enqueue(
        ChatReply(reasoning=THOUGHT, tool_calls=[CALL]), ChatReply(content="18C in Paris.")
    )
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    kw: dict[str, Any] = {"model": model, "tools": [WEATHER_O]}
    first = _o_turn(s, stream, messages=history, **kw)
    assert first["reasoning_content"] == THOUGHT and first["tool_calls"][0]["id"] == CALL.id
    history += [first, {"role": "tool", "tool_call_id": CALL.id, "content": "18C"}]
    answer = _o_turn(s, stream, messages=history, **kw)
    assert answer["content"] == "18C in Paris."
    assert s.ds.last_request.body["messages"][1]["reasoning_content"] == THOUGHT
    # the next user turn: the client kept the answer's text only, and DeepSeek wants every
    # assistant message of that tool-calling turn back with its reasoning
    s.ds.enqueue(ChatReply(content="Sunny."))
    later = [*history, {"role": "assistant", "content": answer["content"]}]
    later.append({"role": "user", "content": "And the sky?"})
    assert _o_turn(s, stream, messages=later, **kw)["content"] == "Sunny."
    assert s.ds.last_request.body["messages"][3]["reasoning_content"] == ""
    s.ds.enqueue(ChatReply(content="Still 18C."), ChatReply(content="Yes, 18C."))
    dropped = {k: v for k, v in first.items() if k != "reasoning_content"}
    assert _o_turn(s, stream, messages=[history[0], dropped, history[2]], **kw)["content"] == (
        "Still 18C."
    )
    assert s.ds.last_request.body["messages"][1]["reasoning_content"] == ""
    renamed = {**dropped, "reasoning": THOUGHT}
    assert _o_turn(s, stream, messages=[history[0], renamed, history[2]], **kw)["content"] == (
        "Yes, 18C."
    )
    sent = s.ds.last_request.body["messages"][1]
    assert sent["reasoning_content"] == THOUGHT and "reasoning" not in sent


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_claude_code_subagent_goes_through(s: Stack, stream: bool) -> None:
    """Claude Code 2.1.166+ subagents: ``thinking: disabled`` with ``output_config.effort``.
    DeepSeek answers 400 to that pair; dragoman sends thinking off and no effort."""
    kw: dict[str, Any] = {
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "Summarise the repo."}],
        "thinking": {"type": "disabled"},
        "extra_body": {"output_config": {"effort": "max"}},
        "system": [{"type": "text", "text": BILLING}, {"type": "text", "text": "Subagent."}],
    }
    msg = _a_turn(s, stream, model="ds", **kw)
    assert msg.content[-1].text == "Hello from fake DeepSeek"
    sent = s.ds.last_request.body
    assert sent["thinking"] == {"type": "disabled"} and "reasoning_effort" not in sent
    # Anthropic pass-through to DeepSeek's Anthropic endpoint: the same rule, and no billing
    # header; to Anthropic itself, both forwarded untouched
    for model, effort, billing in (("ds-anth", False, False), ("claude", True, True)):
        s.anth.enqueue(Reply(content=[text_block("ok")]))
        _a_turn(s, stream, model=model, **kw)
        got = s.anth.last_request.body
        assert got["thinking"] == {"type": "disabled"}
        assert ("output_config" in got) is effort
        assert (got["system"][0]["text"] == BILLING) is billing
        assert got["system"][-1]["text"] == "Subagent."
