"""``stages/dispatch.py`` and the bridge table: every row in both shapes, an error before the
first byte still retryable, and one stream ending per client dialect when a stream fails half-way
(Anthropic: an ``error`` event; OpenAI: an error chunk and no ``[DONE]``)."""

from __future__ import annotations

import json

import pytest

from dragoman.bridges.registry import BRIDGES
from dragoman.errors import DragomanError, OverloadedError

from .support import (
    FakeStream,
    anthropic_stream,
    completion,
    config,
    drain,
    gateway,
    json_reply,
    message,
    openai_stream,
    sse,
)

A = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
OAI = {"messages": [{"role": "user", "content": "hi"}]}


def test_the_table_has_the_four_rows() -> None:
    assert set(BRIDGES) == {
        ("anthropic", "anthropic"),
        ("openai", "openai"),
        ("anthropic", "openai"),
        ("openai", "anthropic"),
    }


@pytest.mark.parametrize(
    ("front", "model"),
    [("anthropic", "claude"), ("anthropic", "gpt"), ("openai", "gpt"), ("openai", "claude")],
)
async def test_every_row_answers_and_streams(front: str, model: str) -> None:
    gw, ups = gateway(config())
    up = ups["ant" if model == "claude" else "oai"]
    up.answers += [
        json_reply(message("yes") if model == "claude" else completion("yes")),
        FakeStream(anthropic_stream("yes") if model == "claude" else openai_stream("yes")),
    ]
    call = gw.messages if front == "anthropic" else gw.chat
    body = {**(A if front == "anthropic" else OAI), "model": model}
    reply = await call(dict(body), trusted=True)
    got = reply.json()
    text = got["content"][0]["text"] if front == "anthropic" else got["choices"][0]["message"]
    assert "yes" in json.dumps(text)
    sent = up.sent[0]["body"]
    assert sent["model"] == ("claude-up" if model == "claude" else "gpt-up")
    stream = await call({**body, "stream": True}, trusted=True)
    out = await drain(stream)
    assert b"yes" in out
    if front == "anthropic":
        assert b"event: message_stop" in out and b"event: error" not in out
    else:
        assert out.endswith(b"data: [DONE]\n\n") and b'"error"' not in out


async def test_an_error_event_first_is_retried_elsewhere() -> None:
    gw, ups = gateway(config())
    err = sse(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}))
    ups["ant"].answers += [FakeStream([err]), FakeStream(anthropic_stream("ok"))]
    reply = await gw.messages({**A, "model": "claude", "stream": True}, trusted=True)
    assert reply.headers["x-dragoman-attempts"] == "2"
    assert b"ok" in await drain(reply)


@pytest.mark.parametrize("model", ["claude", "gpt"])
async def test_an_anthropic_client_gets_an_error_event_when_a_stream_breaks(model: str) -> None:
    gw, ups = gateway(config())
    chunks = anthropic_stream("x") if model == "claude" else openai_stream("x")
    ups["ant" if model == "claude" else "oai"].answers.append(
        FakeStream(chunks[:2], error=OverloadedError("upstream connection lost"))
    )
    out = await drain(await gw.messages({**A, "model": model, "stream": True}, trusted=True))
    assert out.rstrip().endswith(b"}") and b"event: error" in out
    assert b"message_stop" not in out and b"[DONE]" not in out


@pytest.mark.parametrize("model", ["claude", "gpt"])
@pytest.mark.parametrize("how", ["broken", "cut short", "error chunk"])
async def test_an_openai_client_gets_an_error_chunk_and_no_done(model: str, how: str) -> None:
    gw, ups = gateway(config())
    if model == "claude":
        chunks = anthropic_stream("x", complete=how != "cut short")
        if how == "error chunk":
            bad = {"type": "error", "error": {"type": "api_error", "message": "e"}}
            chunks = [*chunks[:2], sse(("error", bad))]
    else:
        chunks = openai_stream("x", complete=how != "cut short")
        if how == "error chunk":  # vLLM sends [DONE] after its error chunk: not passed on
            bad = {"error": {"message": "e", "type": "server_error"}}
            chunks = [*chunks[:2], sse((None, bad), (None, b"[DONE]"))]
    error = OverloadedError("upstream connection lost") if how == "broken" else None
    ups["ant" if model == "claude" else "oai"].answers.append(
        FakeStream(chunks if how != "broken" else chunks[:2], error=error)
    )
    out = await drain(await gw.chat({**OAI, "model": model, "stream": True}, trusted=True))
    last = out.rstrip().split(b"\n\n")[-1]
    assert last.startswith(b"data: {") and b'"error"' in last, out
    assert b"[DONE]" not in out


async def test_a_200_that_is_not_an_answer_is_a_retryable_502() -> None:
    gw, ups = gateway(config())
    ups["oai"].answers += [json_reply([1, 2]), json_reply(completion("fine"))]
    reply = await gw.chat({**OAI, "model": "gpt"}, trusted=True)
    assert reply.headers["x-dragoman-attempts"] == "2"
    ups["oai"].answers += [json_reply("x")] * 5
    with pytest.raises(DragomanError) as e:
        await gw.chat({**OAI, "model": "gpt"}, trusted=True)
    assert e.value.status == 502


async def test_count_tokens_asks_the_anthropic_upstream_else_estimates() -> None:
    gw, ups = gateway(config())
    ups["ant"].answers.append(json_reply({"input_tokens": 42}))
    got = await gw.count_tokens({**A, "model": "claude"}, trusted=True)
    assert got.json() == {"input_tokens": 42}
    assert ups["ant"].sent[0]["path"].endswith("/count_tokens")
    ups["ant"].answers.append(json_reply({"type": "error"}, 500))
    got = await gw.count_tokens({**A, "model": "claude"}, trusted=True)
    assert got.json()["input_tokens"] > 0
