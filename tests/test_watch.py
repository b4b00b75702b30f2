"""The pass-through watchers (``dragoman.dialects.*.watch``): usage found whatever the JSON
spacing, the usage chunk dragoman asked for hidden, in-band errors typed, and what was relayed
estimated from the bytes when no usage comes (framing learnt from sampled events, whatever the
upstream adds to each chunk)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from tests.fakes import tokens as fake_tokens

from dragoman.dialects.anthropic.watch import AnthropicWatch
from dragoman.dialects.openai.watch import OpenAIWatch


def _chunk(
    delta: dict[str, Any], *, spaced: bool = False, extra: dict[str, Any] | None = None
) -> bytes:
    obj: dict[str, Any] = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "service_tier": "default",
        "system_fingerprint": "fp_eb9dce56a8",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
        **(extra or {}),
    }
    sep = None if spaced else (",", ":")
    return b"data: " + json.dumps(obj, separators=sep).encode() + b"\n\n"


USAGE = {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366}


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
@pytest.mark.parametrize("inject", [True, False], ids=["injected", "asked"])
def test_openai_usage_chunk_read_and_hidden_when_injected(spaced: bool, inject: bool) -> None:
    sep = None if spaced else (",", ":")
    usage_chunk = (
        b"data: "
        + json.dumps({"id": "x", "choices": [], "usage": USAGE}, separators=sep).encode()
        + b"\n\n"
    )
    r = OpenAIWatch(None, inject)
    first = _chunk({"content": "hi"}, spaced=spaced, extra={"usage": None})
    out = r.feed(first)
    out += r.feed(usage_chunk + b"data: [DONE]\n\n")
    expected = first + (b"" if inject else usage_chunk) + b"data: [DONE]\n\n"
    assert out == expected
    assert r.finish() == b""
    u = r.settled_usage(lambda: 999)
    assert (u.input_tokens, u.output_tokens, u.estimated) == (321, 45, False)


def test_openai_null_usage_stays_on_the_fast_path() -> None:
    """api.openai.com puts ``"usage":null`` on every chunk once include_usage is set: those are
    forwarded as they are, without being parsed (a malformed one would raise if parsed)."""
    r = OpenAIWatch(None, True)
    raw = b'data: {"choices":[{"delta":{"content":"x"}}],"usage":null,"oops":}\n\n'
    assert r.feed(raw) == raw
    raw2 = b'data: {"choices":[{"delta":{"content":"x"}}], "usage": null, "oops":}\n\n'
    assert r.feed(raw2) == raw2


def test_openai_error_chunk_is_typed() -> None:
    r = OpenAIWatch(None, True)
    r.feed(_chunk({"content": "partial"}))
    r.feed(b'data: {"error": {"message": "overloaded", "type": "server_error", "code": 503}}\n\n')
    assert r.finish() == b""
    assert (r.error, r.error_status, r.error_type) == ("overloaded", 500, "api_error")


WORDS = ["the ", "quick ", "brown ", "fox ", "jumps\n", "over ", "l'\u00e9t\u00e9 ", '"quoted" ']


@pytest.mark.parametrize(
    ("size", "pad", "together"),
    [
        (1, 0, 1),  # one character per chunk (a token each), constant framing
        (4, 0, 5),  # several chunks per read
        (12, 24, 1),  # api.openai.com-like: a random obfuscation field on every chunk
        (12, 24, 7),
    ],
)
def test_openai_estimate_of_what_was_relayed(size: int, pad: int, together: int) -> None:
    """No usage: the output is estimated from the bytes relayed, the framing of each chunk
    (ids, fingerprints, padding) learnt from chunks sampled along the stream, not guessed."""
    rng = random.Random(size * 100 + pad + together)
    text = "".join(rng.choice(WORDS) for _ in range(300))
    r = OpenAIWatch(None, True)
    r.feed(_chunk({"role": "assistant", "content": ""}))
    buf = b""
    for i in range(0, len(text), size):
        extra = {"usage": None, "obfuscation": "x" * rng.randint(0, pad)} if pad else None
        buf += _chunk({"content": text[i : i + size]}, extra=extra)
        if (i // size) % together == together - 1:
            r.feed(buf)
            buf = b""
    r.feed(buf)
    u = r.settled_usage(lambda: 77)
    truth = fake_tokens.count_text(text)
    assert u.estimated and u.input_tokens == 77
    assert truth <= u.output_tokens <= 2 * truth, (u.output_tokens, truth)


def test_anthropic_estimate_and_error_event() -> None:
    def ev(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 50, "output_tokens": 1}},
    }
    text = "hello world, " * 40
    r = AnthropicWatch()
    r.feed(ev("message_start", start) + ev("ping", {"type": "ping"}))
    r.feed(ev("content_block_start", {"type": "content_block_start", "index": 0}))
    deltas = b"".join(
        ev(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text[i : i + 5]},
            },
        )
        for i in range(0, len(text), 5)
    )
    r.feed(deltas[: len(deltas) // 2])  # several events per read, cut mid-event
    r.feed(deltas[len(deltas) // 2 :])
    r.feed(
        ev(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
    )
    assert r.finish() == b""  # the upstream's own error event ended it
    assert (r.error, r.error_status, r.error_type) == ("Overloaded", 529, "overloaded_error")
    u = r.settled_usage(lambda: 999)
    truth = fake_tokens.count_text(text)
    assert u.input_tokens == 50 and u.estimated
    assert truth <= u.output_tokens <= 2 * truth


def test_anthropic_error_event_split_across_chunks_is_scrubbed() -> None:
    """Every byte split of content + an ``error`` event echoing the key: the content events are
    forwarded as received, the error event rewritten without the key (issue 10, audit #3)."""
    key = "plain0123456789abcdef"
    content = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    )
    error = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"bad key ' + key.encode() + b'"}}\n\n'
    )
    stream = content + error
    for cut in range(1, len(stream)):
        relay = AnthropicWatch(None, (key,))
        out = relay.feed(stream[:cut]) + relay.feed(stream[cut:])
        assert key.encode() not in out
        assert out.startswith(content)
        assert b"event: error\n" in out and b"bad key [redacted]" in out
        assert relay.error == "bad key [redacted]" and relay.error_type == "overloaded_error"
        assert relay.meter.content_events == 1


def test_openai_error_chunk_is_scrubbed_and_content_untouched() -> None:
    key = "plain0123456789abcdef"
    content = _chunk({"content": "Hi"})
    error = b'data: {"error":{"message":"api_key=' + key.encode() + b'","code":500}}\n\n'
    relay = OpenAIWatch(None, False, (key,))
    out = relay.feed(content + error + b"data: [DONE]\n\n")
    # the error chunk ends the stream: the upstream's [DONE] after it is not passed on
    # (docs/protocols.md, "Stream endings")
    assert out.startswith(content) and b"[DONE]" not in out
    assert out.rstrip().split(b"\n\n")[-1].startswith(b'data: {"error"')
    assert key.encode() not in out and b"api_key=[redacted]" in out
    assert relay.error == "api_key=[redacted]"
