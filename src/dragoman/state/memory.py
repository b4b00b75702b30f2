"""In-process state: the embedded default, and the reference the Redis state is tested against.

Same semantics as ``RedisState`` (state/base.py), on the process's monotonic clock (injectable
for tests). Nothing here awaits: an admission costs a few dict operations.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

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
    verdict,
)


class _Entry:
    __slots__ = ("member", "t", "tokens")

    def __init__(self, t: float, member: str, tokens: int) -> None:
        self.t, self.member, self.tokens = t, member, tokens


class _Counter:
    """One counter's sliding log (time order), its token sum, and its leases."""

    __slots__ = ("by_member", "leases", "log", "tokens")

    def __init__(self) -> None:
        self.log: deque[_Entry] = deque()
        self.by_member: dict[str, _Entry] = {}
        self.tokens = 0
        self.leases: dict[str, float] = {}

    def trim(self, now: float, window: float) -> None:
        cut = now - window
        log = self.log
        while log and log[0].t <= cut:  # the window is (now - window, now]
            e = log.popleft()
            self.tokens -= e.tokens
            del self.by_member[e.member]
        if self.leases:
            for m in [m for m, exp in self.leases.items() if exp <= now]:
                del self.leases[m]

    def check(self, lim: Limit, tokens: int, now: float, window: float) -> Check:
        n, total, held = len(self.log), self.tokens, len(self.leases)
        reset = self.log[-1].t + window - now if self.log else 0.0
        waits: list[float] = []
        ok, never = True, False
        if lim.rpm is not None and n + 1 > lim.rpm:
            ok = False
            waits.append(self.log[n - lim.rpm].t + window - now)
        if lim.tpm is not None and total + tokens > lim.tpm:
            ok = False
            if tokens > lim.tpm:
                never = True
            else:
                need, acc = total + tokens - lim.tpm, 0
                for e in self.log:
                    acc += e.tokens
                    if acc >= need:
                        waits.append(e.t + window - now)
                        break
        if lim.concurrency is not None and held + 1 > lim.concurrency:
            ok = False
            waits.append(CONCURRENCY_RETRY)
        retry = None if never else (max(waits) if waits else 0.0)
        return Check(lim, ok, n, total, held, reset, retry)


def _no_ticket(_group: int) -> Ticket:  # pragma: no cover - never called for a refusal
    raise AssertionError("a refused request has no ticket")


