"""The answer's rate-limit headers in each dialect, the 429 of a refusal, and deployment
rpm/tpm, on real admissions (a ``MemoryState`` on an injected clock)."""

from __future__ import annotations

import pytest

from dragoman.errors import OverloadedError, RateLimitError
from dragoman.limits import (
    DeploymentsBusyError,
    admit_deployment,
    anthropic_headers,
    deployment_limit,
    go_duration,
    openai_headers,
    ranked,
    refusal,
    rfc3339,
)
from dragoman.protocols import anthropic as anthropic_wire
from dragoman.protocols import openai as openai_wire
from dragoman.state import Admission, Limit, MemoryState

T0 = 1_000_000.0
#: wall time of the "now" the headers are computed at: 2026-01-02T03:04:05Z
WALL = 1767323045.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (59.9995, "1m0s"),
        (360, "6m0s"),
        (3725.5, "1h2m5.5s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_rfc3339() -> None:
    assert rfc3339(WALL) == "2026-01-02T03:04:05Z"
    assert rfc3339(WALL + 0.1) == "2026-01-02T03:04:06Z"  # never earlier than the reset


async def test_headers_of_an_admitted_request() -> None:
    clock = Clock()
    st = MemoryState(clock=clock)
    key = Limit("k:a", rpm=10, tpm=1000, label="key a")
    glob = Limit("g", rpm=3, tpm=100_000, label="the gateway")
    await st.admit([[glob]], tokens=5)  # someone else
    clock.t += 12
    adm = await st.admit([[key, glob]], tokens=250)
    assert adm.admitted
    # requests: the gateway's has fewer left (3 - 2 = 1) than the key's (10 - 1 = 9);
    # tokens: the key's (1000 - 250 = 750) than the gateway's (100000 - 255)
    assert anthropic_headers(adm, now=WALL) == {
        "anthropic-ratelimit-requests-limit": "3",
        "anthropic-ratelimit-requests-remaining": "1",
        "anthropic-ratelimit-requests-reset": "2026-01-02T03:05:05Z",
        "anthropic-ratelimit-tokens-limit": "1000",
        "anthropic-ratelimit-tokens-remaining": "750",
        "anthropic-ratelimit-tokens-reset": "2026-01-02T03:05:05Z",
    }
    assert openai_headers(adm) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "750",
        "x-ratelimit-reset-tokens": "1m0s",
    }


async def test_the_last_request_sees_zero_remaining_and_the_next_a_429() -> None:
    clock = Clock()
    st = MemoryState(clock=clock)
    L = [[Limit("k:ci", rpm=2, label="key ci")]]
    await st.admit(L)
    clock.t += 20.5
    last = await st.admit(L)
    assert openai_headers(last)["x-ratelimit-remaining-requests"] == "0"
    clock.t += 10
    adm = await st.admit(L)
    assert not adm.admitted and adm.retry_after == pytest.approx(29.5)
    assert openai_headers(adm) == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "50s",  # the newest (t0 + 20.5) leaves at t0 + 80.5
        "retry-after": "30",
        "retry-after-ms": "29500",
    }
    err = refusal(adm, "openai")
    assert isinstance(err, RateLimitError) and err.status == 429
    assert err.message == "rate limit of key ci reached: 2 requests per minute; retry in 29.5s"
    assert err.headers["retry-after"] == "30" and err.retry_after == pytest.approx(29.5)
    assert openai_wire.error_body(err) == {
        "error": {
            "message": err.message,
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    a_err = refusal(adm, "anthropic", now=WALL)
    assert a_err.headers == {
        "anthropic-ratelimit-requests-limit": "2",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-01-02T03:04:55Z",
        "retry-after": "30",
        "retry-after-ms": "29500",
    }
    assert anthropic_wire.error_body(a_err)["error"]["type"] == "rate_limit_error"


async def test_refusal_messages() -> None:
    st = MemoryState(clock=Clock())
    tok = await st.admit([[Limit("t:eng", tpm=100, label="team eng")]], tokens=101)
    assert refusal(tok, "openai").message == (
        "this request may use 101 tokens (input estimate + max_tokens), more than the limit of "
        "100 tokens per minute of team eng: lower max_tokens"
    )
    assert "retry-after" not in refusal(tok, "openai").headers
    conc = [[Limit("k:a", concurrency=1, label="key a")]]
    await st.admit(conc)
    busy = await st.admit(conc)
    assert refusal(busy, "anthropic").message == (
        "concurrency limit of key a reached: 1 requests at once; retry in 1.0s"
    )
    down = refusal(Admission(False, retry_after=1.0, unavailable=True), "openai")
    assert isinstance(down, OverloadedError) and down.headers == {
        "retry-after": "1",
        "retry-after-ms": "1000",
    }


def test_no_limits_no_headers() -> None:
    assert openai_headers(Admission(True, degraded=True)) == {}
    assert anthropic_headers(Admission(True, 0, ((),))) == {}


async def test_deployments_first_with_room_then_429() -> None:
    clock = Clock()
    st = MemoryState(clock=clock)
    one, two = deployment_limit("m/one", 1, None), deployment_limit("m/two", None, 1000)
    assert deployment_limit("m/free", None, None) is None
    cands = [("one", one), ("two", two)]
    assert (await admit_deployment(st, cands, 600, "m")).deployment == "one"
    second = await admit_deployment(st, cands, 600, "m")
    assert second.deployment == "two" and second.ticket is not None
    clock.t += 7
    with pytest.raises(DeploymentsBusyError) as e:
        await admit_deployment(st, cands, 600, "m")
    assert e.value.status == 429 and e.value.retry_after == pytest.approx(53.0)
    assert e.value.message == "every deployment of model 'm' is at its rate limit; retry in 53.0s"
    assert e.value.headers == {"retry-after": "53", "retry-after-ms": "53000"}
    # the real usage frees room: "two" takes it again
    st.settle(second.ticket, tokens=100)
    assert (await admit_deployment(st, cands, 600, "m")).deployment == "two"


async def test_an_unlimited_deployment_costs_no_state_call() -> None:
    st = MemoryState(clock=Clock())
    lim = deployment_limit("m/one", 1, None)
    got = await admit_deployment(st, [("free", None), ("one", lim)], 10, "m")
    assert got.deployment == "free" and got.ticket is None
    again = await admit_deployment(st, [("one", lim)], 10, "m")
    assert again.deployment == "one"  # "one" was not counted when "free" was chosen
    # after a limited one, an unlimited one is the last alternative needed
    assert (
        await admit_deployment(st, [("one", lim), ("free", None)], 10, "m")
    ).deployment == "free"


async def test_deployment_that_can_never_take_it() -> None:
    st = MemoryState(clock=Clock())
    with pytest.raises(DeploymentsBusyError) as e:
        await admit_deployment(st, [("one", deployment_limit("m/one", None, 100))], 101, "m")
    assert e.value.retry_after is None and "lower max_tokens" in e.value.message


def test_ranked() -> None:
    order = ranked(["a", "b", "c"], lambda left: max(left))
    assert order == ["c", "b", "a"]
