"""``GET /metrics`` counts what clients really received: the exposition is parsed, and each case
asserts the exact change of every labelled ``dragoman_requests_total`` / ``dragoman_errors_total``
sample and of the latency histograms' counts (nothing else may move)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.harness import ADMIN, KEY, Stack
from tests.fakes import ChatReply, ErrorReply, OpenAIErrorReply, Reply, text_block
from tests.support import http

Sample = tuple[str, tuple[tuple[str, str], ...]]
WATCHED = (
    "dragoman_requests_total",
    "dragoman_errors_total",
    "dragoman_time_to_response_seconds_count",
    "dragoman_time_to_first_token_seconds_count",
)


def scrape(s: Stack) -> dict[Sample, float]:
    r = http.get(s.url + "/metrics", ADMIN)
    assert r.status == 200
    text = r.body.decode()
    assert KEY not in text
    out: dict[Sample, float] = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name in WATCHED:
                out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


def req(endpoint: str, dialect: str, model: str, status: int, stream: bool) -> Sample:
    labels = {
        "endpoint": endpoint,
        "dialect": dialect,
        "model": model,
        "status": str(status),
        "stream": "1" if stream else "0",
    }
    return ("dragoman_requests_total", tuple(sorted(labels.items())))


def err(type_: str) -> Sample:
    return ("dragoman_errors_total", (("type", type_),))


def latency(dialect: str) -> Sample:
    return ("dragoman_time_to_response_seconds_count", (("dialect", dialect),))


def ttft(dialect: str) -> Sample:
    return ("dragoman_time_to_first_token_seconds_count", (("dialect", dialect),))


def expect_delta(s: Stack, action: Callable[[], Any], expected: dict[Sample, float]) -> None:
    """Run ``action`` and wait (a generous deadline: a stream is counted when the server has
    finished with it, which may be just after the client stopped reading) until the samples
    moved by exactly ``expected``."""
    before = scrape(s)
    action()
    deadline = time.monotonic() + 10
    while True:
        after = scrape(s)
        delta = {
            k: after.get(k, 0.0) - before.get(k, 0.0)
            for k in set(after) | set(before)
            if after.get(k, 0.0) != before.get(k, 0.0)
        }
        if delta == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert delta == expected


def _swallow(fn: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except (anthropic.APIError, openai.APIError):
            pass

    return run


MSGS: Any = [{"role": "user", "content": "hi"}]


def test_success(stack: Stack) -> None:
    expect_delta(
        stack,
        lambda: stack.anthropic().messages.create(model="coder", max_tokens=5, messages=MSGS),
        {req("messages", "anthropic", "coder", 200, False): 1, latency("anthropic"): 1},
    )


def test_client_errors(stack: Stack) -> None:
    """A 404 (unknown model: no model label), a 400 of ours, and an upstream's own 400."""
    o = stack.openai()
    stack.vllm.enqueue(OpenAIErrorReply(400, "bad things", type="BadRequestError", code=400))
    expect_delta(
        stack,
        lambda: [
            _swallow(lambda: o.chat.completions.create(model="nope", messages=MSGS))(),
            _swallow(lambda: o.chat.completions.create(model="coder", messages=[]))(),
            _swallow(lambda: o.chat.completions.create(model="coder", messages=MSGS))(),
        ],
        {
            req("chat_completions", "openai", "", 404, False): 1,
            req("chat_completions", "openai", "", 400, False): 1,
            req("chat_completions", "openai", "coder", 400, False): 1,
            err("not_found_error"): 1,
            err("invalid_request_error"): 2,
            latency("openai"): 3,
        },
    )


