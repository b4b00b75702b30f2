"""Upstream endpoints: a provider is a name, a base URL, credentials and a transport.

Providers are the only code that talks to upstreams, and they do it through a ``Transport``
(``upstream/``: aiohttp in production, in memory in tests). They move bytes; what the bytes
mean is the translators' business, and what to do on failure is the router's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import ProviderConfig
from ..errors import DragomanError, OverloadedError, UpstreamError
from ..upstream.events import bounded_events
from ..upstream.http import HTTPTransport
from ..upstream.transport import MAX_EVENT_BYTES, Transport, UpstreamRequest, UpstreamResponse

log = logging.getLogger("dragoman.providers")


@dataclass(slots=True)
class UpstreamReply:
    """A complete (non-streamed) upstream answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamStream:
    """An upstream answer whose status was 2xx and whose body is still arriving."""

    __slots__ = ("_resp", "headers", "idle", "max_event", "provider", "status")

    def __init__(
        self,
        resp: UpstreamResponse,
        idle: float,
        max_event: int = MAX_EVENT_BYTES,
        provider: str = "",
    ) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers
        self.idle = idle
        self.max_event = max_event
        self.provider = provider

    def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; an idle gap longer than the provider's limit raises 504,
        a broken connection 529 (typed by the transport), an event over ``max_event`` 502."""
        return bounded_events(self._resp.chunks(), self.max_event, self.provider)

    def close(self) -> None:
        """Drop the upstream connection now (client gone, or we are done)."""
        self._resp.close()

    def release(self) -> None:
        self._resp.release()


class Provider:
    """One upstream endpoint (base URL + key) and the transport that reaches it."""

    kind: str = ""

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        api_key: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else config.api_key
        self.transport: Transport = transport or HTTPTransport(
            name, config.timeouts, config.max_connections, config.max_response_bytes
        )

    async def close(self) -> None:
        await self.transport.aclose()

    # -- requests ----------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be shown of this provider: its key, and its configured header values
        (a proxy's own credentials often travel in one)."""
        out = [self.api_key] if self.api_key else []
        out += [v for v in self.config.headers.values() if len(v) >= 8]
        return tuple(out)

    async def _open(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        idle: float | None = None,
    ) -> UpstreamResponse:
        """Send one request; returns once the status and headers arrived."""
        return await self.transport.send(UpstreamRequest(method, url, headers, body, idle))

    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> UpstreamReply:
        resp = await self._open(method, self.url(path), body, headers)
        data = await resp.read()
        return UpstreamReply(resp.status, resp.headers, data)

    async def stream(
        self, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamStream | UpstreamReply:
        """POST and return once the upstream has answered: a stream if 2xx, else the full
        answer (an error, or a redirect, which is never followed)."""
        idle = self.config.timeouts.idle
        resp = await self._open("POST", self.url(path), body, headers, idle=idle)
        if resp.status >= 300:
            try:
                data = await resp.read()
            except UpstreamError:
                data = b""
            return UpstreamReply(resp.status, resp.headers, data)
        return UpstreamStream(resp, idle, self.config.max_event_bytes, self.name)

    async def health(self) -> tuple[bool, str]:
        """Probe the upstream: 200 or 401 on its models/health endpoint counts as up."""
        raise NotImplementedError

    async def _probe(self, urls: list[str], headers: Mapping[str, str]) -> tuple[bool, str]:
        """GET each URL in turn, never following a redirect; the outcome names the path only
        (the base URL may be an internal address: docs/upstream.md)."""
        last = "no answer"
        for url in urls:
            shown = "GET " + urlsplit(url).path
            try:
                async with asyncio.timeout(5):
                    resp = await self.transport.send(UpstreamRequest("GET", url, headers, total=5))
                    resp.close()
                if resp.status in (200, 401):
                    return True, f"{shown} -> {resp.status}"
                last = f"{shown} -> {resp.status}"
            except (TimeoutError, UpstreamError) as e:
                last = f"{shown} -> {type(e).__name__}"
        return False, last


def upstream_failure(e: BaseException) -> DragomanError:
    """The error a caller sees for an exception raised while talking to an upstream."""
    if isinstance(e, DragomanError):
        return e
    return OverloadedError(f"upstream failed: {type(e).__name__}")
