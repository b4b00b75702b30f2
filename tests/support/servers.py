"""Run aiohttp applications on ephemeral ports, each in a daemon thread with its own loop.

    with ServerThread(app) as srv:            # a web.Application
        requests.get(srv.url + "/health")

    srv = ServerThread(make_app).start()     # or a (sync or async) factory returning one
    ...
    srv.stop()

The app is built *inside* the server thread's loop, so an ``async def make_app()`` may create
loop-bound objects (aiohttp ClientSession, asyncio locks, DB engines). ``on_startup`` /
``on_cleanup`` / ``cleanup_ctx`` hooks run as usual (``AppRunner.setup`` / ``cleanup``).

Inside an async test, where a second loop is not wanted, use ``serve()`` instead::

    async with serve(app) as url:
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Self, TypeVar

from aiohttp import web

log = logging.getLogger(__name__)

AppSource = (
    web.Application | Callable[[], web.Application] | Callable[[], Awaitable[web.Application]]
)
T = TypeVar("T")


async def _build_app(source: AppSource) -> web.Application:
    if isinstance(source, web.Application):
        return source
    app = source()
    if inspect.isawaitable(app):
        app = await app
    if not isinstance(app, web.Application):
        raise TypeError(f"app factory returned {type(app).__name__}, not web.Application")
    return app


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ServerThread:
    """An aiohttp app served from a daemon thread.

    ``shutdown_timeout`` bounds how long ``stop()`` waits for in-flight handlers (slow fake
    streams are cancelled after it), so a test never hangs on teardown.
    """

    def __init__(
        self,
        app: AppSource,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 1.0,
        startup_timeout: float = 30.0,
        access_log: bool = False,
        name: str | None = None,
        handler_cancellation: bool = False,
    ) -> None:
        self._source = app
        self.host = host
        self._port = port
        self.shutdown_timeout = shutdown_timeout
        self.startup_timeout = startup_timeout
        self._access_log = access_log
        self._handler_cancellation = handler_cancellation
        self._thread = threading.Thread(
            target=self._run, name=name or f"aiohttp-server-{id(self):x}", daemon=True
        )
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.app: web.Application | None = None
        self.port: int = 0
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------------ public API
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if not self.port:
            raise RuntimeError("server not started")
        return _url(self.host, self.port)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("server not started")
        return self._loop

    def start(self) -> Self:
        if self._started:
            return self
        self._started = True
        self._thread.start()
        if not self._ready.wait(self.startup_timeout):
            raise TimeoutError(f"server did not start within {self.startup_timeout}s")
        if self._error is not None:
            self._thread.join(5)
            raise RuntimeError("server failed to start") from self._error
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving, run the app's cleanup hooks, and join the thread. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop_event.set)
        self._thread.join(timeout if timeout is not None else self.shutdown_timeout + 10)
        if self._thread.is_alive():
            log.warning("server thread %s did not stop in time", self._thread.name)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run a coroutine on the server's loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float | None = 30.0) -> T:
        """Call a plain function on the server's loop thread."""

        async def _call() -> T:
            return fn()

        return self.run(_call(), timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerThread {self.url if self.port else '(not started)'}>"

    # ------------------------------------------------------------------ thread body
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() if it happened during startup
            if not self._ready.is_set():
                self._error = exc
            else:
                log.exception("server thread crashed")
        finally:
            self._ready.set()
            try:
                _cancel_all(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        app = await _build_app(self._source)
        self.app = app
        kwargs: dict[str, Any] = {} if self._access_log else {"access_log": None}
        if self._handler_cancellation:
            kwargs["handler_cancellation"] = True
        runner = web.AppRunner(app, shutdown_timeout=self.shutdown_timeout, **kwargs)
        await runner.setup()
        try:
            sock = _bind(self.host, self._port)
            site = web.SockSite(runner, sock)
            await site.start()
            self.port = sock.getsockname()[1]
            self._ready.set()
            await self._stop_event.wait()
        finally:
            try:
                await asyncio.wait_for(runner.cleanup(), self.shutdown_timeout + 5)
            except TimeoutError:
                log.warning("runner.cleanup() timed out")


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def start_server(app: AppSource, **kwargs: Any) -> ServerThread:
    """Start ``app`` (or an app factory) in a background thread; returns the running server."""
    return ServerThread(app, **kwargs).start()


@contextlib.asynccontextmanager
async def serve(
    app: AppSource, *, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float = 1.0
) -> AsyncIterator[str]:
    """Serve ``app`` on the *current* loop for the duration of the block; yields the base URL."""
    application = await _build_app(app)
    runner = web.AppRunner(application, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    try:
        sock = _bind(host, port)
        site = web.SockSite(runner, sock)
        await site.start()
        yield _url(host, sock.getsockname()[1])
    finally:
        await runner.cleanup()
