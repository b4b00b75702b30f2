"""What only a shared Redis can show: several OS processes, health and key changes reaching
every process, an outage (fail open / closed) and the recovery from it."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dragoman.state import Limit, MemoryState
from dragoman.state.base import STATE_ERRORS
from dragoman.state.redis import RedisState

from .conftest import Clock, OwnRedis, until

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("kind", "expected"), [("rpm", 30), ("tpm", 30), ("concurrency", 5)])
def test_three_processes_share_one_limit(
    redis_url: str, prefix: str, kind: str, expected: int
) -> None:
    """90 attempts from 3 processes at once: exactly the limit is admitted (30 rpm; 3000 tpm
    at 100 tokens each; 5 at once, held), never the limit times the number of processes."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.state._procs", redis_url, prefix, kind, "30", "3"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    admitted = 0
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        ok, degraded = map(int, out.split())
        assert degraded == 0
        admitted += ok
    assert admitted == expected


async def test_health_reaches_every_process(redis_url: str, prefix: str) -> None:
    a = RedisState(redis_url, prefix=prefix)
    b = RedisState(redis_url, prefix=prefix)
    seen: list[tuple[str, float, int, str | None]] = []
    b.on_health(lambda *ev: seen.append(ev))
    await a.start()
    await b.start()
    try:
        await asyncio.wait_for(b.watching.wait(), 10)
        await a.cool("m/p", 30.0, "429: slow down")
        await until(lambda: b.cooldown("m/p") > 0, what="cooldown seen by b")
        assert 29.0 < b.cooldown("m/p") <= 30.0
        assert seen[-1][0] == "m/p" and seen[-1][3] == "429: slow down"
        await b.recover("m/p")
        await until(lambda: a.cooldown("m/p") == 0, what="recovery seen by a")
        # failures from both processes add up: 2 here + 1 there = allowed_fails 3
        kw = {"window": 60.0, "allowed_fails": 3, "cooldown": 5.0, "reason": "503"}
        assert await a.failure("m/q", **kw) == 0.0
        assert await a.failure("m/q", **kw) == 0.0
        assert await b.failure("m/q", **kw) == 5.0
        await until(lambda: a.cooldown("m/q") > 0, what="cooldown from b's failure seen by a")
        # a process that starts later catches up with what is cooling
        c = RedisState(redis_url, prefix=prefix)
        await c.start()
        await asyncio.wait_for(c.watching.wait(), 10)
        assert 0 < c.cooldown("m/q") <= 5.0
        await c.close()
    finally:
        await a.close()
        await b.close()


async def test_key_change_reaches_every_process_within_a_second(
    redis_url: str, prefix: str
) -> None:
    a = RedisState(redis_url, prefix=prefix)
    b = RedisState(redis_url, prefix=prefix)
    got: list[str | None] = []
    b.on_key_change(got.append)
    await a.start()
    await b.start()
    try:
        await asyncio.wait_for(b.watching.wait(), 10)
        t0 = time.monotonic()
        await a.key_changed("key_123")
        await until(lambda: got == ["key_123"], what="key change seen by b")
        assert time.monotonic() - t0 < 1.0
    finally:
        await a.close()
        await b.close()


async def test_a_missed_key_change_forgets_every_key(redis_url: str, prefix: str) -> None:
    """A change published while a process was not listening: it learns from the version
    counter (polled every key_poll seconds) and forgets every cached key."""
    b = RedisState(redis_url, prefix=prefix, key_poll=0.05)
    got: list[str | None] = []
    b.on_key_change(got.append)
    await b.start()
    try:
        await asyncio.wait_for(b.watching.wait(), 10)
        r = b.client
        await r.incr(prefix + "keys:v")  # a change whose message b never received
        await until(lambda: got == [None], what="b forgets every key")
    finally:
        await b.close()


