"""The four paths, streaming: SDK accumulators on the client side, raw SSE bytes checked too."""

from __future__ import annotations

import json

import pytest
from tests.e2e.harness import ADMIN, KEY, Stack
from tests.fakes import ChatReply, RawStream, Reply, text_block, thinking_block, tool_use_block
from tests.support import http

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    out = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        ev, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        out.append((ev, "\n".join(data)))
    return out


def test_a2a_stream_relayed(stack: Stack) -> None:
    sig = stack.anthropic_fake.issue_signature()
    stack.anthropic_fake.enqueue(
        Reply(
            content=[
                thinking_block("think", sig),
                text_block("Hello there, friend."),
                tool_use_block("get_weather", {"city": "Oslo"}),
            ]
        )
    )
    with stack.anthropic().messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=2048,
        messages=[{"role": "user", "content": "hi"}],
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].signature == sig
    assert final.stop_reason == "tool_use"
    assert final.content[2].input == {"city": "Oslo"}


def test_a2o_stream_translated(stack: Stack) -> None:
    stack.vllm.enqueue(
        ChatReply(
            content="Let me check the weather.",
            reasoning="Need the tool.",
            tool_calls=[
                ("call_a", "get_weather", {"city": "Paris"}),
                ("call_b", "get_weather", {"city": "Rome"}),
            ],
            usage={"prompt_tokens": 77, "completion_tokens": 21},
        )
    )
    with stack.anthropic().messages.stream(
        model="coder",
        max_tokens=1000,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
    ) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.stop_reason == "tool_use"
    assert [b.input for b in final.content[2:]] == [{"city": "Paris"}, {"city": "Rome"}]
    assert final.usage.input_tokens == 77 and final.usage.output_tokens == 21
    assert final.model == "coder"
    sent = stack.vllm.last_request.body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_a2o_stream_replays_vllm_fixture_raw(stack: Stack) -> None:
    stack.vllm.enqueue(RawStream("vllm_stream_reasoning_tools.sse"))
    r = http.post(
        stack.url + "/v1/messages?beta=true",
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        body={
            "model": "coder",
            "max_tokens": 100,
            "stream": True,
            "tools": [WEATHER],
            "messages": [{"role": "user", "content": "weather?"}],
        },
    )
    assert r.status == 200
    assert r.content_type.startswith("text/event-stream")
    evs = sse_events(r.body)
    for name, data in evs:
        assert name is not None and json.loads(data)["type"] == name  # every frame has event:
    names = [n for n, _ in evs]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names[-2] == "message_delta"
    delta = json.loads(evs[-2][1])
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] > 0
    starts = [json.loads(d) for n, d in evs if n == "content_block_start"]
    assert [s["index"] for s in starts] == list(range(len(starts)))


