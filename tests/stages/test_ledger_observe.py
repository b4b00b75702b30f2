"""``stages/ledger.py`` (a hold per attempt on the deployment tried, settled once on the one that
served: a stream at its end, at what it delivered) and ``stages/observe.py`` (each request
counted once, with what its client really received), through the whole pipeline in-process."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from dragoman.errors import DragomanError, OverloadedError

from .support import (
    Books,
    FakeStream,
    anthropic_stream,
    config,
    drain,
    gateway,
    json_reply,
    message,
    openai_stream,
)

BODY = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}


def _count(endpoint: str, dialect: str, model: str, status: int, stream: bool) -> float:
    labels = {
        "endpoint": endpoint,
        "dialect": dialect,
        "model": model,
        "status": str(status),
        "stream": "1" if stream else "0",
    }
    return REGISTRY.get_sample_value("dragoman_requests_total", labels) or 0.0


async def test_complete_answer_holds_then_confirms_on_the_deployment() -> None:
    books = Books()
    gw, ups = gateway(config())
    gw.accountant = books
    ups["ant"].answers.append(json_reply(message(usage={"input_tokens": 11, "output_tokens": 3})))
    reply = await gw.messages(dict(BODY), trusted=True)
    assert reply.status == 200
    assert [c[0] for c in books.calls] == ["hold", "confirm"]
    _, info, outcome = books.calls[1]
    assert info.provider == "ant" and outcome.provider == "ant"
    assert outcome.usage.input_tokens == 11 and outcome.usage.output_tokens == 3


async def test_the_books_follow_a_fallback_to_another_provider() -> None:
    books = Books()
    cfg = config(models={"claude": {"provider": "ant", "fallbacks": ["gpt"]}})
    gw, ups = gateway(cfg)
    gw.accountant = books
    err = OverloadedError("down")
    err.upstream_status = 529
    ups["ant"].answers += [
        json_reply({"type": "error", "error": {"type": "overloaded_error", "message": "down"}}, 529)
    ] * 3
    ups["oai"].answers.append(
        json_reply(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-up",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            }
        )
    )
    reply = await gw.messages(dict(BODY), trusted=True)
    assert reply.headers["x-dragoman-model"] == "gpt"
    kinds = [c[0] for c in books.calls]
    assert kinds[0] == "hold" and kinds[-1] == "confirm" and "retarget" in kinds
    _, info, outcome = books.calls[-1]
    assert info.provider == "oai" and outcome.provider == "oai" and outcome.model == "gpt"


async def test_a_stream_settles_at_its_end_with_what_was_delivered() -> None:
    books = Books()
    gw, ups = gateway(config())
    gw.accountant = books
    ups["ant"].answers.append(FakeStream(anthropic_stream("hello")))
    reply = await gw.messages({**BODY, "stream": True}, trusted=True)
    assert [c[0] for c in books.calls] == ["hold"]  # nothing settled while it streams
    await drain(reply)
    assert [c[0] for c in books.calls] == ["hold", "confirm"]
    assert books.calls[1][2].status == 200 and books.calls[1][2].usage.output_tokens == 7


async def test_a_client_that_leaves_is_settled_as_499_once() -> None:
    books = Books()
    gw, ups = gateway(config())
    gw.accountant = books
    ups["ant"].answers.append(FakeStream(anthropic_stream("hello")))
    reply = await gw.messages({**BODY, "stream": True}, trusted=True)
    assert reply.stream is not None
    await anext(reply.stream)
    await reply.stream.aclose()  # type: ignore[attr-defined]
    await reply.stream.aclose()  # type: ignore[attr-defined]
    settled = [c for c in books.calls if c[0] in ("confirm", "cancel")]
    assert len(settled) == 1 and settled[0][2].status == 499


async def test_a_refusal_before_any_attempt_writes_its_usage_row_only() -> None:
    books = Books()
    gw, _ = gateway(config())
    gw.accountant = books
    with pytest.raises(DragomanError):
        await gw.messages({**BODY, "model": "nope"}, trusted=True)
    assert [c[0] for c in books.calls] == ["record"]
    assert books.calls[0][2].status == 404


async def test_observe_counts_a_broken_stream_with_its_failure() -> None:
    gw, ups = gateway(config())
    ups["oai"].answers.append(FakeStream(openai_stream("x", complete=False)))
    before = _count("chat_completions", "openai", "gpt", 502, True)
    reply = await gw.chat({**CHAT, "stream": True}, trusted=True)
    assert _count("chat_completions", "openai", "gpt", 502, True) == before  # not yet
    out = await drain(reply)
    assert b'"error"' in out and b"[DONE]" not in out
    assert _count("chat_completions", "openai", "gpt", 502, True) == before + 1


async def test_observe_counts_legacy_completions_and_errors() -> None:
    gw, ups = gateway(config())
    ups["oai"].answers.append(FakeStream(openai_stream("x")))
    before = _count("completions", "openai", "gpt", 200, True)
    reply = await gw.completions(
        {"model": "gpt", "prompt": "hi", "max_tokens": 5, "stream": True}, trusted=True
    )
    out = await drain(reply)
    assert b"text_completion" in out and out.endswith(b"data: [DONE]\n\n")
    assert _count("completions", "openai", "gpt", 200, True) == before + 1
    before = _count("chat_completions", "openai", "", 404, False)
    with pytest.raises(DragomanError):
        await gw.chat({**CHAT, "model": "nope"}, trusted=True)
    assert _count("chat_completions", "openai", "", 404, False) == before + 1
