"""Machinery shared by the fake upstreams: request recording, the reply queue, identifiers,
raw SSE replay and a fault-injecting SSE writer."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import orjson
from aiohttp import web

from .sse import split_frames

if TYPE_CHECKING:
    from ..support.servers import ServerThread

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"

CutMode = Literal["eof", "abort"]
"""How a stream is cut: ``eof`` ends the HTTP body cleanly (the client sees the stream simply
stop), ``abort`` resets the TCP connection mid-body (the client sees a transport error)."""

_B62 = string.ascii_letters + string.digits


def rand_b62(n: int) -> str:
    return "".join(secrets.choice(_B62) for _ in range(n))


def rand_hex(n: int) -> str:
    return secrets.token_hex((n + 1) // 2)[:n]


# ----------------------------------------------------------------------------- recording


@dataclass
class RecordedRequest:
    """One request as the fake received it. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    received_at: float = field(default_factory=time.monotonic)
    status: int | None = None  # status the fake answered with (set once known)
    notes: list[str] = field(default_factory=list)  # e.g. vLLM "ignored fields" warnings

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def json(self) -> Any:
        return self.body


async def record(request: web.Request) -> RecordedRequest:
    raw = await request.read()
    body: Any = None
    if raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
    headers: dict[str, str] = {}
    for k, v in request.headers.items():
        key = k.lower()
        headers[key] = f"{headers[key]},{v}" if key in headers else v
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=headers,
        body=body,
        raw=raw,
    )


# per-request storage keys (typed keys avoid aiohttp's NotAppKeyWarning on aiohttp >= 3.12)
_HAS_KEYS = hasattr(web, "RequestKey")
RECORDED: Any = web.RequestKey("recorded", RecordedRequest) if _HAS_KEYS else "recorded"
REQUEST_ID: Any = web.RequestKey("request_id", str) if _HAS_KEYS else "request_id"


# ----------------------------------------------------------------------------- raw replay


@dataclass
class RawStream:
    """Replay an SSE body verbatim (e.g. a fixture) as the answer to the next request.

    ``source``: bytes, a Path, or a str naming a file (absolute, relative to the CWD, or a name
    inside ``tests/fixtures/``); a str containing a newline is taken as the body itself.
    """

    source: bytes | str | Path
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    first_byte_delay: float = 0.0
    event_delay: float = 0.0
    cut_after: int | None = None
    cut_mode: CutMode = "eof"

    def data(self) -> bytes:
        src = self.source
        if isinstance(src, bytes):
            return src
        if isinstance(src, str) and "\n" in src:
            return src.encode()
        path = Path(src)
        if not path.is_absolute() and not path.exists():
            path = FIXTURES_DIR / path
        return path.read_bytes()

    def frames(self) -> list[bytes]:
        return split_frames(self.data())


# ----------------------------------------------------------------------------- streaming


@dataclass
class StreamPlan:
    """How to write a list of pre-encoded SSE frames, with optional faults."""

    frames: Sequence[bytes]
    first_byte_delay: float = 0.0  # before the status line (nothing on the wire yet)
    first_event_delay: float = 0.0  # after the headers, before the first frame
    event_delay: float = 0.0  # between frames
    pauses: Mapping[int, float] = field(default_factory=dict)  # extra sleep before frame i
    cut_after: int | None = None  # write only this many frames, then cut
    cut_mode: CutMode = "eof"
    error_after: int | None = None  # after this many frames write ``error_frames`` and stop
    error_frames: Sequence[bytes] = ()


