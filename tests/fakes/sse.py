"""Server-sent events: encoding (what the fakes write) and parsing (what tests read back).

The parser follows the WHATWG rules the official SDKs implement: events are separated by a
blank line (``\\n\\n``, ``\\r\\n\\r\\n`` or ``\\r\\r``), ``data:`` lines of one event are joined
with ``\\n``, a single space after the colon is dropped, ``:`` lines are comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

_FRAME_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(r"\r\n|\n|\r")


def anthropic_frame(event: str, data: Any) -> bytes:
    """One Anthropic SSE frame: an ``event:`` line naming the type, then the JSON."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def openai_frame(data: Any) -> bytes:
    """One OpenAI SSE frame: a ``data:`` line only (no event names in Chat Completions)."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


OPENAI_DONE = b"data: [DONE]\n\n"


def split_frames(raw: bytes) -> list[bytes]:
    """Split a raw SSE body into frames, each keeping its terminating blank line.

    Trailing bytes without a terminating blank line are returned as a last (partial) frame.
    """
    frames: list[bytes] = []
    pos = 0
    for m in _FRAME_END.finditer(raw):
        frames.append(raw[pos : m.end()])
        pos = m.end()
    if pos < len(raw) and raw[pos:].strip():
        frames.append(raw[pos:])
    return frames


@dataclass(frozen=True)
class SSEEvent:
    """One parsed event. ``event`` is None when the frame had no ``event:`` line."""

    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)

    @property
    def is_done(self) -> bool:
        return self.data == "[DONE]"


def parse_sse(raw: bytes | str) -> list[SSEEvent]:
    """Parse a complete SSE body into events (comment-only and empty frames are skipped)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    events: list[SSEEvent] = []
    event: str | None = None
    data: list[str] = []
    ev_id: str | None = None
    retry: int | None = None
    seen_field = False
    for line in [*_LINE_END.split(text), ""]:
        if line == "":
            if seen_field and (data or event is not None):
                events.append(SSEEvent(event, "\n".join(data), ev_id, retry))
            event, data, ev_id, retry, seen_field = None, [], None, None, False
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        seen_field = True
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            ev_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    return events