def test_o2o_stream_passthrough_hides_injected_usage(stack: Stack) -> None:
    stack.vllm.enqueue(ChatReply(content="one two three"))
    chunks = list(
        stack.openai().chat.completions.create(
            model="coder", messages=[{"role": "user", "content": "count"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert all(c.choices for c in chunks)  # the usage chunk we asked for is not shown
    assert stack.vllm.last_request.body["stream_options"] == {"include_usage": True}


def test_o2o_stream_with_client_usage(stack: Stack) -> None:
    stack.vllm.enqueue(ChatReply(content="hi"))
    chunks = list(
        stack.openai().chat.completions.create(
            model="coder",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_o2a_stream_translated(stack: Stack) -> None:
    stack.anthropic_fake.enqueue(
        Reply(
            content=[text_block("Calling now."), tool_use_block("get_weather", {"city": "Oslo"})],
            usage={"input_tokens": 40, "output_tokens": 9},
        )
    )
    stream = stack.openai().chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]},
            }
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Calling now."
    args = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in (c.choices[0].delta.tool_calls or [])
    )
    assert json.loads(args) == {"city": "Oslo"}
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage.prompt_tokens == 40 and chunks[-1].usage.completion_tokens == 9


@pytest.mark.parametrize("model", ["coder", "claude-sonnet-4-5"])
def test_legacy_completions_stream(stack: Stack, model: str) -> None:
    # only the backend the model routes to is scripted: a misroute would not get "four five"
    if model == "coder":
        stack.vllm.enqueue(ChatReply(content="four five"))
    else:
        stack.anthropic_fake.enqueue(Reply(content=[text_block("four five")]))
    chunks = list(
        stack.openai().completions.create(model=model, prompt="x", stream=True, max_tokens=10)
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "four five"


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
def test_a2o_midstream_error_becomes_error_event(stack: Stack) -> None:
    stack.vllm.enqueue(ChatReply(content="a long answer " * 10, error_after=4))
    import anthropic

    with (
        pytest.raises(anthropic.APIStatusError) as ei,
        stack.anthropic().messages.stream(
            model="coder", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        ) as s,
    ):
        s.get_final_message()
    assert "error" in str(ei.value).lower()


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
def test_a2o_cut_stream_never_looks_complete(stack: Stack) -> None:
    stack.vllm.enqueue(ChatReply(content="a long answer " * 10, cut_after=4))
    r = http.post(
        stack.url + "/v1/messages",
        headers={"x-api-key": KEY},
        body={
            "model": "coder",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    names = [n for n, _ in sse_events(r.body)]
    assert "message_stop" not in names and names[-1] == "error"


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
def test_a2a_cut_stream_gets_error_event(stack: Stack) -> None:
    stack.anthropic_fake.enqueue(Reply(content=[text_block("x" * 200)], cut_after=5))
    r = http.post(
        stack.url + "/v1/messages",
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        body={
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    names = [n for n, _ in sse_events(r.body)]
    assert "message_stop" not in names and names[-1] == "error"


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
def test_o2o_cut_stream_raises_in_sdk(stack: Stack) -> None:
    import openai

    stack.vllm.enqueue(ChatReply(content="x " * 50, cut_after=4))
    with pytest.raises(openai.APIError):
        list(
            stack.openai().chat.completions.create(
                model="coder", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )


@pytest.mark.parametrize(
    ("path", "model", "upstream"),
    [
        ("/v1/messages", "coder", "vllm"),
        ("/v1/messages", "claude-sonnet-4-5", "anthropic"),
        ("/v1/chat/completions", "coder", "vllm"),
        ("/v1/chat/completions", "claude-sonnet-4-5", "anthropic"),
    ],
)
def test_client_disconnect_closes_upstream_at_once(
    stack: Stack, path: str, model: str, upstream: str
) -> None:
    """The client hangs up after the first bytes of a 10 s stream: the gateway drops the upstream
    connection straight away (the fake notices at its next write) and frees the deployment."""
    import socket
    import time

    if upstream == "vllm":
        stack.vllm.enqueue(ChatReply(content="tok " * 50, text_chunk=4, event_delay=0.2))
        fake = stack.vllm
    else:
        stack.anthropic_fake.enqueue(
            Reply(content=[text_block("tok " * 50)], text_chunk=4, event_delay=0.2)
        )
        fake = stack.anthropic_fake
    body = json.dumps(
        {
            "model": model,
            "max_tokens": 500,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        }
    ).encode()
    host, port = stack.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"x-api-key: {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert b"200" in s.recv(4096).split(b"\r\n")[0]
    s.close()
    t0 = time.monotonic()
    deadline = t0 + 3
    while time.monotonic() < deadline:
        if any("client disconnected" in r.notes for r in fake.requests):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the upstream stream was not closed after the client left")
    assert time.monotonic() - t0 < 1.5
    deadline = time.monotonic() + 2
    dep = stack.engine.models.get(model).deployments[0]
    while dep.inflight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dep.inflight == 0


@pytest.mark.leaves_cooldown  # an upstream failure counts against its deployment
def test_broken_streams_count_against_deployment_health(stack: Stack) -> None:
    """Streams that break after they started are failures of the deployment: enough of them
    in the window cool it down (allowed_fails, default 3)."""
    dep = stack.engine.models.get("coder").deployments[0]
    for _ in range(3):
        stack.vllm.enqueue(ChatReply(content="a long answer " * 10, cut_after=4))
        http.post(
            stack.url + "/v1/messages",
            body={
                "model": "coder",
                "max_tokens": 100,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers={"x-api-key": KEY},
        )
    states = http.get(stack.url + "/health", ADMIN).json()["deployments"]["coder"]
    assert states[0]["state"] == "cooldown", states
    assert "stream broke" in (dep.last_error or "")
