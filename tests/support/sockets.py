"""Upstreams that fail at the TCP level, each on a port the test owns for as long as it runs.

Nothing here closes a port and hopes nobody takes it (no bind-close-reuse, no ``127.0.0.1:9``):
the socket stays bound until ``close()``, so the behaviour is the same on a busy machine.

* ``RefusedPort``: bound, never listening: every connect is refused at once (RST).
* ``SilentPort``: listening, never reading or answering: connects succeed (the kernel completes
  the handshake), the request is sent, and no byte ever comes back (a first-byte timeout).
* ``FullBacklogPort``: listening with a backlog of 0, already filled by a connection of its own:
  the kernel drops further SYNs, so a connect neither succeeds nor fails (a connect timeout).
"""

from __future__ import annotations

import socket
from typing import Self


class _Owned:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._extra: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for s in self._extra:
            s.close()
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RefusedPort(_Owned):
    """Connection refused, on a port nobody else can take while this object lives."""


class SilentPort(_Owned):
    """Accepts connections (in the kernel) and never answers."""

    def __init__(self, backlog: int = 64) -> None:
        super().__init__()
        self.sock.listen(backlog)


class FullBacklogPort(_Owned):
    """A connect to this port hangs until the client's connect timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.sock.listen(0)
        filler = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self._extra.append(filler)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.2)
        try:
            probe.connect(("127.0.0.1", self.port))
        except TimeoutError:
            pass  # as intended: the backlog is full and SYNs are dropped
        else:  # pragma: no cover - a kernel that queues more than backlog + 1
            raise RuntimeError("the listen backlog did not fill: connect timeouts cannot be shown")
        finally:
            probe.close()
