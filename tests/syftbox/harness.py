"""Two SyftBox clients on one data dir, the router under test on its own loop, the stock client.

No SyftBox server or daemon: the router owner's and the caller's ``syft_core`` clients share one
``data_dir``, so a ``.request`` the caller writes is in the router's watched folder at once
(docs/syftbox.md, "Testing"). The caller uses the stock ``syft_rpc`` client (``rpc.send`` writes
non-atomically, ``future.wait`` reads whatever it finds): it only works reliably because the
router reads tolerantly and writes atomically.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from syft_core import Client
from syft_rpc import rpc
from syft_rpc.protocol import SyftFuture, SyftResponse

import dragoman
from dragoman.config import load_config_dict
from dragoman.syftbox.gateway import GatewaySeam
from dragoman.syftbox.seam import Caller, ChatResult
from dragoman.syftbox.service import SyftBoxService

T = TypeVar("T")

ROUTER = "router@example.com"  # EmailStr refuses .local/.test/localhost: example.com it is
ALICE = "alice@example.com"
MALLORY = "mallory@example.com"
APP = "claude"
LEGACY = f"routers/{APP}"
PRICE = 0.1
MODEL = "claude-sonnet-4-6"


def write_client_config(root: Path, email: str) -> Path:
    """A SyftBox client config as the daemon writes it (``~/.syftbox/config.json``)."""
    path = root / ".syftbox" / f"{email.split('@')[0]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"data_dir": str(root / "SyftBox"), "email": email, "server_url": "http://127.0.0.1:9/"}
    path.write_text(json.dumps(data))
    return path


def base_config(upstream_url: str, api_key: str, syftbox: dict[str, Any]) -> dict[str, Any]:
    """The seed's model names as aliases over one fake Anthropic model; no store, no retries."""
    return {
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": upstream_url, "api_key": api_key}
        },
        "models": {MODEL: {"provider": "anthropic"}},
        "aliases": {"claude": MODEL, "claude-3-sonnet": MODEL},
        "default_model": MODEL,
        "store": {"enabled": False},
        "routing": {"retries": {"max_retries": 0}},
        "syftbox": syftbox,
    }


class RecordingSeam:
    """The library seam, recording every ``Caller`` it is handed."""

    def __init__(self, inner: GatewaySeam) -> None:
        self.inner = inner
        self.callers: list[Caller] = []

    async def chat(self, body: dict[str, Any], caller: Caller) -> ChatResult:
        self.callers.append(caller)
        return await self.inner.chat(body, caller)


class RouterUnderTest:
    """``SyftBoxService`` over ``dragoman.Gateway``, on an event loop of its own thread."""

    def __init__(
        self, config: dict[str, Any], *, rescan_interval: float = 0.2, **service_kw: Any
    ) -> None:
        self.config = load_config_dict(config)
        self.rescan_interval = rescan_interval
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway = dragoman.Gateway(self.config)
        self.seam = RecordingSeam(GatewaySeam(self.gateway))
        assert self.config.syftbox is not None
        self.service = SyftBoxService(
            self.config.syftbox, self.seam, rescan_interval=rescan_interval, **service_kw
        )
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> RouterUnderTest:
        self.run(self.service.start())
        return self

    def stop(self) -> float:
        """Stop the service; the seconds it took."""
        t = time.perf_counter()
        self.run(self.service.stop())
        return time.perf_counter() - t

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
            self.run(self.gateway.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    @property
    def callers(self) -> list[Caller]:
        return self.seam.callers


def send(
    client: Client,
    app: str,
    endpoint: str,
    body: Any = None,
    *,
    method: str = "POST",
    owner: str = ROUTER,
    expiry: str = "1m",
    cache: bool = False,
) -> SyftFuture:
    """The stock syft-rpc client's ``send``."""
    url = rpc.make_url(datasite=owner, app_name=app, endpoint=endpoint)
    return rpc.send(url, method=method, body=body, client=client, expiry=expiry, cache=cache)


def call(client: Client, app: str, endpoint: str, body: Any = None, **kw: Any) -> SyftResponse:
    """``send`` then the stock ``future.wait`` (polling every 5 ms; 10 s at most)."""
    return send(client, app, endpoint, body, **kw).wait(timeout=10, poll_interval=0.005)
