"""The aiohttp transport: one pooled session per provider, its timeouts, and the ONE place
where aiohttp's exceptions become dragoman's typed errors (``map_aiohttp_errors``).

Redirects are never followed (docs/upstream.md: aiohttp drops ``Authorization`` on a
cross-origin redirect but not ``x-api-key``, so following one would hand an Anthropic-kind
provider key and the conversation to another host): a 3xx comes back as it is, and is
classified as a bad gateway. Bodies are read up to a cap.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

import aiohttp

from ..config import Timeouts
from ..errors import BadUpstreamResponse, UpstreamTimeout, UpstreamUnreachable
from .transport import MAX_BODY_BYTES, UpstreamRequest

log = logging.getLogger("dragoman.upstream")

Phase = Literal["send", "body", "stream"]


@contextmanager
def map_aiohttp_errors(
    name: str, phase: Phase, timeouts: Timeouts, idle: float = 0.0
) -> Iterator[None]:
    """aiohttp / OS exceptions raised while talking to upstream ``name`` -> typed errors.

    Messages name the provider as configured and never the host, port or OS error text (which
    carry internal addresses): those go to the debug log only.
    """
    try:
        yield
    except aiohttp.ConnectionTimeoutError as e:
        raise UpstreamTimeout(
            f"upstream {name}: could not connect within {timeouts.connect:g}s"
        ) from e
    except (TimeoutError, aiohttp.ServerTimeoutError) as e:
        if phase == "stream":
            msg = f"upstream {name} sent nothing for {idle:g}s in the middle of a stream"
        elif phase == "body":
            msg = f"upstream {name} timed out sending its body"
        else:
            msg = f"upstream {name} did not answer within {timeouts.first_byte:g}s"
        raise UpstreamTimeout(msg) from e
    except (aiohttp.ClientConnectorError, ConnectionError) as e:
        log.debug("upstream %s unreachable: %r", name, e)
        raise UpstreamUnreachable(f"upstream {name} unreachable") from e
    except aiohttp.ClientPayloadError as e:
        log.debug("upstream %s payload error: %r", name, e)
        what = "stream broke" if phase == "stream" else "body broke"
        raise UpstreamUnreachable(f"upstream {name} {what}: the connection ended early") from e
    except (aiohttp.ClientError, OSError) as e:
        log.debug("upstream %s failed: %r", name, e)
        what = {"send": "failed", "body": "failed mid-body", "stream": "connection lost"}[phase]
        raise UpstreamUnreachable(f"upstream {name} {what}: {type(e).__name__}") from e


class HTTPResponse:
    """An aiohttp response behind the ``UpstreamResponse`` contract."""

    __slots__ = ("_idle", "_name", "_resp", "_timeouts", "headers", "max_body", "status")

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        name: str,
        timeouts: Timeouts,
        max_body: int,
        idle: float,
    ) -> None:
        self._resp = resp
        self._name = name
        self._timeouts = timeouts
        self._idle = idle
        self.max_body = max_body
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self) -> bytes:
        """The whole body, at most ``max_body`` bytes (decompressed): beyond, a 502."""
        declared = self._resp.content_length
        if declared is not None and declared > self.max_body:
            self.close()
            raise self._too_large()
        if declared is not None and "Content-Encoding" not in self._resp.headers:
            try:  # the declared length bounds what is read (the common case: one read)
                with map_aiohttp_errors(self._name, "body", self._timeouts):
                    return await self._resp.read()
            finally:
                self._resp.release()
        parts: list[bytes] = []
        size = 0
        try:
            with map_aiohttp_errors(self._name, "body", self._timeouts):
                async for chunk in self._resp.content.iter_any():
                    size += len(chunk)
                    if size > self.max_body:
                        self.close()
                        raise self._too_large()
                    parts.append(chunk)
        finally:
            self._resp.release()
        return b"".join(parts)

    def _too_large(self) -> BadUpstreamResponse:
        return BadUpstreamResponse(
            f"upstream {self._name} sent a body larger than {self.max_body} bytes"
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        with map_aiohttp_errors(self._name, "stream", self._timeouts, self._idle):
            async for chunk in self._resp.content.iter_any():
                yield chunk

    def close(self) -> None:
        self._resp.close()

    def release(self) -> None:
        self._resp.release()


class HTTPTransport:
    """One upstream's connection pool (aiohttp), with that provider's timeouts."""

    streams = True

    def __init__(
        self,
        name: str,
        timeouts: Timeouts,
        max_connections: int = 1000,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.name = name
        self.timeouts = timeouts
        self.max_connections = max_connections
        self.max_body = max_body
        self._timeout = aiohttp.ClientTimeout(
            total=timeouts.total,
            sock_connect=timeouts.connect,
            connect=timeouts.connect,
            sock_read=timeouts.first_byte,
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=self.max_connections,
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

    async def send(self, request: UpstreamRequest) -> HTTPResponse:
        session = self.session
        timeout = self._timeout if request.total is None else aiohttp.ClientTimeout(request.total)
        with map_aiohttp_errors(self.name, "send", self.timeouts):
            resp = await session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,  # never: docs/upstream.md, "Redirects"
                timeout=timeout,
            )
        idle = request.idle
        if idle is not None and resp.status < 300:
            conn = resp.connection
            if conn is not None and conn.protocol is not None:
                # from here the socket read timeout is the idle gap, not first_byte: set it,
                # and re-arm the timer that the last bytes (headers, early events) armed with
                # first_byte (tests/routing: a gap longer than first_byte but within idle passes)
                conn.protocol.read_timeout = idle
                if not resp.content.is_eof():  # (a finished body dropped its timer for good)
                    conn.protocol.start_timeout()
        return HTTPResponse(resp, self.name, self.timeouts, self.max_body, idle or 0.0)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
