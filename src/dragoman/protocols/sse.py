"""Server-sent events: an incremental parser for upstream bytes and the framing we emit.

Hand-written because it is the innermost loop of every stream: the parser only splits on blank
lines and reads ``event:``/``data:`` fields (the SSE spec's subset both dialects use), and it
keeps the raw bytes of each event so pass-through paths can relay them without re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str
    raw: bytes  # the event's bytes as received, blank-line terminator included


class SSEParser:
    """Feed bytes as they arrive; get back the complete events they finish."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out: list[SSEEvent] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            block = buf[start : end + 2]
            start = end + 2
            ev = _parse_block(block)
            if ev is not None:
                out.append(ev)
        self._buf = buf[start:]
        return out

    def flush(self) -> list[SSEEvent]:
        """Whatever is left when the stream ends (a final event without its blank line)."""
        if not self._buf.strip():
            self._buf = b""
            return []
        block, self._buf = self._buf + b"\n\n", b""
        ev = _parse_block(block)
        return [ev] if ev is not None else []

    @property
    def pending(self) -> bool:
        return bool(self._buf.strip())


def _parse_block(block: bytes) -> SSEEvent | None:
    event: str | None = None
    data: list[str] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value.decode())
        elif name == b"event":
            event = value.decode()
    if event is None and not data:
        return None
    return SSEEvent(event, "\n".join(data), block)


def anthropic_frame(event: str, payload: dict[str, Any]) -> bytes:
    """``event: X`` + ``data: {json}`` + blank line (the SDK dispatches on the event name)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def openai_frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


OPENAI_DONE = b"data: [DONE]\n\n"

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