async def write_stream(
    request: web.Request,
    plan: StreamPlan,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    content_type: str = "text/event-stream; charset=utf-8",
) -> web.StreamResponse:
    if plan.first_byte_delay:
        await asyncio.sleep(plan.first_byte_delay)
    resp = web.StreamResponse(status=status)
    resp.headers["Content-Type"] = content_type
    resp.headers["Cache-Control"] = "no-cache"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    await resp.prepare(request)
    frames = list(plan.frames)
    stop_at = len(frames)
    if plan.cut_after is not None:
        stop_at = min(stop_at, plan.cut_after)
    if plan.error_after is not None:
        stop_at = min(stop_at, plan.error_after)
    try:
        if plan.first_event_delay:
            await asyncio.sleep(plan.first_event_delay)
        for i, frame in enumerate(frames[:stop_at]):
            delay = (plan.event_delay if i else 0.0) + plan.pauses.get(i, 0.0)
            if delay:
                await asyncio.sleep(delay)
            await resp.write(frame)
        if plan.error_after is not None and plan.error_after <= len(frames):
            for frame in plan.error_frames:
                await resp.write(frame)
        elif plan.cut_after is not None and plan.cut_mode == "abort":
            transport = request.transport
            if transport is not None:
                transport.abort()
            return resp
    except (ConnectionResetError, asyncio.CancelledError):
        # the client went away (or the server is shutting down): tests assert on this note
        rec = request.get(RECORDED)
        if rec is not None:
            rec.notes.append("client disconnected")
        return resp
    with contextlib.suppress(ConnectionResetError):
        await resp.write_eof()
    return resp


async def replay_raw(
    request: web.Request, raw: RawStream, extra_headers: Mapping[str, str]
) -> web.StreamResponse:
    plan = StreamPlan(
        frames=raw.frames(),
        first_byte_delay=raw.first_byte_delay,
        event_delay=raw.event_delay,
        cut_after=raw.cut_after,
        cut_mode=raw.cut_mode,
    )
    return await write_stream(
        request,
        plan,
        status=raw.status,
        headers={**extra_headers, **raw.headers},
        content_type=raw.content_type,
    )


def split_text(text: str, size: int) -> list[str]:
    """Cut ``text`` into pieces of ``size`` characters (at least one piece)."""
    if not text:
        return [""]
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


# ----------------------------------------------------------------------------- base class


class FakeUpstream:
    """State shared by both fakes: a FIFO of scripted replies and the recorded requests.

    Thread-safe: tests enqueue from the test thread while the server thread pops.
    Usable as a context manager that serves the app on an ephemeral port::

        with FakeAnthropic() as fake:
            client = anthropic.Anthropic(base_url=fake.url, api_key=fake.api_key)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Any] = deque()
        self.requests: list[RecordedRequest] = []
        self.default_reply: Any = None  # used when the queue is empty; None = built-in default
        self._server: ServerThread | None = None
        self._url: str | None = None
        # how long stop() lets in-flight (e.g. deliberately slow) responses run before cancelling
        self.shutdown_timeout = 0.25
        self._options: dict[str, Any] = {}

    # ---- scripting
    def enqueue(self, *replies: Any) -> Self:
        """Queue replies for the next generation requests, in order. A reply may also be a
        callable ``(RecordedRequest) -> reply`` evaluated when the request arrives."""
        with self._lock:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _pop_reply(self, req: RecordedRequest) -> Any:
        with self._lock:
            reply = self._queue.popleft() if self._queue else self.default_reply
        if callable(reply) and not isinstance(reply, type):
            reply = reply(req)
        return reply

    def reset(self) -> None:
        """Back to the fake as started: no queued replies, no recorded requests, no default
        reply, and every constructor option restored (a test that changed ``validate`` or
        ``models`` on a shared fake cannot leak it into the next one)."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
        self.default_reply = None
        for name, value in self._options.items():
            setattr(self, name, copy.deepcopy(value))

    def _snapshot_options(self) -> None:
        """Remember the constructor options as they are once built (see ``reset``)."""
        params = inspect.signature(type(self).__init__).parameters
        self._options = {
            n: copy.deepcopy(getattr(self, n)) for n in params if n != "self" and hasattr(self, n)
        }

    # ---- inspection
    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self.requests:
                raise AssertionError("the fake has not received any request")
            return self.requests[-1]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were recorded (for fire-and-forget callers)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} requests, got {len(self.requests)}")
            time.sleep(0.005)

    # ---- serving
    def app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> Self:
        from ..support.servers import ServerThread

        if self._server is None:
            self._snapshot_options()
            self._server = ServerThread(self.app(), shutdown_timeout=self.shutdown_timeout)
            self._server.start()
            self._url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no ``/v1``)."""
        if self._url is None:
            raise RuntimeError("fake not started: use `with Fake() as f:` or f.start()")
        return self._url

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
