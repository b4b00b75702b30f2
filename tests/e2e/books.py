"""Helpers for the books tests: a store-on stack per database, rows read back from it, virtual
keys per case (so each case's usage and ledger rows are found by key, whatever its request id),
and hand-written upstream streams (no usage, JSON with ``json.dumps`` spacing)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import KEY, Stack, start_stack, stop_stack
from tests.e2e.test_accounting import PG, _pg_up, drop_schema, query
from tests.support import http

ADMIN = "admin-secret-for-books"
MASTER = "master-key-for-books-0123456789abcdefghijklmnop"

DB_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def database(kind: str, tmp: Any) -> Iterator[str]:
    """A fresh store URL: a SQLite file, or a PostgreSQL schema of its own (dropped after)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/books-{uuid.uuid4().hex[:8]}.db"
        return
    if not _pg_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = "books_" + uuid.uuid4().hex[:12]
    try:
        yield f"{PG}?schema={name}"
    finally:
        drop_schema(name)


def books_stack(
    url: str, *, accounting: dict[str, Any] | None = None, **kw: Any
) -> tuple[Stack, str]:
    s = start_stack(
        {
            "auth": {"keys": [KEY], "admin_key": ADMIN, "key_cache_ttl": 30},
            # the usage spool (rows kept while the database is away) in a directory of the test's
            "store": {"url": url, "flush_interval": 0.05, "spool_path": _spool_path()},
            "accounting": accounting or {},
            **kw.pop("overrides", {}),
        },
        store=True,
        **kw,
    )
    return s, url


def _spool_path() -> str:
    import tempfile

    return str(Path(tempfile.mkdtemp(prefix="dragoman-spool-")) / "usage.spool")


def stop(s: Stack) -> None:
    stop_stack(s)


def flush(s: Stack) -> None:
    """The analytics endpoints flush the usage writer before answering."""
    r = http.get(s.url + "/v1/analytics/costs?days=1", {"x-api-key": ADMIN})
    assert r.status == 200, r.body


@dataclass
class VKey:
    id: str
    secret: str


def new_key(s: Stack, **fields: Any) -> VKey:
    r = http.post(
        s.url + "/admin/keys",
        {"alias": "k-" + uuid.uuid4().hex[:8], **fields},
        {"x-api-key": ADMIN},
    )
    assert r.status == 201, r.body
    got = r.json()
    return VKey(got["id"], got["secret"])


USAGE_COLS = (
    "request_id, status, model, provider, deployment, input_tokens, output_tokens, "
    "cache_read_input_tokens, usage_estimated, cost, error, streamed"
)


def usage_rows(s: Stack, url: str, where: str) -> list[Any]:
    flush(s)
    return query(url, f"SELECT {USAGE_COLS} FROM usage WHERE {where} ORDER BY id")


def ledger_rows(s: Stack, url: str, where: str, cols: str = "*") -> list[Any]:
    flush(s)
    return query(url, f"SELECT {cols} FROM ledger WHERE {where} ORDER BY created_at")


def wait_until(cond: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll ``cond`` until it returns something truthy (a generous deadline, never a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- hand-written upstream streams -----------------------------------------------------------


def _dumps(obj: Any, spaced: bool) -> str:
    return json.dumps(obj) if spaced else json.dumps(obj, separators=(",", ":"))


def openai_sse(
    text: str,
    *,
    usage: dict[str, Any] | None = None,
    spaced: bool = False,
    chunk: int = 4,
    model: str = "qwen3-coder",
) -> bytes:
    """A chat.completion.chunk stream (vLLM's shape), a ``choices: []`` usage chunk when
    ``usage`` is given (else none at all), then ``[DONE]``."""
    base = {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion.chunk"}
    base |= {"created": 1735689600, "model": model}

    def ch(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        c = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [c]}

    events = [ch({"role": "assistant", "content": ""})]
    events += [ch({"content": text[i : i + chunk]}) for i in range(0, len(text), chunk)]
    events.append(ch({}, "stop"))
    if usage is not None:
        events.append({**base, "choices": [], "usage": usage})
    out = "".join(f"data: {_dumps(e, spaced)}\n\n" for e in events) + "data: [DONE]\n\n"
    return out.encode()


_TEXT_BLOCK = {"type": "text", "text": ""}


def anthropic_sse(text: str, *, chunk: int = 4, model: str = "claude-sonnet-4-5") -> bytes:
    """A Messages stream whose events carry no usage at all (an Anthropic-compatible server
    that reports none)."""
    msg = {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant"}
    msg |= {"model": model, "content": [], "stop_reason": None, "stop_sequence": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": msg}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": _TEXT_BLOCK},
        ),
    ]
    for i in range(0, len(text), chunk):
        d = {"type": "text_delta", "text": text[i : i + chunk]}
        ev = {"type": "content_block_delta", "index": 0, "delta": d}
        events.append(("content_block_delta", ev))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    out = "".join(f"event: {n}\ndata: {_dumps(d, False)}\n\n" for n, d in events)
    return out.encode()


def serve_config(cfg: dict[str, Any]) -> Any:
    """A gateway built from a config dict by the same factory as ``dragoman serve``
    (``cli.build`` + ``create_app``), on an ephemeral port; returns the ServerThread."""
    from tests.support.servers import ServerThread

    from dragoman.cli import build
    from dragoman.config import load_config_dict
    from dragoman.server.app import create_app

    config = load_config_dict(cfg)

    async def make_app() -> Any:
        engine, accountant = await build(config)
        return create_app(config, engine, accountant)

    return ServerThread(make_app, shutdown_timeout=0.5, handler_cancellation=True).start()


class TcpProxy:
    """A TCP forwarder the test owns, in front of a real server (PostgreSQL): stopping it is
    the database really going away (connections reset, new ones refused)."""

    def __init__(self, host: str, port: int) -> None:
        import socket
        import threading

        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.socks: list[Any] = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                if self.stopped:
                    client.close()
                    upstream.close()
                    return
                self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        import socket

        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)  # pass the half-close on
        except OSError:
            for s in (src, dst):  # a reset: wake the other direction too
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        import socket

        with self.lock:
            self.stopped = True
            socks, self.socks = self.socks, []
        self.listener.close()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def in_thread(coro_fn: Callable[[], Any]) -> Any:
    from tests.e2e.test_accounting import _in_thread

    return _in_thread(coro_fn)
