"""Server-side timeouts: no client can hold a connection, a request or an upstream forever.

Three limits (``server:`` in the config, docs/timeouts.md):

* ``header_timeout``: aiohttp's keep-alive timer, which runs from a connection's opening (or its
  previous response) until a complete request head arrived; it closes idle connections and
  slowloris heads alike, before any handler (or auth) runs;
* ``body_timeout``: reading a request body (a client announcing a body and trickling it);
* ``write_timeout``: one write to a client; a stream client that stops reading is dropped, and
  the stream ends as a disconnect (its upstream is closed and it is charged for what was
  delivered, like a client that went away).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from ..config import ServerConfig
from ..errors import InvalidRequestError


class ClientStalledError(ConnectionResetError):
    """The client did not read what the gateway wrote within ``server.write_timeout``: handled
    like a client that went away (it is one, for every purpose but the socket)."""


#: chunks smaller than this, written to an empty transport buffer, cannot wait (see client_write)
FAST_WRITE = 16 * 1024


def runner_options(server: ServerConfig) -> dict[str, Any]:
    """Keyword arguments of ``web.AppRunner`` for these limits."""
    return {"keepalive_timeout": server.header_timeout}


async def read_body(request: web.Request, seconds: float) -> bytes:
    """The request body, or a 408 (in the caller's dialect) when it takes over ``seconds``."""
    if request.content.is_eof():  # the whole body came with the head: nothing to wait for
        return await request.read()
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise InvalidRequestError(
            f"the request body was not received within {seconds:g} s (server.body_timeout)",
            status=408,
        ) from None


async def client_write(
    request: web.Request, op: Awaitable[None], seconds: float, size: int = FAST_WRITE
) -> None:
    """Await a write to the client (``resp.write(...)``, ``resp.write_eof()``), dropping the
    client when it does not read for ``seconds``.

    A write can only wait when the transport has paused writing (its buffer above the high-water
    mark, 64 KiB). With an empty buffer and a small chunk (``size`` bytes, under ``FAST_WRITE``)
    it cannot, so the timer (a few microseconds per chunk, most of a stream's writes) is skipped.
    """
    transport = request.transport
    if size < FAST_WRITE and transport is not None and not transport.get_write_buffer_size():
        await op
        return
    try:
        async with asyncio.timeout(seconds):
            await op
    except TimeoutError:
        transport = request.transport
        if transport is not None:
            transport.abort()  # close() would wait for a buffer the client never drains
        raise ClientStalledError(
            f"the client read nothing for {seconds:g} s (server.write_timeout)"
        ) from None
