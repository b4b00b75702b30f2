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


class EventCutter:
    """Cuts a byte stream at event boundaries (``\\n\\n``, CRLF framing normalised).

    Linear in the bytes fed, however they are chunked: an incomplete event is kept as a list of
    chunks and joined once, when its boundary arrives (joining the tail to every new chunk
    would be quadratic for one huge event sent in small pieces). The size of one event is
    bounded by the transport (``upstream/events.py``), not here.
    """

    __slots__ = ("_cr", "_parts")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._cr = False  # a chunk ended in ``\\r``: it may be half of a ``\\r\\n``

    def cut(self, chunk: bytes) -> bytes:
        """The complete events the tail and ``chunk`` make (b"" when none is complete)."""
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = self._parts
        if parts:
            if (parts[-1][-1:] + chunk).find(b"\n\n") < 0:
                parts.append(chunk)
                return b""
            data = b"".join(parts) + chunk
        else:
            data = chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._parts = [data] if data else []
            return b""
        rest = data[end + 2 :]
        self._parts = [rest] if rest else []
        return data[: end + 2]

    @property
    def tail(self) -> bytes:
        """The incomplete event held so far (for the end of the stream)."""
        return b"".join(self._parts) + (b"\n" if self._cr else b"")

    def clear(self) -> None:
        self._parts, self._cr = [], False


class SSEParser:
    """Feed bytes as they arrive; get back the complete events they finish."""

    __slots__ = ("_cutter",)

    def __init__(self) -> None:
        self._cutter = EventCutter()

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        complete = self._cutter.cut(chunk)
        if not complete:
            return []
        out: list[SSEEvent] = []
        for block in complete.split(b"\n\n")[:-1]:
            ev = _parse_block(block + b"\n\n")
            if ev is not None:
                out.append(ev)
        return out

    def flush(self) -> list[SSEEvent]:
        """Whatever is left when the stream ends (a final event without its blank line)."""
        tail = self._cutter.tail
        self._cutter.clear()
        if not tail.strip():
            return []
        ev = _parse_block(tail + b"\n\n")
        return [ev] if ev is not None else []

    @property
    def pending(self) -> bool:
        return bool(self._cutter.tail.strip())


def _parse_block(block: bytes) -> SSEEvent | None:
    event: str | None = None
    data: list[str] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        # an upstream's bytes, not ours: undecodable ones become U+FFFD, never an exception
        if name == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            event = value.decode("utf-8", "replace")
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
