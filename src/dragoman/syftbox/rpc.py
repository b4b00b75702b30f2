"""The file-RPC server: SyftEvents for what it does well, an asyncio dispatcher for the rest.

``syft-event``'s ``SyftEvents`` makes the app's folders, its permission file and its
``rpc.schema.json``, watches the endpoint folders and cleans up old files: kept. Its dispatch
is not: it runs one handler at a time on the watcher's thread, reads files that are still being
written, trusts the ``sender`` a request claims and writes replies non-atomically
(docs/syftbox.md, "Races"). ``_Events`` hands every request file it sees to ``RpcServer``
instead, which

* serves up to ``workers`` requests at once on dragoman's event loop (file I/O on a thread pool);
* reads a request again while it does not parse, for ``read_grace`` seconds;
* answers 403 when the request's ``sender`` is not the folder it sits in (the folder is what
  SyftBox's permissions vouch for), 419 when it has expired (the handler is not run), and stops
  a handler at the request's expiry;
* writes each reply to a temporary file renamed into place;
* answers at start the requests written while it was down, and looks again every
  ``rescan_interval`` seconds (a watcher can miss a file, e.g. on inotify overflow);
* stops within a second: requests being served get 503 (their payment is cancelled by their
  handler), requests still queued are left for the next start; an answer that is ready (a
  payment confirmed) is written even after the stop;
* answers 413, unread, a request file bigger than ``max_request_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from syft_core import Client
from syft_event import SyftEvents
from syft_rpc.protocol import SyftRequest

from . import files
from .blocking import pool, run_blocking

log = logging.getLogger("dragoman.syftbox")

T = TypeVar("T")

#: syft-event's wording for the transport's own errors (clients may match on it)
EXPIRED = "Request expired"
INTERNAL = "Internal server error. Please try again later."
STOPPING = "The router is shutting down; send the request again."


def file_limit(max_body_bytes: int) -> int:
    """The largest request file for a body of ``max_body_bytes`` (base64 inside JSON)."""
    return max_body_bytes * 4 // 3 + 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes | None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


#: an endpoint: (the parsed request, its verified sender) -> the answer
Handler = Callable[[SyftRequest, str], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    #: a typed function whose signature syft-event publishes in ``rpc.schema.json``
    schema: Callable[..., Any]


@dataclass(frozen=True, slots=True)
class App:
    """One SyftBox app: ``app_data/<name>/rpc/<endpoint>/<sender>/<id>.request``."""

    name: str
    routes: dict[str, Route]
    #: the transport's own errors (bad file, spoofed sender, expired...) in the app's form
    error: Callable[[int, str], Answer]


class _Events(SyftEvents):
    """SyftEvents whose request files go to ``on_file`` instead of its own dispatch.

    ``__handle_rpc`` is private to syft-event 0.4.x (pinned ``<0.5`` in pyproject.toml); it is
    the one method that both the watcher and the start-up scan call for each request file.
    """

    def __init__(self, app: str, client: Client, on_file: Callable[[Path], None]) -> None:
        super().__init__(app, client=client, publish_schema=True)
        self._on_file = on_file

    def _SyftEvents__handle_rpc(self, path: Path, func: Any) -> None:
        self._on_file(Path(path))


class RpcServer:
    """Serves ``apps`` for the SyftBox ``client`` on the running event loop."""

    def __init__(
        self,
        client: Client,
        apps: list[App],
        *,
        workers: int,
        read_grace: float = 1.0,
        rescan_interval: float = 2.0,
        stop_grace: float = 0.3,
        executor: ThreadPoolExecutor | None = None,
        max_request_bytes: int = file_limit(32 * 1024 * 1024),
    ) -> None:
        self.client = client
        self.apps = apps
        self.read_grace = read_grace
        self.rescan_interval = rescan_interval
        self.stop_grace = stop_grace
        self.max_request_bytes = max_request_bytes
        #: file I/O (and, shared, the accounting SDK's blocking calls): see ``run``
        self._own_executor = executor is None
        self.executor = executor or pool(workers)
        self._workers = workers
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: list[tuple[App, _Events]] = []
        #: app name -> its ``rpc`` folder
        self._dirs: dict[str, Path] = {}
        #: request files being handled -> "seen again meanwhile" (look once more when done)
        self._inflight: dict[Path, bool] = {}
        self._queued: set[asyncio.Task[None]] = set()
        self._running: set[asyncio.Task[None]] = set()
        self._rescan: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the thread pool (never a blocking call on the loop)."""
        return await run_blocking(self.executor, fn, *args)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self._workers)
        for app in self.apps:
            events = _Events(app.name, self.client, functools.partial(self._on_file, app))
            for endpoint, route in app.routes.items():
                events.on_request(endpoint)(route.schema)
            # folders, syft.pub.yaml, rpc.schema.json, the watcher and the cleanup thread
            await self.run(events.start, False)
            self._events.append((app, events))
            self._dirs[app.name] = Path(events.app_rpc_dir)
        await self._scan()  # what was written while we were down
        self._rescan = asyncio.create_task(self._rescan_loop())

    async def stop(self) -> None:
        """Stop within a second; see the module docstring for what happens to requests."""
        if self._loop is None or self._stopping:
            return
        self._stopping = True
        if self._rescan is not None:
            self._rescan.cancel()
        await asyncio.gather(*(self.run(ev.stop) for _, ev in self._events))
        for t in self._queued:
            t.cancel()
        if self._running:
            await asyncio.wait(self._running, timeout=self.stop_grace)
        for t in self._running:
            t.cancel()
        pending = self._queued | self._running
        if pending:
            await asyncio.wait(pending, timeout=0.4)
        if self._own_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    # -- intake ---------------------------------------------------------------------------------

    def _on_file(self, app: App, path: Path) -> None:
        """A request file appeared (watcher thread): hand it to the loop."""
        loop = self._loop
        if loop is None or self._stopping:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(self._submit, app, path)

    def _submit(self, app: App, path: Path) -> None:
        if self._stopping or files.request_id(path) is None:
            return
        if path in self._inflight:
            self._inflight[path] = True
            return
        self._inflight[path] = False
        task = asyncio.create_task(self._serve(app, path))
        self._queued.add(task)
        task.add_done_callback(self._queued.discard)

    @staticmethod
    def _pending(rpc_dir: Path) -> list[Path]:
        """Unanswered request files (blocking: thread pool)."""
        return [
            p
            for p in rpc_dir.rglob("*.request")
            if files.request_id(p) is not None and not files.answered(p)
        ]

    async def _scan(self) -> None:
        for app, _ in self._events:
            for path in await self.run(self._pending, self._dirs[app.name]):
                self._submit(app, path)

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rescan_interval)
            try:
                await self._scan()
            except Exception:  # a folder removed under us: try again next time
                log.exception("syftbox: rescan failed")

    # -- one request ----------------------------------------------------------------------------

    async def _serve(self, app: App, path: Path) -> None:
        task = asyncio.current_task()
        assert task is not None and self._slots is not None
        try:
            async with self._slots:
                self._queued.discard(task)
                self._running.add(task)
                try:
                    got = await self._handle(app, path)
                except asyncio.CancelledError:
                    if self._stopping:  # no answer was ready: tell the caller to come back
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(
                                self.run(self._reply_file, path, app.error(503, STOPPING)), 0.2
                            )
                    raise
                finally:
                    self._running.discard(task)
            if got is not None:  # an answer is ready: written whatever happens meanwhile
                req, answer = got
                write = functools.partial(self._reply_file, path, answer, req)
                await asyncio.shield(self.run(write))
        except Exception:
            log.exception("syftbox: %s failed", path)
        finally:
            again = self._inflight.pop(path, False)
            if again and not self._stopping:
                self._submit(app, path)

    def _reply_file(self, path: Path, answer: Answer, req: SyftRequest | None = None) -> None:
        """Write ``answer`` next to the request, unless it is answered already (blocking)."""
        if not files.answered(path):
            files.reply(
                path,
                self.client,
                body=answer.body,
                status=answer.status,
                headers=answer.headers,
                request=req,
            )

    async def _read(self, path: Path) -> SyftRequest | files.NotReady | None:
        """The request, read again while it does not parse (a writer may be at work)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_grace
        while True:
            try:
                return await self.run(files.read_request, path, self.max_request_bytes)
            except files.NotReady as e:
                if loop.time() >= deadline:
                    return e
                await asyncio.sleep(0.01)

    async def _handle(self, app: App, path: Path) -> tuple[SyftRequest | None, Answer] | None:
        """The request and its answer (None: nothing to answer)."""
        if await self.run(files.answered, path):
            return None
        try:
            got = await self._read(path)
        except files.TooLarge as e:
            return None, app.error(413, str(e))
        if got is None:  # gone: the caller gave up
            return None
        if isinstance(got, files.NotReady):
            return None, app.error(400, f"Error loading request: {got.error!r}")
        return got, await self._answer(app, path, got)

    async def _answer(self, app: App, path: Path, req: SyftRequest) -> Answer:
        if req.id != files.request_id(path):
            return app.error(400, "Error loading request: its id is not its file name")
        sender = path.parent.name
        if req.sender != sender:
            log.warning("syftbox: %s claims to be from %s", path, req.sender)
            return app.error(
                403, f"Forbidden: a request from {req.sender} must be in that sender's folder"
            )
        if req.is_expired:
            return app.error(419, EXPIRED)
        endpoint = "/" + path.parent.parent.relative_to(self._dirs[app.name]).as_posix()
        route = app.routes.get(endpoint)
        if route is None:
            return app.error(404, f"No endpoint {endpoint} here")
        remaining = (req.expires - datetime.now(UTC)).total_seconds()
        try:
            async with asyncio.timeout(remaining) as deadline:
                return await route.handler(req, sender)
        except TimeoutError:
            if deadline.expired():
                return app.error(419, EXPIRED)
            log.exception("syftbox: %s %s failed", app.name, endpoint)
            return app.error(500, INTERNAL)
        except Exception:
            log.exception("syftbox: %s %s failed", app.name, endpoint)
            return app.error(500, INTERNAL)
