"""Rate-limit admission, the same tests on both states: memory and the real Redis.

Times are the injected clock's (Redis scripts take it instead of the server's ``TIME``), so
window edges are tested to the microsecond; ``test_server_time`` uses the server's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dragoman.state import Limit, MemoryState, State
from dragoman.state.redis import RedisState

from .conftest import Clock

Factory = Callable[..., State]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Factory]:
    made: list[State] = []

    def factory(**kw: Any) -> State:
        if request.param == "memory":
            st: State = MemoryState(clock=clock, **kw)
        else:
            prefix = request.getfixturevalue("prefix")
            url = request.getfixturevalue("redis_url")
            st = RedisState(url, prefix=prefix, clock=clock, **kw)
        made.append(st)
        return st

    yield factory
    for st in made:
        await st.close()


def lim(counter: str = "k:a", **kw: Any) -> Limit:
    return Limit(counter, label=counter, **kw)


async def test_rpm_sliding_window_edges(make: Factory, clock: Clock) -> None:
    st = make()
    L = [[lim(rpm=3)]]
    t0 = clock.t
    for dt in (0.0, 10.0, 20.0):
        clock.t = t0 + dt
        a = await st.admit(L)
        assert a.admitted
    clock.t = t0 + 59.999999  # the first admission is still in (t-60, t]
    a = await st.admit(L)
    assert not a.admitted
    assert a.retry_after == pytest.approx(0.000001, abs=1e-9)
    assert a.checks[0][0].requests == 3
    clock.t = t0 + 60.0  # ... and now it is not: the window is half-open
    assert (await st.admit(L)).admitted
    a = await st.admit(L)
    assert not a.admitted
    assert a.retry_after == pytest.approx(10.0)  # t0+10 leaves at t0+70


async def test_rpm_any_60s_window_holds_at_most_n(make: Factory, clock: Clock) -> None:
    """Attempts every 0.5 s for 5 minutes against 7 rpm: every 60-second window of the
    admitted times holds at most 7, and the limit is used (not under-admitting)."""
    st = make()
    L = [[lim(rpm=7)]]
    t0, admitted = clock.t, []
    for i in range(600):
        clock.t = t0 + i * 0.5
        if (await st.admit(L)).admitted:
            admitted.append(clock.t)
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u < t + 60) <= 7
    assert len(admitted) == 7 * 5  # bursts of 7 at 0, 60, 120, 180, 240


async def test_refused_requests_are_not_counted(make: Factory, clock: Clock) -> None:
    st = make()
    L = [[lim(rpm=2)]]
    assert (await st.admit(L)).admitted and (await st.admit(L)).admitted
    for _ in range(10):
        clock.advance(1)
        assert not (await st.admit(L)).admitted
    clock.advance(50)  # 60 s after the two admissions: the refusals left nothing behind
    assert (await st.admit(L)).admitted and (await st.admit(L)).admitted


async def test_all_or_nothing(make: Factory, clock: Clock) -> None:
    st = make()
    glob = lim("g", rpm=100)
    a1 = await st.admit([[lim("k:a", rpm=1), glob]])
    assert a1.admitted
    refused = await st.admit([[lim("k:a", rpm=1), glob]])
    assert not refused.admitted
    assert [c.limit.counter for c in refused.refused_by] == ["k:a"]
    other = await st.admit([[lim("k:b", rpm=1), glob]])
    assert other.admitted
    # the global counter saw a1 only: the refused request was not counted there either
    assert other.checks[0][1].requests == 1


async def test_tpm_estimate_then_correction(make: Factory, clock: Clock) -> None:
    st = make()
    L = [[lim(tpm=1000)]]
    t0 = clock.t
    a = await st.admit(L, tokens=600)
    assert a.admitted and a.ticket is not None
    clock.advance(5)
    b = await st.admit(L, tokens=600)
    assert not b.admitted
    assert b.retry_after == pytest.approx(55.0)  # when the 600 of t0 leave the window
    st.settle(a.ticket, tokens=100)  # it really used 100
    await st.drain()
    c = await st.admit(L, tokens=600)
    assert c.admitted and c.checks[0][0].tokens == 100
    d = await st.admit(L, tokens=301)
    assert not d.admitted and d.checks[0][0].tokens == 700
    # the corrected 100 stay at their admission instant: they leave at t0 + 60 exactly
    clock.t = t0 + 60.0
    e = await st.admit(L, tokens=300)
    assert e.admitted and e.checks[0][0].tokens == 600


async def test_tpm_correction_up_and_after_the_window(make: Factory, clock: Clock) -> None:
    st = make()
    L = [[lim(tpm=1000)]]
    a = await st.admit(L, tokens=100)
    assert a.ticket is not None
    st.settle(a.ticket, tokens=900)  # more than estimated: counted where it was admitted
    await st.drain()
    b = await st.admit(L, tokens=200)
    assert not b.admitted and b.checks[0][0].tokens == 900
    late = await st.admit([[lim("k:late", tpm=1000)]], tokens=10)
    assert late.ticket is not None
    clock.advance(70)  # a long stream: its admission instant left the window
    st.settle(late.ticket, tokens=5000)
    await st.drain()
    c = await st.admit([[lim("k:late", tpm=1000)]], tokens=1000)
    assert c.admitted  # the late correction did not land in a window it is not in


async def test_tpm_never(make: Factory) -> None:
    st = make()
    a = await st.admit([[lim(tpm=1000)]], tokens=1001)
    assert not a.admitted and a.never and a.retry_after is None


async def test_settle_is_idempotent(make: Factory) -> None:
    st = make()
    L = [[lim(concurrency=1, tpm=100)]]
    a = await st.admit(L, tokens=50)
    assert a.ticket is not None
    st.settle(a.ticket, tokens=10)
    st.settle(a.ticket, tokens=90)
    await st.drain()
    b = await st.admit(L, tokens=0)
    assert b.admitted and b.checks[0][0].tokens == 10 and b.checks[0][0].inflight == 0


async def test_concurrency(make: Factory) -> None:
    st = make()
    L = [[lim(concurrency=2)]]
    a, b = await st.admit(L), await st.admit(L)
    assert a.admitted and b.admitted and a.ticket and b.ticket
    c = await st.admit(L)
    assert not c.admitted and c.retry_after == 1.0 and c.checks[0][0].inflight == 2
    st.settle(a.ticket)
    await st.drain()
    d = await st.admit(L)
    assert d.admitted and d.checks[0][0].inflight == 1


async def test_lease_expires_when_its_holder_is_gone(make: Factory, clock: Clock) -> None:
    st = make(lease_ttl=30.0)
    L = [[lim(concurrency=1)]]
    assert (await st.admit(L)).admitted  # and its process dies: no settle, no renewal
    clock.advance(29.999999)
    assert not (await st.admit(L)).admitted
    clock.advance(0.000001)
    assert (await st.admit(L)).admitted


async def test_a_renewed_lease_is_kept(make: Factory, clock: Clock) -> None:
    st = make(lease_ttl=30.0)
    L = [[lim(concurrency=1)]]
    a = await st.admit(L)
    assert a.ticket is not None
    for _ in range(4):  # a two-minute stream, renewed every 20 s
        clock.advance(20)
        if isinstance(st, RedisState):
            assert await st.renew() == 1
        else:
            assert isinstance(st, MemoryState)
            st.renew(a.ticket)
        assert not (await st.admit(L)).admitted
    st.settle(a.ticket)
    await st.drain()
    assert (await st.admit(L)).admitted


async def test_first_group_with_room(make: Factory, clock: Clock) -> None:
    st = make()
    d1, d2 = [lim("d:one", rpm=1)], [lim("d:two", rpm=2)]
    got = [(await st.admit([d1, d2])).group for _ in range(3)]
    assert got == [0, 1, 1]
    clock.advance(15)
    a = await st.admit([d1, d2])
    assert not a.admitted and a.group == -1
    assert a.retry_after == pytest.approx(45.0)  # the soonest: either frees at t0 + 60
    assert len(a.checks) == 2


async def test_many_tasks_exactly_the_limit(make: Factory) -> None:
    st = make()
    L = [[lim(rpm=50), lim("g", rpm=10_000)]]
    results = await asyncio.gather(*(st.admit(L) for _ in range(200)))
    assert sum(a.admitted for a in results) == 50
    remaining = sorted(50 - a.checks[0][0].requests - 1 for a in results if a.admitted)
    assert remaining == list(range(50))  # each admitted request saw a distinct count


async def test_no_limits_no_ticket_needed(make: Factory) -> None:
    st = make()
    a = await st.admit([])
    assert a.admitted and not a.limited


@pytest.mark.redis
async def test_server_time(redis_url: str, prefix: str) -> None:
    """Without an injected clock the window runs on the Redis server's clock."""
    st = RedisState(redis_url, prefix=prefix)
    try:
        L = [[lim(rpm=2)]]
        assert (await st.admit(L)).admitted and (await st.admit(L)).admitted
        a = await st.admit(L)
        assert not a.admitted
        assert 55.0 < (a.retry_after or 0) <= 60.0
    finally:
        await st.close()