@pytest.mark.leaves_cooldown  # upstream errors are scripted on purpose
def test_server_errors(stack: Stack) -> None:
    """An upstream 500, and an upstream 529 answered to an OpenAI client as its 503."""
    stack.vllm.enqueue(OpenAIErrorReply(500, "boom", type="InternalServerError", code=500))
    stack.anthropic_fake.enqueue(ErrorReply(529, "overloaded_error", "Overloaded"))
    o = stack.openai()
    expect_delta(
        stack,
        lambda: [
            _swallow(lambda: o.chat.completions.create(model="coder", messages=MSGS))(),
            _swallow(lambda: o.chat.completions.create(model="claude-sonnet-4-5", messages=MSGS))(),
        ],
        {
            req("chat_completions", "openai", "coder", 500, False): 1,
            req("chat_completions", "openai", "claude-sonnet-4-5", 503, False): 1,
            err("api_error"): 1,
            err("overloaded_error"): 1,
            latency("openai"): 2,
        },
    )


@pytest.mark.leaves_cooldown  # upstream errors are scripted on purpose
def test_streams(stack: Stack) -> None:
    """A complete stream is a 200; one the upstream breaks off counts as its failure (the
    client saw an error event, whatever its headers said); one the client leaves is a 499."""
    stack.vllm.enqueue(ChatReply(content="all of it"))
    stack.vllm.enqueue(ChatReply(content="a long answer " * 20, cut_after=6))
    stack.anthropic_fake.enqueue(
        Reply(content=[text_block("tok " * 100)], text_chunk=4, event_delay=0.05)
    )
    a = stack.anthropic()

    def run() -> None:
        with a.messages.stream(model="coder", max_tokens=50, messages=MSGS) as st:
            assert st.get_final_text() == "all of it"
        broken = a.messages.create(model="coder", max_tokens=50, messages=MSGS, stream=True)
        _swallow(lambda: list(broken))()
        with a.messages.stream(model="claude-sonnet-4-5", max_tokens=500, messages=MSGS) as st:
            for _ in st.text_stream:
                break  # leave

    expect_delta(
        stack,
        run,
        {
            req("messages", "anthropic", "coder", 200, True): 1,
            req("messages", "anthropic", "coder", 502, True): 1,
            req("messages", "anthropic", "claude-sonnet-4-5", 499, True): 1,
            err("api_error"): 1,
            latency("anthropic"): 3,
            ttft("anthropic"): 3,
        },
    )


def test_openai_stream_and_legacy_completion(stack: Stack) -> None:
    o = stack.openai()

    def run() -> None:
        chunks = list(o.chat.completions.create(model="coder", messages=MSGS, stream=True))
        assert chunks
        done = o.completions.create(model="coder", prompt="Say hi", max_tokens=5)
        assert done.choices[0].text
        streamed = list(o.completions.create(model="coder", prompt="hi", stream=True))
        assert streamed

    expect_delta(
        stack,
        run,
        {
            req("chat_completions", "openai", "coder", 200, True): 1,
            req("completions", "openai", "coder", 200, False): 1,
            req("completions", "openai", "coder", 200, True): 1,
            latency("openai"): 3,
            ttft("openai"): 2,
        },
    )


def test_count_tokens_and_auth_failures(stack: Stack) -> None:
    def run() -> None:
        stack.anthropic().messages.count_tokens(model="claude", messages=MSGS)
        bad = http.post(
            stack.url + "/v1/chat/completions",
            {"model": "coder", "messages": MSGS},
            {"authorization": "Bearer wrong"},
        )
        assert bad.status == 401

    expect_delta(
        stack,
        run,
        {
            req("count_tokens", "anthropic", "claude-sonnet-4-5", 200, False): 1,
            req("chat_completions", "openai", "", 401, False): 1,
            err("authentication_error"): 1,
            latency("anthropic"): 1,
            latency("openai"): 1,
        },
    )


@pytest.mark.parametrize("path", ["/health", "/v1/models", "/ping"])
def test_other_routes_are_not_llm_requests(stack: Stack, path: str) -> None:
    expect_delta(stack, lambda: http.get(stack.url + path, {"x-api-key": KEY}), {})
