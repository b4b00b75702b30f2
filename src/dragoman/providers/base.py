"""Upstream connections: one shared aiohttp pool per provider, with the provider's timeouts.

Providers are the only code that talks to upstreams. They move bytes; what the bytes mean is
the translators' business, and what to do on failure is the router's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp

from ..config import ProviderConfig
from ..errors import DragomanError, OverloadedError, UpstreamTimeoutError

log = logging.getLogger("dragoman.providers")


@dataclass(slots=True)
class UpstreamReply:
    """A complete (non-streamed) upstream answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamStream:
    """An upstream answer whose status was 2xx and whose body is still arriving."""

    __slots__ = ("_resp", "headers", "idle", "status")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers
        self.idle = idle

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; an idle gap longer than the provider's limit raises 504."""
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise UpstreamTimeoutError(
                f"upstream sent nothing for {self.idle:g}s in the middle of a stream"
            ) from e
        except aiohttp.ClientPayloadError as e:
            raise OverloadedError(f"upstream stream broke: {e}") from e
        except aiohttp.ClientError as e:
            raise OverloadedError(f"upstream connection lost: {type(e).__name__}") from e

    def close(self) -> None:
        """Drop the upstream connection now (client gone, or we are done)."""
        self._resp.close()

    def release(self) -> None:
        self._resp.release()


class Provider:
    """One upstream endpoint (base URL + key) and its connection pool."""

    kind: str = ""

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None = None) -> None:
        self.name = name
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else config.api_key
        t = config.timeouts
        self._timeout = aiohttp.ClientTimeout(
            total=t.total, sock_connect=t.connect, connect=t.connect, sock_read=t.first_byte
        )
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.config.max_connections,
                limit_per_host=self.config.max_connections,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    # -- requests ----------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def url(self, path: str) -> str:
        return self.base_url + path

    async def _open(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        try:
            return await self.session.request(method, url, data=body, headers=headers)
        except aiohttp.ConnectionTimeoutError as e:
            raise UpstreamTimeoutError(
                f"upstream {self.name}: could not connect within {self.config.timeouts.connect:g}s"
            ) from e
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise UpstreamTimeoutError(
                f"upstream {self.name} did not answer within {self.config.timeouts.first_byte:g}s"
            ) from e
        except aiohttp.ClientConnectorError as e:
            raise OverloadedError(
                f"upstream {self.name} unreachable: {e.os_error.strerror or e}"
            ) from e
        except aiohttp.ClientError as e:
            raise OverloadedError(f"upstream {self.name} failed: {type(e).__name__}: {e}") from e

    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> UpstreamReply:
        resp = await self._open(method, self.url(path), body, headers)
        try:
            data = await resp.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise UpstreamTimeoutError(f"upstream {self.name} timed out reading the body") from e
        except aiohttp.ClientError as e:
            raise OverloadedError(f"upstream {self.name} failed mid-body: {e}") from e
        finally:
            resp.release()
        return UpstreamReply(resp.status, resp.headers, data)

    async def stream(
        self, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamStream | UpstreamReply:
        """POST and return once the upstream has answered: a stream if 2xx, else the full error."""
        resp = await self._open("POST", self.url(path), body, headers)
        if resp.status >= 300:
            try:
                data = await resp.read()
            except aiohttp.ClientError:
                data = b""
            finally:
                resp.release()
            return UpstreamReply(resp.status, resp.headers, data)
        idle = self.config.timeouts.idle
        conn = resp.connection
        if conn is not None and conn.protocol is not None:
            # from here the socket read timeout is the idle gap, not first_byte: set it, and
            # re-arm the timer that the last bytes (headers, early events) armed with first_byte
            # (tests/routing: a gap longer than first_byte but within idle passes)
            conn.protocol.read_timeout = idle
            if not resp.content.is_eof():  # (a finished body has dropped its timer for good)
                conn.protocol.start_timeout()
        return UpstreamStream(resp, idle)

    async def health(self) -> tuple[bool, str]:
        """Probe the upstream: 200 or 401 on its models/health endpoint counts as up."""
        raise NotImplementedError

    async def _probe(self, urls: list[str], headers: Mapping[str, str]) -> tuple[bool, str]:
        last = "no answer"
        for url in urls:
            try:
                async with asyncio.timeout(5):
                    async with self.session.get(url, headers=headers) as r:
                        if r.status in (200, 401):
                            return True, f"GET {url} -> {r.status}"
                        last = f"GET {url} -> {r.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                last = f"GET {url} -> {type(e).__name__}"
        return False, last


def upstream_failure(e: BaseException) -> DragomanError:
    """The error a caller sees for an exception raised while talking to an upstream."""
    if isinstance(e, DragomanError):
        return e
    return OverloadedError(f"upstream failed: {type(e).__name__}")
