"""What a pass-through stream delivered, counted on the way for the books.

The watchers (``dialects/*/watch.py``) do not parse every event: they cut the byte stream at event
boundaries with C-level ``bytes`` operations, count the bytes and number of content events, and
keep a few as samples. A stream that ends without usage (cut short, the client left, or an
upstream that reports none) is then charged for what it relayed (docs/accounting.md, "Charge
what was delivered"): the framing of a content event is learnt from the samples, parsed only
when the estimate is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..protocols.sse import _parse_block
from ..tokens import estimate_text_tokens
from ..usage import Usage

#: bytes of SSE framing and JSON around the text of one event, when no sample can be read
A_DELTA_OVERHEAD = 115
O_CHUNK_OVERHEAD = 130
#: content events kept to learn the framing from: the first few, then one in every
#: ``_SAMPLE_EVERY`` along the stream (framing can vary per event, e.g. random padding)
_FIRST_SAMPLES = 8
_SAMPLE_EVERY = 16
_MAX_SAMPLES = 32
#: UTF-8 bytes of (JSON-escaped) text per token: errs high, like ``dragoman.tokens``
_BYTES_PER_TOKEN = 3

#: the request's input estimate, computed only if needed (it costs a pass over the request)
InputEstimate = Callable[[], int]


def escaped_len(s: Any) -> int:
    """Length of a string as it appears inside JSON (without its quotes)."""
    return len(orjson.dumps(s)) - 2 if isinstance(s, str) else 0


class Meter:
    """Bytes and count of the content events relayed, plus a few of them as samples."""

    __slots__ = ("content_bytes", "content_events", "samples")

    def __init__(self) -> None:
        self.content_bytes = 0
        self.content_events = 0
        self.samples: list[bytes] = []

    def add(self, event: bytes, pad: int = 0) -> None:
        """Count one content event; ``pad``: bytes of its terminator cut off by a split."""
        self.content_bytes += len(event) + pad
        self.content_events += 1
        n = len(self.samples)
        if n < _FIRST_SAMPLES or (self.content_events % _SAMPLE_EVERY == 0 and n < _MAX_SAMPLES):
            self.samples.append(event + b"\n\n" if pad else event)

    def tokens(self, text_of: Callable[[Any], int], default_overhead: int) -> int:
        """Output tokens of the text relayed (0 if none): bytes minus the learnt framing."""
        if not self.content_events:
            return 0
        frames: list[int] = []
        for raw in self.samples:
            ev = _parse_block(raw)
            if ev is None or not ev.data:
                continue
            try:
                text = text_of(orjson.loads(ev.data))
            except (orjson.JSONDecodeError, TypeError, AttributeError):
                continue
            if text:
                frames.append(len(raw) - text)
        overhead = sum(frames) // len(frames) if frames else default_overhead
        text_bytes = self.content_bytes - overhead * self.content_events
        return -(-max(text_bytes, 0) // _BYTES_PER_TOKEN)


def estimated(input_estimate: InputEstimate, parts: list[str]) -> Usage:
    return Usage(input_estimate(), estimate_text_tokens("".join(parts)), estimated=True)