class MemoryBytes:
    """Bytes with a TTL, bounded in total size (least recently used entries go first)."""

    def __init__(
        self, max_bytes: int = 64 * 1024 * 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.size = 0
        self._d: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        hit = self._d.get(key)
        if hit is None:
            return None
        value, expires = hit
        if expires <= self.clock():
            self._drop(key)
            return None
        self._d.move_to_end(key)
        return value

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if key in self._d:
            self._drop(key)
        if len(value) > self.max_bytes or ttl <= 0:
            return
        self._d[key] = (value, self.clock() + ttl)
        self.size += len(value)
        while self.size > self.max_bytes:
            self._drop(next(iter(self._d)))

    def _drop(self, key: str) -> None:
        value, _ = self._d.pop(key)
        self.size -= len(value)


class MemoryState(State):
    """Every counter in this process's memory (``state.url`` not set)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        window: float = WINDOW,
        lease_ttl: float | None = None,
        cache_max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.clock = clock
        self.window = window
        self.lease_ttl = lease_ttl
        self._counters: dict[str, _Counter] = {}
        self._ids = itertools.count(1)
        self._nonce = os.urandom(4).hex()
        self._cool: dict[str, float] = {}  # deployment -> cooling until (clock)
        self._fails: dict[str, deque[float]] = {}
        self._health_listeners: list[HealthListener] = []
        self._key_listeners: list[KeyListener] = []
        self.bytes = MemoryBytes(cache_max_bytes, clock)

    # -- rate limits -------------------------------------------------------------------------

    async def admit(self, groups: Sequence[Sequence[Limit]], tokens: int = 0) -> Admission:
        return self.admit_now(groups, tokens)

    def admit_now(self, groups: Sequence[Sequence[Limit]], tokens: int = 0) -> Admission:
        """``admit`` without the coroutine (it never waits)."""
        now = self.clock()
        window = self.window
        seen: list[list[Check]] = []
        for group in groups or ((),):
            checks = []
            for lim in group:
                c = self._counters.get(lim.counter)
                if c is None:
                    c = self._counters[lim.counter] = _Counter()
                else:
                    c.trim(now, window)
                checks.append(c.check(lim, tokens, now, window))
            seen.append(checks)
            if all(ch.ok for ch in checks):
                expires = math.inf if self.lease_ttl is None else now + self.lease_ttl
                member = f"{self._nonce}:{next(self._ids)}"
                for lim in group:
                    c = self._counters[lim.counter]
                    if lim.logged:
                        e = _Entry(now, member, tokens if lim.tpm is not None else 0)
                        c.log.append(e)
                        c.by_member[member] = e
                        c.tokens += e.tokens
                    if lim.concurrency is not None:
                        c.leases[member] = expires
                ticket = Ticket(member, tuple(group), tokens)
                return verdict(seen, tokens, lambda _i, t=ticket: t)  # type: ignore[misc]
        self._forget_empty(groups)
        return verdict(seen, tokens, _no_ticket)

    def settle(self, ticket: Ticket, tokens: int | None = None) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        for lim in ticket.limits:
            c = self._counters.get(lim.counter)
            if c is None:
                continue
            if tokens is not None and lim.tpm is not None:
                e = c.by_member.get(ticket.member)
                if e is not None:  # still in the window: correct it where it was counted
                    c.tokens += tokens - e.tokens
                    e.tokens = tokens
            c.leases.pop(ticket.member, None)
            if not c.log and not c.leases:
                del self._counters[lim.counter]

    def renew(self, ticket: Ticket) -> None:
        """Extend the leases of a request still running (with ``lease_ttl``; ``RedisState``
        renews its own). Without ``lease_ttl`` a lease lasts until ``settle``: in one process,
        nothing can die and leave it behind."""
        if self.lease_ttl is None:
            return
        now = self.clock()
        for lim in ticket.leases:
            c = self._counters.get(lim.counter)
            if c is not None and ticket.member in c.leases:
                c.leases[ticket.member] = now + self.lease_ttl

    def _forget_empty(self, groups: Sequence[Sequence[Limit]]) -> None:
        for group in groups:
            for lim in group:
                c = self._counters.get(lim.counter)
                if c is not None and not c.log and not c.leases:
                    del self._counters[lim.counter]

    # -- deployment health -------------------------------------------------------------------

    async def cool(self, deployment: str, seconds: float, reason: str) -> None:
        self._cool[deployment] = self.clock() + seconds
        self._fails.pop(deployment, None)
        self._tell(deployment, seconds, 0, reason)

    async def failure(
        self, deployment: str, *, window: float, allowed_fails: int, cooldown: float, reason: str
    ) -> float:
        now = self.clock()
        fails = self._fails.setdefault(deployment, deque())
        fails.append(now)
        while fails and fails[0] <= now - window:
            fails.popleft()
        if len(fails) >= allowed_fails:
            await self.cool(deployment, cooldown, reason)
            return cooldown
        self._tell(deployment, self.cooldown(deployment), len(fails), reason)
        return 0.0

    async def recover(self, deployment: str) -> None:
        if self._fails.pop(deployment, None) is None and deployment not in self._cool:
            return
        self._cool.pop(deployment, None)
        self._tell(deployment, 0.0, 0, None)

    def cooldown(self, deployment: str) -> float:
        until = self._cool.get(deployment)
        return 0.0 if until is None else max(until - self.clock(), 0.0)

    def on_health(self, listener: HealthListener) -> None:
        self._health_listeners.append(listener)

    def _tell(self, deployment: str, seconds: float, fails: int, reason: str | None) -> None:
        for fn in self._health_listeners:
            fn(deployment, seconds, fails, reason)

    # -- keys --------------------------------------------------------------------------------

    async def key_changed(self, key_id: str) -> None:
        for fn in self._key_listeners:
            fn(key_id)

    def on_key_change(self, listener: KeyListener) -> None:
        self._key_listeners.append(listener)

    # -- bytes -------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return self.bytes.get(key)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self.bytes.set(key, value, ttl)
