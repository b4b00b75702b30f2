"""An aiohttp resolver that answers only with public addresses: the webhook sender connects to
what this returns, so a name that resolves (or is rebound) to a private, loopback or
link-local address is never called, whatever the URL check saw (audit #2b;
docs/accounting.md, "Alerts")."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from dragoman.guard.urls import public_address


class PublicResolver(AbstractResolver):
    """Resolves through ``inner`` (aiohttp's default resolver when None, which runs on the
    loop: ``getaddrinfo`` in a thread or aiodns); fails when any address is not public."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        infos = await self.inner.resolve(host, port, family)
        for info in infos:
            addr = ipaddress.ip_address(str(info["host"]).split("%", 1)[0])
            if not public_address(addr):
                raise OSError(f"webhook host {host} resolves to {addr}, not a public address")
        return list(infos)

    async def close(self) -> None:
        await self.inner.close()
