"""Shared state on Redis (``state.url``): exact limits across every gateway process.

Cost on the request path: an admission is one script call, and the admissions of every request
that arrives within one event-loop iteration share it (``_Batcher``): one round trip, one
script, however many requests. ``settle`` is never awaited by a request: it rides with the next
admissions (at most ``settle_delay`` later), applied before them.

An outage (refused, reset, timed out after ``state.timeout``) is noticed once, logged once, and
for ``retry_interval`` seconds after it no call is even tried: requests are admitted
(``on_error: open``) or refused (``closed``) at once instead of each waiting for a timeout.
The first call after that tries again; redis-py reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from . import scripts
from .base import (
    CONCURRENCY_RETRY,
    WINDOW,
    Admission,
    Check,
    HealthListener,
    KeyListener,
    Limit,
    State,
    Ticket,
    _Outage,
    verdict,
)

log = logging.getLogger("dragoman.state")

US = 1_000_000
#: what an outage raises (OSError: a socket error redis-py did not wrap)
FAILURES = (RedisError, OSError, asyncio.TimeoutError)


def connect(url: str, timeout: float) -> aioredis.Redis:
    """A client that fails fast: no retries of its own (an outage is handled by the caller)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def _encoded(lim: Limit) -> tuple[str, int, int, int]:
    return (
        lim.counter,
        -1 if lim.rpm is None else lim.rpm,
        -1 if lim.tpm is None else lim.tpm,
        -1 if lim.concurrency is None else lim.concurrency,
    )


