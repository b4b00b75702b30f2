"""A bound on one server-sent event of an upstream stream.

The stream parsers keep an incomplete event until its blank line arrives; an upstream that
never sends one (or sends a gigabyte of ``data:``) would grow that buffer without end. This
watches the bytes since the last event boundary, at C speed and constant memory, and ends the
stream with ``BadUpstreamResponse`` past ``max_event`` bytes, which every path turns into an
error event in the client's dialect (docs/upstream.md, "Caps").
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import BadUpstreamResponse

#: the byte sequences that can end an event (``\n\n``, ``\r\r``, ``\r\n\r\n``)
_ENDS = (b"\n\n", b"\r\r", b"\n\r\n")


def _last_end(data: bytes) -> int:
    """Index just past the last event boundary in ``data``, or -1."""
    best = -1
    for sep in _ENDS:
        i = data.rfind(sep)
        if i >= 0:
            best = max(best, i + len(sep))
    return best


async def bounded_events(
    chunks: AsyncIterator[bytes], max_event: int, provider: str
) -> AsyncIterator[bytes]:
    """``chunks`` unchanged, or ``BadUpstreamResponse`` once one event exceeds ``max_event``."""
    since = 0  # bytes since the last boundary
    prev = b""  # the last bytes seen: a boundary may straddle two chunks
    async for chunk in chunks:
        window = prev + chunk
        end = _last_end(window)
        since = since + len(chunk) if end < 0 else len(window) - end
        if since > max_event:
            raise BadUpstreamResponse(
                f"upstream {provider} sent a stream event larger than {max_event} bytes"
            )
        prev = window[-3:]
        yield chunk
