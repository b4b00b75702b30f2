"""Stream framing over hostile chunking (audit #29): one huge event sent in small pieces costs
time linear in its size (no re-concatenation of the tail per chunk), CRLF framing split across
chunks is still one boundary, and undecodable bytes are no exception."""

from __future__ import annotations

import time

from dragoman.dialects.anthropic.watch import AnthropicWatch as AnthropicRelay
from dragoman.dialects.openai.watch import OpenAIWatch as OpenAIRelay
from dragoman.protocols.sse import SSEParser

#: 4 MiB in 512-byte chunks: ~16 GB copied by a quadratic tail, a few MB by a linear one
SIZE, PIECE = 4 * 1024 * 1024, 512


def _pieces(event: bytes) -> list[bytes]:
    return [event[i : i + PIECE] for i in range(0, len(event), PIECE)]


def _huge_event(prefix: bytes) -> bytes:
    return prefix + b"x" * SIZE + b'"}}\n\n'


def test_parser_is_linear_in_one_huge_event() -> None:
    chunks = _pieces(_huge_event(b'data: {"a": {"b": "'))
    p = SSEParser()
    t0 = time.perf_counter()
    events = [ev for c in chunks for ev in p.feed(c)]
    assert time.perf_counter() - t0 < 1.0
    assert len(events) == 1 and len(events[0].data) == SIZE + 16


def test_relays_are_linear_in_one_huge_event() -> None:
    a_chunks = _pieces(_huge_event(b'event: content_block_delta\ndata: {"delta": {"text": "'))
    o_chunks = _pieces(_huge_event(b'data: {"choices": [{"delta": {"content": "'))
    t0 = time.perf_counter()
    ra = AnthropicRelay()
    for c in a_chunks:
        ra.feed(c)
    ro = OpenAIRelay()
    out = b"".join(ro.feed(c) for c in o_chunks)
    assert time.perf_counter() - t0 < 2.0
    assert len(out) == len(b"".join(o_chunks))


def test_crlf_split_across_chunks_is_one_boundary() -> None:
    from dragoman.protocols.sse import EventCutter

    c = EventCutter()
    got = [c.cut(b"data: 1\r"), c.cut(b"\n\r"), c.cut(b"\ndata: 2\r\n"), c.cut(b"\r\n")]
    assert got == [b"", b"", b"data: 1\n\n", b"data: 2\n\n"]
    c2 = EventCutter()  # a lone \r\r is a boundary too (the SSE spec's CR line ends)
    assert c2.cut(b"data: 1\r") == b"" and c2.cut(b"\rdata: 2") == b"data: 1\n\n"
    assert c2.tail == b"data: 2"


def test_undecodable_bytes_are_replaced() -> None:
    (ev,) = SSEParser().feed(b"event: e\xff\ndata: caf\xc3\n\n")
    assert ev.event == "e\ufffd" and ev.data == "caf\ufffd"
