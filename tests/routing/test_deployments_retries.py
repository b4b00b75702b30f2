"""Issue items 1 (deployments and strategies) and 2 (retries), through server and library."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.fakes import ChatReply, OpenAIErrorReply, Reply, error_reply
from tests.routing.harness import Driver, Fakes, JitterRandom, chat, msg

import dragoman


def _wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


# -- 1. deployments ------------------------------------------------------------------------------


def test_weighted_random_spreads_by_weight(drv: Driver, fakes: Fakes) -> None:
    hits: Counter[str | None] = Counter()
    for _ in range(40):
        r = drv.messages(msg("duo"))
        assert r.status == 200
        assert r.model == "duo" and r.attempts == 1
        hits[r.deployment] += 1
    a, b = len(fakes.anth.requests), len(fakes.anth2.requests)
    assert a + b == 40
    assert hits == {"duo-a": a, "duo-b": b}
    assert a > b > 0  # weights 3:1 (seeded rng)
    assert {r.body["model"] for r in fakes.anth.requests + fakes.anth2.requests} == {
        "claude-sonnet-4-5"
    }


def test_deployments_of_different_kinds_same_answer_shape(drv: Driver, fakes: Fakes) -> None:
    for _ in range(12):
        r = drv.messages(msg("mixed"))
        assert r.status == 200 and r.body["type"] == "message"  # Anthropic shape either way
    assert fakes.anth.requests and fakes.vllm.requests  # both kinds were used
    assert {q.body["model"] for q in fakes.vllm.requests} == {"qwen3-coder"}  # translated A->O
    assert all("messages" in q.body for q in fakes.vllm.requests)


def test_least_inflight_sends_to_the_idle_deployment(drv: Driver, fakes: Fakes) -> None:
    slow = Reply("slow", first_byte_delay=1.5)  # all four are in flight together
    fakes.anth.default_reply = slow
    fakes.anth2.default_reply = slow

    def one(i: int) -> int:
        # each request starts once the ones before it have reached an upstream (in flight)
        _wait_until(lambda: len(fakes.anth.requests) + len(fakes.anth2.requests) >= i)
        return drv.messages(msg("lazy")).status

    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(one, range(4))) == [200] * 4
    assert (len(fakes.anth.requests), len(fakes.anth2.requests)) == (2, 2)


def test_lowest_latency_prefers_the_fast_deployment(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.default_reply = Reply("slow", first_byte_delay=0.2)
    for _ in range(2):  # each deployment is measured once first
        assert drv.messages(msg("quick")).status == 200
    assert len(fakes.anth.requests) == 1 and len(fakes.anth2.requests) == 1
    for _ in range(5):
        r = drv.messages(msg("quick"))
        assert r.deployment == "quick-fast"
    assert len(fakes.anth.requests) == 1 and len(fakes.anth2.requests) == 6
    st = drv.states()
    assert st["quick-slow"]["latency_ewma_ms"] > st["quick-fast"]["latency_ewma_ms"]


# -- 2. retries ----------------------------------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(error_reply(500), error_reply(500), error_reply(500))
    r = drv.messages(msg("claude"))
    assert r.status == 200
    assert len(fakes.anth.requests) == 4
    assert isinstance(drv.rng, JitterRandom)
    assert drv.rng.bounds == [(0, 1.0), (0, 2.0), (0, 4.0)]  # uniform(0, min(cap, base*2^n))
    assert len(drv.time.sleeps) == 3
    assert all(0 <= s <= b for s, (_, b) in zip(drv.time.sleeps, drv.rng.bounds, strict=True))
    assert (r.model, r.deployment, r.attempts) == ("claude", "claude/anth", 4)


def test_at_most_max_retries_and_the_cap(make_driver: Callable[..., Driver], fakes: Fakes) -> None:
    drv = make_driver({"retries": {"max_retries": 3, "base_delay": 10.0, "max_delay": 15.0}})
    fakes.anth.default_reply = error_reply(500, "boom")
    r = drv.messages(msg("claude"))
    assert r.status == 500 and r.error_type == "api_error" and "boom" in r.error_message
    assert len(fakes.anth.requests) == 4  # 1 + 3 retries
    assert drv.rng.bounds == [(0, 10.0), (0, 15.0), (0, 15.0)]  # type: ignore[attr-defined]
    assert (r.model, r.deployment, r.attempts, r.retry_after) == ("claude", "claude/anth", 4, None)


def test_retry_count_is_configurable(make_driver: Callable[..., Driver], fakes: Fakes) -> None:
    drv = make_driver({"retries": {"max_retries": 1}})
    fakes.anth.default_reply = error_reply(503)
    assert drv.messages(msg("claude")).status == 503
    assert len(fakes.anth.requests) == 2 and len(drv.time.sleeps) == 1


@pytest.mark.parametrize("status", [408, 409, 429, 500, 501, 502, 503, 504, 529])
def test_retryable_statuses(drv: Driver, fakes: Fakes, status: int) -> None:
    fakes.anth.enqueue(error_reply(status))
    r = drv.messages(msg("claude"))
    assert r.status == 200, r
    assert len(fakes.anth.requests) == 2 and len(drv.time.sleeps) == 1


@pytest.mark.parametrize(
    ("status", "etype", "exc"),
    [
        (400, "invalid_request_error", dragoman.InvalidRequestError),
        # our provider credentials refused: a bad gateway, not the client's auth error
        (401, "api_error", dragoman.UpstreamCredentialsRejected),
        (403, "api_error", dragoman.UpstreamCredentialsRejected),
        (404, "not_found_error", dragoman.ModelNotFoundError),
        (413, "request_too_large", dragoman.DragomanError),
    ],
)
def test_other_4xx_are_never_retried(
    drv: Driver, fakes: Fakes, status: int, etype: str, exc: type[Exception]
) -> None:
    fakes.anth.enqueue(error_reply(status, "nope"))
    r = drv.messages(msg("claude"))
    assert len(fakes.anth.requests) == 1 and drv.time.sleeps == []
    assert r.status == (502 if status in (401, 403) else status) and r.error_type == etype
    if drv.kind == "library":
        assert isinstance(r.exc, exc)
    # a client's mistake says nothing about the deployment's health; wrong provider credentials
    # (401/403: the client's key was accepted by dragoman) do, and count towards allowed_fails
    assert drv.states()["claude/anth"]["recent_failures"] == (1 if status in (401, 403) else 0)


def test_openai_upstream_4xx_not_retried(drv: Driver, fakes: Fakes) -> None:
    fakes.vllm.enqueue(OpenAIErrorReply(400, "bad thing", type="BadRequestError", code=400))
    r = drv.chat(chat("coder"))
    assert r.status == 400 and len(fakes.vllm.requests) == 1 and drv.time.sleeps == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5)],
)
def test_retry_after_is_honoured(
    drv: Driver, fakes: Fakes, headers: dict[str, str], expected: float
) -> None:
    fakes.anth.enqueue(error_reply(429, headers=headers))
    r = drv.messages(msg("claude"))
    assert r.status == 200
    assert drv.time.sleeps == [expected]
    assert len(fakes.anth.requests) == 2


def test_retry_after_on_openai_upstream(drv: Driver, fakes: Fakes) -> None:
    fakes.vllm.enqueue(OpenAIErrorReply(429, "slow down", headers={"retry-after": "3"}))
    r = drv.chat(chat("coder"))
    assert r.status == 200 and drv.time.sleeps == [3.0]


def test_retry_after_longer_than_cap_is_not_waited_out(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": "120"}))
    r = drv.messages(msg("claude"))
    assert r.status == 429 and r.error_type == "rate_limit_error"
    assert drv.time.sleeps == [] and len(fakes.anth.requests) == 1
    assert (r.retry_after, r.model, r.deployment, r.attempts) == (120, "claude", "claude/anth", 1)


def test_retry_goes_to_another_deployment(drv: Driver, fakes: Fakes) -> None:
    # duo-a (weight 3) answers 429 with a long retry-after: the retry goes to duo-b at once,
    # after the ordinary jittered backoff (duo-a's retry-after does not speak for duo-b)
    fakes.anth.default_reply = error_reply(429, headers={"retry-after": "50"})
    hits: Counter[str | None] = Counter()
    for _ in range(6):
        r = drv.messages(msg("duo"))
        assert r.status == 200
        hits[r.deployment] += 1
    assert len(fakes.anth2.requests) == 6
    assert len(fakes.anth.requests) <= 1  # then duo-a cools down and is skipped
    assert all(s <= 1.0 for s in drv.time.sleeps)
    assert hits == {"duo-b": 6}


def test_retry_across_kinds_translates(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.default_reply = error_reply(529)
    for _ in range(4):
        r = drv.messages(msg("mixed"))
        assert r.status == 200 and r.body["type"] == "message"
    assert len(fakes.vllm.requests) == 4
    assert len(fakes.anth.requests) <= 1


def test_connection_refused_is_retried_elsewhere(drv: Driver, fakes: Fakes) -> None:
    r = drv.messages(msg("halfdead"))  # hd-dead weighs 1000: it is tried first
    assert r.status == 200
    assert len(fakes.anth.requests) == 1
    assert (r.model, r.deployment, r.attempts) == ("halfdead", "hd-live", 2)
    st = drv.states()["hd-dead"]
    assert st["recent_failures"] == 1 and st["last_error"].startswith("connection")


def test_connection_reset_before_first_byte_is_retried(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("x", cut_after=0, cut_mode="abort"))
    r = drv.messages(msg("claude", stream=True))
    assert r.status == 200 and r.stream_error is None
    assert r.text() == fakes.anth.default_text
    assert len(fakes.anth.requests) == 2 and len(drv.time.sleeps) == 1


@pytest.mark.parametrize("mode", ["eof", "abort"])
def test_stream_cut_after_bytes_reached_client_is_not_retried(
    drv: Driver, fakes: Fakes, mode: str
) -> None:
    # the first events go out at once; the cut comes after a pause, so the client already has
    # bytes: no retry, an error event instead
    fakes.anth.enqueue(Reply("a long enough answer", cut_after=5, cut_mode=mode, pauses={3: 0.2}))
    r = drv.messages(msg("claude", stream=True))
    assert r.status == 200
    assert r.events and r.events[0][0] == "message_start"
    assert r.stream_error in ("api_error", "overloaded_error")
    assert len(fakes.anth.requests) == 1 and drv.time.sleeps == []


def test_openai_stream_cut_after_first_chunk_is_not_retried(drv: Driver, fakes: Fakes) -> None:
    fakes.vllm.enqueue(
        ChatReply("a long enough answer", cut_after=4, cut_mode="abort", pauses={2: 0.2})
    )
    r = drv.chat(chat("coder", stream=True))
    assert r.status == 200 and r.stream_error is not None
    assert len(fakes.vllm.requests) == 1 and drv.time.sleeps == []


def test_error_event_before_any_byte_is_retried(drv: Driver, fakes: Fakes) -> None:
    # Anthropic sometimes answers 200 and then at once `event: error` (overloaded): nothing has
    # reached the client yet, so this is retried like a 529
    fakes.anth.enqueue(Reply("x", error_after=0, error_type="overloaded_error"))
    r = drv.messages(msg("claude", stream=True))
    assert r.status == 200 and r.stream_error is None
    assert len(fakes.anth.requests) == 2 and len(drv.time.sleeps) == 1


def test_openai_error_chunk_before_any_byte_is_retried(drv: Driver, fakes: Fakes) -> None:
    fakes.vllm.enqueue(ChatReply("x", error_after=0))
    r = drv.chat(chat("coder", stream=True))
    assert r.status == 200 and r.stream_error is None
    assert len(fakes.vllm.requests) == 2