class _Batcher:
    """Admissions made within one event-loop iteration, and the settles made since the last
    call, sent together as one script call on the next iteration. Settles alone wait up to
    ``settle_delay`` for admissions to ride with."""

    def __init__(
        self,
        send: Callable[[list[Any], list[Any]], Awaitable[None]],
        settle_delay: float,
    ) -> None:
        self.send = send
        self.settle_delay = settle_delay
        self.admits: list[Any] = []
        self.settles: list[Any] = []
        self._soon: asyncio.Handle | None = None
        self._later: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def admit(self, item: Any) -> None:
        self.admits.append(item)
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self.flush)

    def settle(self, item: Any) -> None:
        self.settles.append(item)
        if self._soon is None and self._later is None:
            self._later = asyncio.get_running_loop().call_later(self.settle_delay, self.flush)

    def flush(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if not self.admits and not self.settles:
            return
        admits, self.admits = self.admits, []
        settles, self.settles = self.settles, []
        task = asyncio.ensure_future(self.send(admits, settles))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        self.flush()
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


class RedisState(State):
    """Counters in Redis, shared by every process that uses the same ``url`` and ``prefix``."""

    def __init__(
        self,
        url: str,
        *,
        on_error: str = "open",
        prefix: str = "dragoman:",
        timeout: float = 0.5,
        lease_ttl: float = 30.0,
        window: float = WINDOW,
        retry_interval: float = 1.0,
        key_poll: float = 1.0,
        settle_delay: float = 0.002,
        clock: Callable[[], float] | None = None,
        client: aioredis.Redis | None = None,
    ) -> None:
        self.url = url
        self.on_error = on_error
        self.prefix = prefix
        self.timeout = timeout
        self.lease_ttl = lease_ttl
        self.window = window
        self.retry_interval = retry_interval
        self.key_poll = key_poll
        #: tests only: seconds used instead of the server's clock
        self.clock = clock
        self.client = client or connect(url, timeout)
        self._admit_script = self.client.register_script(scripts.ADMIT)
        self._renew_script = self.client.register_script(scripts.RENEW)
        self._health_script = self.client.register_script(scripts.HEALTH)
        self._cooling_script = self.client.register_script(scripts.COOLING)
        self._key_script = self.client.register_script(scripts.KEY_CHANGED)
        self._batch = _Batcher(self._send, settle_delay)
        self._outage = _Outage(on_error)
        self._down_until = 0.0
        self._nonce = os.urandom(4).hex()
        self._ids = itertools.count(1)
        self._held: weakref.WeakSet[Ticket] = weakref.WeakSet()
        self._health: dict[str, tuple[float, int]] = {}  # name -> (cooling until, failures)
        self._health_listeners: list[HealthListener] = []
        self._key_listeners: list[KeyListener] = []
        self._key_version: int | None = None
        self._chan_health = prefix + "health"
        self._chan_keys = prefix + "keys"
        self._tasks: list[asyncio.Task[None]] = []
        #: set each time the change listener has (re)subscribed and caught up (tests)
        self.watching = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._watch(), name="dragoman-state-watch"),
                asyncio.create_task(self._renew_loop(), name="dragoman-state-renew"),
            ]

    async def close(self) -> None:
        await self.drain()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, *FAILURES):
                await t
        self._tasks = []
        await self.client.aclose()

    async def drain(self) -> None:
        await self._batch.drain()

    def _now_arg(self) -> int | str:
        return "" if self.clock is None else round(self.clock() * US)

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, err: BaseException) -> None:
        if not isinstance(err, ResponseError):  # an answer (OOM, a script error) is no outage
            self._down_until = time.monotonic() + self.retry_interval
        self._outage.failed(op, err)

    # -- rate limits -------------------------------------------------------------------------

    async def admit(self, groups: Sequence[Sequence[Limit]], tokens: int = 0) -> Admission:
        if not groups:
            groups = ((),)
        if not self._available():
            return self._fallback()
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._batch.admit((groups, tokens, f"{self._nonce}:{next(self._ids)}", fut))
        try:
            raw = await fut
        except FAILURES:
            return self._fallback()
        return self._verdict(groups, tokens, raw)

    def _fallback(self) -> Admission:
        if self.on_error == "closed":
            return Admission(False, retry_after=self.retry_interval, unavailable=True)
        return Admission(True, degraded=True)

    async def _send(self, items: list[Any], settles: list[tuple[Ticket, int]]) -> None:
        reqs = [
            (member, tokens, [[_encoded(lim) for lim in group] for group in groups])
            for groups, tokens, member, _ in items
        ]
        done = [
            (
                t.member,
                tokens,
                [
                    (lim.counter, (lim.tpm is not None) + 2 * (lim.concurrency is not None))
                    for lim in t.limits
                ],
            )
            for t, tokens in settles
        ]
        try:
            raw = await self._admit_script(
                args=[
                    self._now_arg(),
                    round(self.window * US),
                    round(self.lease_ttl * US),
                    round(CONCURRENCY_RETRY * US),
                    self.prefix,
                    orjson.dumps(reqs),
                    orjson.dumps(done),
                ]
            )
        except FAILURES as err:
            # settles lost: the estimates stand (never under the limit), leases expire
            self._failed("admit" if items else "settle", err)
            for *_, fut in items:
                if not fut.done():
                    fut.set_exception(err)
            return
        self._outage.ok()
        out = orjson.loads(raw)
        pos = 0
        for groups, _, member, fut in items:
            checked = out[pos + 1]
            size = 2 + 6 * sum(len(g) for g in groups[:checked])
            if not fut.done():
                fut.set_result([member, *out[pos : pos + size]])
            pos += size

    def _verdict(self, groups: Sequence[Sequence[Limit]], tokens: int, raw: list[int]) -> Admission:
        member: str = raw[0]  # type: ignore[assignment]
        chosen, checked = raw[1], raw[2]
        seen: list[list[Check]] = []
        pos = 3
        for group in groups[:checked]:
            checks = []
            for lim in group:
                ok, n, toks, held, reset, wait = raw[pos : pos + 6]
                pos += 6
                checks.append(
                    Check(
                        lim,
                        ok == 1,
                        n,
                        toks,
                        held,
                        reset / US,
                        None if wait < 0 else wait / US,
                    )
                )
            seen.append(checks)

        def ticket(i: int) -> Ticket:
            t = Ticket(member, tuple(groups[i]), tokens)
            if t.leases:
                self._held.add(t)
            return t

        adm = verdict(seen, tokens, ticket)
        assert adm.group == chosen, (adm.group, chosen)
        return adm

    def settle(self, ticket: Ticket, tokens: int | None = None) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        self._held.discard(ticket)
        needs_tokens = tokens is not None and any(lim.tpm is not None for lim in ticket.limits)
        if needs_tokens or ticket.leases:
            self._batch.settle((ticket, -1 if tokens is None else tokens))

    async def renew(self) -> int:
        """Extend every lease this process still holds; returns how many were extended."""
        leases = [(lim.counter, t.member) for t in self._held if not t.settled for lim in t.leases]
        if not leases:
            return 0
        return int(
            await self._renew_script(
                args=[
                    self._now_arg(),
                    round(self.lease_ttl * US),
                    self.prefix,
                    orjson.dumps(leases),
                ]
            )
        )

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                await self.renew()
            except FAILURES as err:
                self._failed("renew", err)

    # -- deployment health -------------------------------------------------------------------

    async def _health_call(self, op: str, deployment: str, reason: str, *args: Any) -> float:
        try:
            set_us, left_us, fails = await self._health_script(
                args=[
                    self._now_arg(),
                    self.prefix,
                    self._chan_health,
                    deployment,
                    reason[:200],
                    op,
                    *args,
                ]
            )
        except FAILURES as err:
            self._failed(op, err)
            raise
        self._outage.ok()
        self._mirror(deployment, left_us / US, fails, reason or None)
        return float(set_us) / US

    async def cool(self, deployment: str, seconds: float, reason: str) -> None:
        try:
            await self._health_call("cool", deployment, reason, round(seconds * US))
        except FAILURES:  # this process at least knows
            self._mirror(deployment, seconds, 0, reason)

    async def failure(
        self, deployment: str, *, window: float, allowed_fails: int, cooldown: float, reason: str
    ) -> float:
        member = f"{self._nonce}:{next(self._ids)}"
        try:
            return await self._health_call(
                "fail",
                deployment,
                reason,
                round(window * US),
                allowed_fails,
                round(cooldown * US),
                member,
            )
        except FAILURES:
            return 0.0

    async def recover(self, deployment: str) -> None:
        until, fails = self._health.get(deployment, (0.0, 0))
        if not fails and until <= time.monotonic():
            return
        with contextlib.suppress(*FAILURES):
            await self._health_call("recover", deployment, "")

    def cooldown(self, deployment: str) -> float:
        until, _ = self._health.get(deployment, (0.0, 0))
        return max(until - time.monotonic(), 0.0)

    def on_health(self, listener: HealthListener) -> None:
        self._health_listeners.append(listener)

    def _mirror(self, deployment: str, seconds: float, fails: int, reason: str | None) -> None:
        if seconds <= 0 and not fails:
            self._health.pop(deployment, None)
        else:
            self._health[deployment] = (time.monotonic() + max(seconds, 0.0), fails)
        for fn in self._health_listeners:
            fn(deployment, max(seconds, 0.0), fails, reason)

    # -- keys --------------------------------------------------------------------------------

    async def key_changed(self, key_id: str) -> None:
        try:
            await self._key_script(args=[self.prefix, self._chan_keys, key_id])
        except FAILURES as err:
            self._failed("keys", err)
            self._tell_keys(key_id)  # this process at least; the others catch up on reconnect
            raise

    def on_key_change(self, listener: KeyListener) -> None:
        self._key_listeners.append(listener)

    def _tell_keys(self, key_id: str | None) -> None:
        for fn in self._key_listeners:
            fn(key_id)

    def _key_version_seen(self, v: int, key_id: str | None) -> None:
        """A key change numbered ``v`` (a message), or the current number (``key_id`` None: a
        poll). The next number names its key; a jump or a poll that finds a change means a
        message was lost: every key is forgotten."""
        known = self._key_version
        self._key_version = v
        if known is None or v == known:
            return
        if key_id is not None and v < known:
            self._key_version = known  # an old message that a poll already accounted for
            return
        self._tell_keys(key_id if key_id is not None and v == known + 1 else None)

    # -- the change listener -----------------------------------------------------------------

    async def _watch(self) -> None:
        """Health and key changes from every process, on one pub/sub connection; on each
        (re)connect, catch up with what was missed; poll the key version every ``key_poll``
        seconds in case a message was lost on a connection that died quietly."""
        while True:
            ps = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await ps.subscribe(self._chan_health, self._chan_keys)
                await self._catch_up()
                self.watching.set()
                next_poll = time.monotonic() + self.key_poll
                while True:
                    msg = await ps.get_message(timeout=self.key_poll)
                    if msg is not None:
                        self._on_message(msg["channel"], msg["data"])
                    if time.monotonic() >= next_poll:
                        await self._poll_keys()
                        next_poll = time.monotonic() + self.key_poll
            except FAILURES as err:
                self.watching.clear()
                self._failed("watch", err)
                await asyncio.sleep(self.retry_interval)
            finally:
                with contextlib.suppress(*FAILURES):
                    await ps.aclose()

    async def _catch_up(self) -> None:
        if self._key_version is not None:  # a reconnect: changes may have been missed
            self._key_version = None
            self._tell_keys(None)
        cooling = await self._cooling_script(args=[self._now_arg(), self.prefix])
        now_cooling = {cooling[a].decode(): cooling[a + 1] / US for a in range(0, len(cooling), 2)}
        for name in list(self._health):
            if name not in now_cooling:
                self._mirror(name, 0.0, 0, None)
        for name, left in now_cooling.items():
            self._mirror(name, left, 0, None)
        await self._poll_keys()
        self._outage.ok()

    async def _poll_keys(self) -> None:
        raw = await self.client.get(self.prefix + "keys:v")
        self._key_version_seen(int(raw or 0), None)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if channel.decode() == self._chan_health:
            m = orjson.loads(data)
            self._mirror(m["d"], m["u"] / US, m["f"], m["e"] or None)
        else:
            v, _, key_id = data.decode().partition(":")
            self._key_version_seen(int(v), key_id)

    # -- bytes -------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        try:
            v = await self.client.get(self.prefix + "c:" + key)
        except FAILURES as err:
            self._failed("cache_get", err)
            return None
        return v

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if not self._available() or ttl <= 0:
            return
        try:
            await self.client.set(self.prefix + "c:" + key, value, px=max(round(ttl * 1000), 1))
        except FAILURES as err:
            self._failed("cache_set", err)