async def test_cache_bytes(redis_url: str, prefix: str) -> None:
    st = RedisState(redis_url, prefix=prefix)
    try:
        assert await st.get("k1") is None
        await st.set("k1", b"\x00answer", ttl=60)
        assert await st.get("k1") == b"\x00answer"
        await st.set("k2", b"short-lived", ttl=0.05)
        t0 = time.monotonic()
        while await st.get("k2") is not None:
            assert time.monotonic() - t0 < 10
            await asyncio.sleep(0.02)
    finally:
        await st.close()


def test_memory_cache_bytes_ttl_and_bound() -> None:
    clock = Clock()
    st = MemoryState(clock=clock, cache_max_bytes=10)
    st.bytes.set("a", b"12345", 10)
    st.bytes.set("b", b"67890", 10)
    assert st.bytes.get("a") == b"12345"  # a is now the most recently used
    st.bytes.set("c", b"x", 10)  # over 10 bytes: the least recently used (b) goes
    assert st.bytes.get("b") is None and st.bytes.get("a") == b"12345"
    clock.advance(10)
    assert st.bytes.get("a") is None and st.bytes.size == 1
    st.bytes.set("big", b"x" * 11, 10)
    assert st.bytes.get("big") is None


def _errors(op: str) -> float:
    return STATE_ERRORS.labels(op)._value.get()  # type: ignore[no-any-return]


async def test_outage_fails_open_then_limits_come_back(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    st = RedisState(own_redis.url, retry_interval=0.5, timeout=0.5)
    L = [[Limit("k:a", rpm=1, label="key a")]]
    try:
        assert (await st.admit(L)).admitted
        assert not (await st.admit(L)).admitted
        own_redis.stop()
        before = _errors("admit")
        with caplog.at_level(logging.WARNING, logger="dragoman.state"):
            outage = [await st.admit(L) for _ in range(5)]
        assert all(a.admitted and a.degraded for a in outage)
        assert _errors("admit") == before + 1  # tried once; the rest did not wait on Redis
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1 and "fail open" in warnings[0].getMessage()
        assert await st.get("anything") is None  # the cache is a miss, not an error
        own_redis.start()  # an empty Redis: the window starts again

        async def limited_again() -> bool:
            a = await st.admit(L)
            return not a.degraded

        t0 = time.monotonic()
        while not await limited_again():
            assert time.monotonic() - t0 < 10
            await asyncio.sleep(0.05)
        assert not (await st.admit(L)).admitted  # rpm 1 applies again
    finally:
        await st.close()


async def test_outage_fails_closed(own_redis: OwnRedis) -> None:
    st = RedisState(own_redis.url, on_error="closed", retry_interval=0.5, timeout=0.5)
    L = [[Limit("k:a", rpm=5, label="key a")]]
    try:
        assert (await st.admit(L)).admitted
        own_redis.stop()
        a = await st.admit(L)
        assert not a.admitted and a.unavailable and a.retry_after == 0.5
        own_redis.start()
        t0 = time.monotonic()
        while not (await st.admit(L)).admitted:
            assert time.monotonic() - t0 < 10
            await asyncio.sleep(0.05)
    finally:
        await st.close()


async def test_watcher_survives_an_outage(own_redis: OwnRedis) -> None:
    a = RedisState(own_redis.url, retry_interval=0.1)
    b = RedisState(own_redis.url, retry_interval=0.1)
    got: list[str | None] = []
    b.on_key_change(got.append)
    await b.start()
    try:
        await asyncio.wait_for(b.watching.wait(), 10)
        await a.key_changed("k1")
        await a.key_changed("k2")
        await until(lambda: got == ["k1", "k2"], what="key changes")
        own_redis.stop()
        await until(lambda: not b.watching.is_set(), what="b notices the outage")
        own_redis.start()  # empty: its version counter starts again from 0
        await asyncio.wait_for(b.watching.wait(), 10)
        assert got == ["k1", "k2", None]  # whatever changed meanwhile: every key forgotten
        await a.key_changed("k9")
        await until(lambda: got[-1] == "k9", what="key change after the outage")
        assert got == ["k1", "k2", None, "k9"]
    finally:
        await a.close()
        await b.close()
