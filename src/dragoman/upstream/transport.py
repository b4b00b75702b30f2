"""The transport contract: ``send(UpstreamRequest) -> UpstreamResponse``, nothing else.

As httpx's ``AsyncBaseTransport``: a provider builds the request (URL, headers, body) and reads
the response; how the bytes travel (aiohttp, in memory, SyftBox) is the transport's business.
A transport never follows redirects, maps every foreign exception to a typed
``UpstreamConnectionError`` / ``BadUpstreamResponse`` (``dragoman.errors``), and caps what it
reads (docs/upstream.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: default caps on what an upstream may send: a whole body, and one server-sent event
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_EVENT_BYTES = 8 * 1024 * 1024


@dataclass(slots=True)
class UpstreamRequest:
    """One HTTP request to an upstream."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    #: the body will be read as a stream: past the headers, silences up to this many seconds
    #: are allowed between chunks (None: read whole, within the first-byte timeout)
    idle: float | None = None
    #: a bound on the whole exchange that overrides the provider's (probes: a few seconds)
    total: float | None = None


class UpstreamResponse(Protocol):
    """An upstream's answer: status and headers at once, the body on demand."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body (at most the transport's cap, else ``BadUpstreamResponse``)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a silence longer than ``idle`` raises ``UpstreamTimeout``."""
        ...

    def close(self) -> None:
        """Drop the connection now (the client left, or the body is not wanted)."""
        ...

    def release(self) -> None:
        """Give the connection back to the pool (the body was read)."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Sends one request to an upstream and returns once its status and headers arrived."""

    #: whether responses can be read incrementally (SyftBox RPC cannot)
    streams: bool

    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
