"""``stages/retry.py`` (retries with the injected sleep/clock/rng, in-flight counts and health,
a stream's at its end) and ``stages/fallback.py`` (the next model on an upstream's failure, not
on our own refusal), with a fake ``next``."""

from __future__ import annotations

import random

import pytest

from dragoman.core.exchange import Exchange, Reply
from dragoman.core.runtime import Runtime
from dragoman.core.streams import Closing, PrimedStream, StreamOutcome
from dragoman.errors import ContextOverflow, DragomanError, InvalidRequestError, OverloadedError
from dragoman.stages.fallback import Fallback
from dragoman.stages.retry import Retry

from .support import Clock, config, exchange


def _upstream(
    status: int, message: str = "busy", retry_after: float | None = None
) -> DragomanError:
    err = OverloadedError(message)
    err.upstream_status = status
    err.retry_after = retry_after
    return err


def _runtime(clock: Clock, **cfg: object) -> Runtime:
    return Runtime(config(**cfg), sleep=clock.sleep, clock=clock, rng=random.Random(1))


async def test_retries_with_backoff_then_answers() -> None:
    clock = Clock()
    rt = _runtime(clock, routing={"retries": {"max_retries": 2, "base_delay": 1, "max_delay": 8}})
    route = rt.models.get("claude")
    failures = [_upstream(529), _upstream(529, retry_after=3.0)]
    seen: list[int] = []

    async def next(ex: Exchange) -> Reply:
        seen.append(ex.chosen.inflight if ex.chosen else -1)
        if failures:
            raise failures.pop(0)
        ex.ttfb = 0.1
        return Reply(200, {}, body=b"{}")

    ex = exchange(candidate=route)
    assert (await Retry(rt)(ex, next)).status == 200
    assert ex.attempts == 3 and seen == [1, 1, 1]
    assert len(clock.slept) == 2 and 0 <= clock.slept[0] <= 1 and clock.slept[1] == 3.0
    dep = route.deployments[0]
    assert dep.inflight == 0 and not dep.failures  # the success healed it


async def test_a_client_error_is_not_retried_and_says_nothing_of_health() -> None:
    clock = Clock()
    rt = _runtime(clock)
    route = rt.models.get("claude")

    async def next(ex: Exchange) -> Reply:
        raise _upstream(400, "bad field")

    with pytest.raises(DragomanError) as e:
        await Retry(rt)(exchange(candidate=route), next)
    assert e.value.model == "claude" and e.value.deployment == route.deployments[0].name
    assert clock.slept == [] and route.deployments[0].inflight == 0


async def _stream_reply(outcome: StreamOutcome) -> tuple[Reply, Closing]:
    closing = Closing()

    async def gen():  # type: ignore[no-untyped-def]
        try:
            yield b"x"
        finally:
            await closing.close(outcome)

    return Reply(200, {}, stream=await PrimedStream.start(gen(), closing)), closing


@pytest.mark.parametrize("broken", [False, True])
async def test_a_stream_stays_in_flight_until_it_ends(broken: bool) -> None:
    clock = Clock()
    rt = _runtime(clock)
    route = rt.models.get("claude")
    dep = route.deployments[0]
    outcome = StreamOutcome(502, "upstream stream ended early") if broken else StreamOutcome()

    async def next(ex: Exchange) -> Reply:
        ex.ttfb = 0.2
        return (await _stream_reply(outcome))[0]

    reply = await Retry(rt)(exchange(candidate=route), next)
    assert dep.inflight == 1 and dep.latency_ewma == 0.2
    assert reply.stream is not None
    [c async for c in reply.stream]
    assert dep.inflight == 0
    assert bool(dep.failures) is broken


async def test_falls_back_on_an_upstream_failure_not_on_our_own() -> None:
    clock = Clock()
    rt = _runtime(clock, models={"claude": {"provider": "ant", "fallbacks": ["gpt"]}})
    tried: list[str] = []

    async def next(ex: Exchange) -> Reply:
        assert ex.candidate is not None
        tried.append(ex.candidate.name)
        if ex.candidate.name == "claude":
            raise _upstream(529)
        return Reply(200, {}, body=b"{}")

    ex = exchange()
    ex.decision = _decision(rt, "claude")
    assert (await Fallback(rt)(ex, next)).status == 200
    assert tried == ["claude", "gpt"]

    async def refuses(ex: Exchange) -> Reply:
        raise InvalidRequestError("our own 400")

    with pytest.raises(InvalidRequestError):
        await Fallback(rt)(ex, refuses)


async def test_context_overflow_takes_the_context_window_fallbacks() -> None:
    clock = Clock()
    rt = _runtime(
        clock,
        models={
            "claude": {
                "provider": "ant",
                "fallbacks": ["gpt"],
                "context_window_fallbacks": ["big"],
            },
            "big": {"provider": "oai", "model": "big-up"},
        },
    )
    tried: list[str] = []

    async def next(ex: Exchange) -> Reply:
        assert ex.candidate is not None
        tried.append(ex.candidate.name)
        if ex.candidate.name == "claude":
            err = ContextOverflow("prompt is too long: 300000 tokens > 200000 maximum")
            err.upstream_status = 400
            raise err
        return Reply(200, {}, body=b"{}")

    ex = exchange()
    ex.decision = _decision(rt, "claude")
    await Fallback(rt)(ex, next)
    assert tried == ["claude", "big"]


def _decision(rt: Runtime, model: str):  # type: ignore[no-untyped-def]
    from dragoman.routing.rules import decide

    body = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    return decide(rt.models, rt.config.routing.rules, "anthropic", body, lambda: 10)


async def test_a_fallback_the_key_may_not_use_is_skipped() -> None:
    """The key's allow-list holds on every fallback (docs/accounting.md): skipped, and the
    caller gets the failure of the model it may use."""
    from .support import Books

    clock = Clock()
    rt = _runtime(clock, models={"claude": {"provider": "ant", "fallbacks": ["gpt"]}})
    rt.accountant = Books(allowed={"claude"})
    tried: list[str] = []

    async def next(ex: Exchange) -> Reply:
        assert ex.candidate is not None
        tried.append(ex.candidate.name)
        raise _upstream(529)

    ex = exchange()
    ex.decision = _decision(rt, "claude")
    with pytest.raises(OverloadedError):
        await Fallback(rt)(ex, next)
    assert tried == ["claude"]
