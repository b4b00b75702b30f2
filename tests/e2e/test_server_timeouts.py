"""Server-side timeouts against a real ``dragoman serve`` with small limits, driven by raw sockets
the test owns (audit #15; docs/timeouts.md): slowloris heads and idle keep-alive connections are
closed, a trickled body gets a 408 in the caller's dialect, and a stream client that stops
reading is dropped with its upstream released and the request counted as a disconnect (499)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.test_accounting import query
from tests.fakes import FakeAnthropic, Reply
from tests.support import http
from tests.support.invariants import wait_until
from tests.support.serve import ServeProcess

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.0
WRITE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServeProcess, FakeAnthropic]]:
    tmp = tmp_path_factory.mktemp("timeouts")
    with FakeAnthropic() as anth:
        cfg = tmp / "dragoman.yaml"
        cfg.write_text(
            "server:\n"
            f"  header_timeout: {HEADER_TIMEOUT}\n"
            f"  body_timeout: {BODY_TIMEOUT}\n"
            f"  write_timeout: {WRITE_TIMEOUT}\n"
            f"providers: {{anth: {{kind: anthropic, base_url: '{anth.url}',"
            f" api_key: {anth.api_key}}}}}\n"
            "models: {claude-sonnet-4-5: {provider: anth}}\n"
            f"store: {{url: 'sqlite:///{tmp}/t.db', flush_interval: 0.05}}\n"
        )
        with ServeProcess(Path(cfg)) as srv:
            yield srv, anth


def _connect(srv: ServeProcess, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", srv.port))
    return s


def _closed_by_peer(s: socket.socket, within: float) -> float | None:
    """Seconds until the server closed ``s`` (EOF or reset), draining what it sent; None when
    it was still open after ``within`` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        s.settimeout(max(0.05, within - (time.monotonic() - t0)))
        try:
            if not s.recv(65536):
                return time.monotonic() - t0
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
        except TimeoutError:
            return None
    return None


def test_slowloris_head_is_closed_within_the_header_timeout(
    gateway: tuple[ServeProcess, FakeAnthropic],
) -> None:
    srv, _ = gateway
    s = _connect(srv)
    try:
        t0 = time.monotonic()
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        for i in range(20):  # one header line every 0.4 s, never the blank line
            time.sleep(0.4)
            try:
                s.sendall(f"x-slow-{i}: a\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(0.01)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
                break
        elapsed = time.monotonic() - t0
        assert closed, "a head trickled for 8 s is still being read"
        assert elapsed < HEADER_TIMEOUT + 2.0, elapsed
    finally:
        s.close()


def test_idle_keepalive_connection_is_closed(gateway: tuple[ServeProcess, FakeAnthropic]) -> None:
    srv, _ = gateway
    s = _connect(srv)
    try:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.settimeout(5)
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200") and b"pong" in first
        after = _closed_by_peer(s, HEADER_TIMEOUT + 2.5)
        assert after is not None, "an idle keep-alive connection outlived the header timeout"
    finally:
        s.close()


def test_trickled_body_gets_408_in_the_callers_dialect(
    gateway: tuple[ServeProcess, FakeAnthropic],
) -> None:
    srv, _ = gateway
    s = _connect(srv)
    try:
        s.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 200\r\n\r\n{"model": '
        )
        s.settimeout(BODY_TIMEOUT + 4)
        t0 = time.monotonic()
        got = b""
        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        assert time.monotonic() - t0 < BODY_TIMEOUT + 3
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), got[:200]
        err = json.loads(body)
        assert err["type"] == "error"  # Anthropic's error shape on /v1/messages
        assert err["error"]["type"] == "invalid_request_error"
        assert "server.body_timeout" in err["error"]["message"]
    finally:
        s.close()


def test_stalled_stream_reader_is_dropped_and_its_upstream_released(
    gateway: tuple[ServeProcess, FakeAnthropic],
) -> None:
    srv, anth = gateway
    # 20 MB of events, paced (~1 MB/s) so that the upstream is still sending when the gateway
    # gives up: the socket buffers between the gateway and the client (up to ~4 MB) fill in a
    # few seconds, then one write waits for the client for longer than server.write_timeout
    anth.enqueue(Reply(content="word " * 4_000_000, text_chunk=4096, event_delay=0.004))
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()
    s = _connect(srv, rcvbuf=4096)
    try:
        s.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        # the client reads nothing more: the gateway must give up on it and on its upstream
        wait_until(
            lambda: any("client disconnected" in r.notes for r in anth.requests_to("/v1/messages")),
            timeout=25,
            what="the upstream of a stalled client released",
        )
        wait_until(
            lambda: _counted_499(http.get(srv.url + "/metrics").body.decode()),
            timeout=10,
            what="the stalled stream counted as a client disconnect (499)",
        )
    finally:
        s.close()
    assert http.get(srv.url + "/ping").status == 200  # the gateway is fine
    # settled like any client that left: a usage row with status 499, output charged for what
    # was delivered (some, not nothing and not the whole 20 MB)
    db = f"sqlite:///{Path(srv.config).parent}/t.db"
    rows: list[object] = []

    def settled() -> bool:
        rows[:] = query(db, "SELECT status, streamed, output_tokens FROM usage")
        return bool(rows)

    wait_until(settled, timeout=10, what="the usage row of the stalled stream")
    ((status, streamed, out),) = rows  # type: ignore[misc]
    assert (status, bool(streamed)) == (499, True)
    assert 0 < out < 4_000_000


def _counted_499(metrics: str) -> bool:
    return any(
        line.startswith("dragoman_requests_total{")
        and 'status="499"' in line
        and 'endpoint="messages"' in line
        and float(line.rsplit(" ", 1)[1]) >= 1
        for line in metrics.splitlines()
    )
