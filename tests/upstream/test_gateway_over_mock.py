"""The gateway over the in-memory transport: malformed upstream answers (audit #29) end in a
typed error or an error event in the client's dialect, never an exception of ours or unbounded
memory. No socket: the providers' transports are swapped for ``MockTransport``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dragoman.bootstrap import build_gateway
from dragoman.config import load_config_dict
from dragoman.core.gateway import Gateway
from dragoman.errors import BadUpstreamResponse, DragomanError
from dragoman.upstream.mock import MockResponse, MockTransport
from dragoman.upstream.transport import UpstreamRequest

MSG = [{"role": "user", "content": "hi"}]


def _engine(kind: str, answer: Callable[[UpstreamRequest], MockResponse], **prov: Any) -> Gateway:
    base = "http://up.invalid" + ("/v1" if kind == "openai" else "")
    flavor = "vllm" if kind == "openai" else "anthropic"
    cfg = load_config_dict(
        {
            "providers": {
                "up": {"kind": kind, "base_url": base, "api_key": "k", "flavor": flavor, **prov}
            },
            "models": {"m": {"provider": "up"}},
            "routing": {"retries": {"max_retries": 0}},
            "store": {"enabled": False},
        }
    )
    eng = build_gateway(cfg)

    def handler(req: UpstreamRequest) -> MockResponse:
        return answer(req) if req.method == "POST" else MockResponse(200, {}, b'{"data":[]}')

    eng.providers["up"].transport = MockTransport(handler)
    return eng


async def _drain(stream: AsyncIterator[bytes] | None) -> bytes:
    assert stream is not None
    return b"".join([c async for c in stream])


def _chat_chunk(text: str) -> bytes:
    return (
        b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
        b'"delta":{"content":"' + text.encode() + b'"},"finish_reason":null}]}\n\n'
    )


@pytest.mark.parametrize(
    "odd",
    [
        b"data: [1, 2]\n\n",
        b'data: {"choices": "nope"}\n\n',
        b'data: {"choices": [7]}\n\n',
        b'data: {"choices": [{"delta": "x"}]}\n\n',
        # a usage that is not an object: read when the books settle, after the last event
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":"x"}\n\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":"lots","completion_tokens":1e999}}\n\n',
    ],
)
async def test_odd_event_shapes_end_the_stream_with_an_error_event(odd: bytes) -> None:
    eng = _engine("openai", lambda r: MockResponse(200, {}, [_chat_chunk("hel"), odd]))
    try:
        res = await eng.messages({"model": "m", "max_tokens": 5, "stream": True, "messages": MSG})
        out = await _drain(res.stream)
    finally:
        await eng.close()
    last = out.rstrip().split(b"\n\n")[-1]
    assert last.startswith((b"event: error", b"event: message_stop")), out[-300:]
    assert b"event: error" in out or b"usage" in odd


async def test_an_event_over_the_cap_ends_the_stream_with_an_error_event() -> None:
    huge = [_chat_chunk("a"), b'data: {"choices": [{"delta": {"content": "'] + [b"x" * 4096] * 8
    eng = _engine("openai", lambda r: MockResponse(200, {}, huge), max_event_bytes=16384)
    try:
        res = await eng.messages({"model": "m", "max_tokens": 5, "stream": True, "messages": MSG})
        out = await _drain(res.stream)
    finally:
        await eng.close()
    last = out.rstrip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error") and b"larger than 16384 bytes" in last


async def test_a_body_over_the_cap_is_a_502() -> None:
    eng = _engine("anthropic", lambda r: MockResponse(200, {}, b"{" + b" " * 5000 + b"}"))
    eng.providers["up"].transport.max_body = 4096  # type: ignore[attr-defined]
    try:
        with pytest.raises(BadUpstreamResponse) as ei:
            await eng.messages({"model": "m", "max_tokens": 5, "messages": MSG})
    finally:
        await eng.close()
    assert ei.value.status == 502


async def test_undecodable_bytes_in_a_first_error_event_are_typed() -> None:
    bad = b'data: {"error": {"message": "\xff\xfe broken", "type": "server_error"}}\n\n'
    eng = _engine("openai", lambda r: MockResponse(200, {}, [bad]))
    try:
        with pytest.raises(DragomanError) as ei:
            await eng.messages({"model": "m", "max_tokens": 5, "stream": True, "messages": MSG})
    finally:
        await eng.close()
    assert ei.value.upstream_status is not None and "broken" in ei.value.message
