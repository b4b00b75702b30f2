"""Fixtures for the shared state: the real Redis on 127.0.0.1:6379 (a unique key prefix per
test, its keys deleted after), a Redis server of the test's own on a Unix socket (the outage
tests stop and restart it: never the shared one), and an injected clock."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

SHARED_URL = os.environ.get("DRAGOMAN_TEST_REDIS", "redis://127.0.0.1:6379/0")


class Clock:
    """Seconds, moved by the test only."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t = round(self.t + s, 6)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _redis_up(SHARED_URL):
        pytest.skip(f"Redis is not running at {SHARED_URL}")
    return SHARED_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix nobody else uses; every key under it is deleted after the test."""
    p = f"dgtest:{uuid.uuid4().hex[:12]}:"
    yield p
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=p + "*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


class OwnRedis:
    """A redis-server of this test's own, on a Unix socket in a temporary folder: stop and
    start it at will (same socket path, so clients reconnect to it)."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.exe = exe
        self.dir = Path(tempfile.mkdtemp(prefix="dgredis"))
        self.sock = self.dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port", "0",
                "--unixsocket", str(self.sock),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not _redis_up(self.url):
            if time.monotonic() > deadline:
                raise RuntimeError("own redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.sock.unlink(missing_ok=True)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_redis(redis_url: str) -> Iterator[OwnRedis]:
    r = OwnRedis()
    r.start()
    try:
        yield r
    finally:
        r.close()


async def until(cond: Callable[[], bool], deadline: float = 10.0, what: str = "condition") -> float:
    """Poll ``cond()`` until true (seconds it took); fail after a generous deadline."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > deadline:
            raise AssertionError(f"{what} not reached within {deadline}s")
        await asyncio.sleep(0.005)
    return time.monotonic() - t0
