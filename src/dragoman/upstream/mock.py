"""An in-memory transport for unit tests, as httpx's ``MockTransport``: a handler function
answers each request, so a provider (and what is built on it) runs without a socket.

The handler returns a ``MockResponse``; its ``body`` is bytes or a list of chunks (a stream),
and ``error`` makes ``send`` (or, with chunks before it, the stream) raise a typed error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import BadUpstreamResponse, DragomanError
from .transport import MAX_BODY_BYTES, UpstreamRequest


@dataclass
class MockResponse:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    #: the whole body, or the chunks a stream delivers one by one
    body: bytes | Sequence[bytes] = b""
    #: raised by ``send`` when no chunk precedes it, else after the chunks
    error: DragomanError | None = None
    max_body: int = MAX_BODY_BYTES
    closed: bool = False

    def _chunks(self) -> list[bytes]:
        if isinstance(self.body, bytes):
            return [self.body] if self.body else []
        return list(self.body)

    async def read(self) -> bytes:
        data = b"".join(self._chunks())
        if len(data) > self.max_body:
            raise BadUpstreamResponse(f"upstream sent a body larger than {self.max_body} bytes")
        if self.error is not None:
            raise self.error
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        for c in self._chunks():
            if self.closed:
                return
            yield c
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        pass


Handler = Callable[[UpstreamRequest], "MockResponse | Awaitable[MockResponse]"]


class MockTransport:
    """Answers every request with ``handler(request)``; keeps the requests it saw."""

    streams = True

    def __init__(self, handler: Handler, max_body: int = MAX_BODY_BYTES) -> None:
        self.handler = handler
        self.max_body = max_body
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> MockResponse:
        self.requests.append(request)
        got = self.handler(request)
        resp = got if isinstance(got, MockResponse) else await got
        if resp.error is not None and not resp._chunks():
            raise resp.error
        resp.max_body = self.max_body
        return resp

    async def aclose(self) -> None:
        pass
