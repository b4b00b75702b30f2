"""Issue items 3 (cooldowns) and 4 (fallbacks), through server and library (defaults unpinned)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import pytest
from tests.fakes import ChatReply, ErrorReply, OpenAIErrorReply, Reply, error_reply
from tests.routing.harness import PNG, Driver, Fakes, chat, msg

from dragoman.errors import OverloadedError

NO_RETRY = {"retries": {"max_retries": 0}}

# -- 3. cooldowns --------------------------------------------------------------------------------
#
# The rules (README "Cooldowns"): a 429/529 cools a deployment for the upstream's retry-after, or
# for ``cooldown`` (default 5 s) without one; other failures that speak for its health cool it
# after ``allowed_fails`` (default 3) within ``window`` (default 60 s). A cooling deployment is
# skipped only while another route exists; the last route is always tried. Nothing below pins
# those defaults: they are asserted.


def test_429_cools_a_deployment_for_its_retry_after(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": "20"}))  # duo-a (weight 3) first
    assert drv.messages(msg("duo")).status == 200
    assert (len(fakes.anth.requests), len(fakes.anth2.requests)) == (1, 1)  # retried on duo-b
    slept = sum(drv.time.sleeps)  # the jittered backoff before that retry (fake time)
    assert 0 <= slept <= 1.0
    st = drv.states()
    assert st["duo-a"]["state"] == "cooldown" and st["duo-a"]["last_error"].startswith("429")
    assert st["duo-a"]["cooldown_remaining_s"] == round(20 - slept, 3)
    assert st["duo-b"]["state"] == "ok"
    for _ in range(5):
        assert drv.messages(msg("duo")).status == 200
    assert len(fakes.anth.requests) == 1  # skipped while cooling: duo-b can take every request
    drv.time.advance(20 - slept)
    assert drv.states()["duo-a"]["state"] == "ok"
    for _ in range(10):
        assert drv.messages(msg("duo")).status == 200
    assert len(fakes.anth.requests) > 1  # back in rotation


@pytest.mark.parametrize("status", [429, 529])
def test_429_or_529_without_retry_after_cools_for_the_default_5s(
    drv: Driver, fakes: Fakes, status: int
) -> None:
    fakes.anth.enqueue(error_reply(status))
    assert drv.messages(msg("duo")).status == 200
    slept = sum(drv.time.sleeps)
    st = drv.states()["duo-a"]
    assert st["state"] == "cooldown" and st["cooldown_remaining_s"] == round(5.0 - slept, 3)
    assert st["recent_failures"] == 0  # an instant cooldown, not one of allowed_fails


def test_the_only_deployment_is_tried_while_cooling(
    make_driver: Callable[..., Driver], fakes: Fakes
) -> None:
    """One deployment, no fallback: a cooldown must never answer in the upstream's place."""
    drv = make_driver(NO_RETRY)
    fakes.anth.enqueue(error_reply(429, "slow down", headers={"retry-after": "45"}))
    r = drv.messages(msg("claude"))
    assert r.status == 429 and r.error_type == "rate_limit_error" and r.error_message == "slow down"
    assert r.headers["retry-after"] == "45"
    assert drv.states()["claude/anth"]["cooldown_remaining_s"] == 45.0
    # cooling, but the last route: the next request reaches the (recovered) upstream at once
    r = drv.messages(msg("claude"))
    assert r.status == 200 and r.text() == fakes.anth.default_text
    assert len(fakes.anth.requests) == 2
    assert drv.states()["claude/anth"]["state"] == "ok"  # its answer ended the cooldown
    o = drv.chat(chat("claude"))
    assert o.status == 200 and len(fakes.anth.requests) == 3


def test_while_cooling_the_client_gets_the_upstreams_own_answer(
    make_driver: Callable[..., Driver], fakes: Fakes
) -> None:
    drv = make_driver(NO_RETRY)
    fakes.anth.enqueue(
        error_reply(429, "first", headers={"retry-after": "45"}),
        error_reply(429, "second", headers={"retry-after": "12"}),
        ErrorReply(529, "overloaded_error", "busy now", {"retry-after-ms": "2500"}),
    )
    r1 = drv.messages(msg("claude"))
    assert (r1.status, r1.error_message, r1.headers["retry-after"]) == (429, "first", "45")
    o2 = drv.chat(chat("claude"))  # the OpenAI dialect, same upstream answer
    assert (o2.status, o2.error_message, o2.headers["retry-after"]) == (429, "second", "12")
    assert o2.error_type == "rate_limit_error"
    r3 = drv.messages(msg("claude"))
    assert (r3.status, r3.error_type, r3.error_message) == (529, "overloaded_error", "busy now")
    assert r3.headers["retry-after"] == "3"  # 2.5 s, in whole seconds, rounded up
    if drv.kind == "library":
        assert isinstance(r3.exc, OverloadedError) and r3.exc.retry_after == 2.5
    assert len(fakes.anth.requests) == 3 and fakes.anth.pending == 0
    assert drv.states()["claude/anth"]["cooldown_remaining_s"] == 2.5  # the latest retry-after
    assert drv.time.sleeps == []


def test_all_deployments_cooling_tries_the_one_that_recovers_first(
    make_driver: Callable[..., Driver], fakes: Fakes
) -> None:
    drv = make_driver(NO_RETRY)
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": "30"}))
    fakes.anth2.enqueue(error_reply(429, headers={"retry-after": "10"}))
    assert drv.messages(msg("duo")).status == 429  # duo-a
    assert drv.messages(msg("duo")).status == 429  # duo-b (duo-a is cooling)
    st = drv.states()
    assert (st["duo-a"]["cooldown_remaining_s"], st["duo-b"]["cooldown_remaining_s"]) == (30, 10)
    r = drv.messages(msg("duo"))
    assert r.status == 200
    assert (len(fakes.anth.requests), len(fakes.anth2.requests)) == (1, 2)
    if drv.kind == "server":
        assert r.headers["x-dragoman-deployment"] == "duo-b"


def test_n_failures_in_window_cool_down(make_driver: Callable[..., Driver], fakes: Fakes) -> None:
    drv = make_driver(NO_RETRY)
    fakes.anth.default_reply = error_reply(500)
    for _ in range(2):
        assert drv.messages(msg("claude")).status == 500
    assert drv.states()["claude/anth"]["recent_failures"] == 2
    drv.time.advance(61)  # those two fall out of the (default 60 s) window
    assert drv.messages(msg("claude")).status == 500
    st = drv.states()["claude/anth"]
    assert st["state"] == "ok" and st["recent_failures"] == 1
    assert drv.messages(msg("claude")).status == 500
    assert drv.messages(msg("claude")).status == 500  # the default allowed_fails: 3 within 60 s
    st = drv.states()["claude/anth"]
    assert st["state"] == "cooldown" and st["cooldown_remaining_s"] == 5.0
    n = len(fakes.anth.requests)
    # cooling, but the only route: tried, and the upstream's own 500 reaches the caller
    r = drv.messages(msg("claude"))
    assert r.status == 500 and r.error_type == "api_error" and "cooling" not in r.error_message
    o = drv.chat(chat("claude"))
    assert o.status == 500 and "cooling" not in o.error_message
    assert len(fakes.anth.requests) == n + 2
    fakes.anth.default_reply = None
    assert drv.messages(msg("claude")).status == 200
    assert drv.states()["claude/anth"]["state"] == "ok"


@pytest.mark.parametrize(
    ("status", "counted"),
    [(400, 0), (404, 0), (409, 0), (413, 0), (422, 0), (401, 1), (403, 1), (500, 1), (503, 1)],
)
def test_only_failures_that_speak_for_the_deployment_count(
    make_driver: Callable[..., Driver], fakes: Fakes, status: int, counted: int
) -> None:
    """The client's own 4xx say nothing about the deployment (audit #33); 401/403 say its
    provider credentials are wrong, 5xx that it is unwell: those count towards allowed_fails."""
    drv = make_driver(NO_RETRY)
    fakes.anth.enqueue(error_reply(status, "nope"))
    # the provider's credentials refused: a bad gateway for the client (docs/upstream.md)
    assert drv.messages(msg("claude")).status == (502 if status in (401, 403) else status)
    st = drv.states()["claude/anth"]
    assert st["recent_failures"] == counted and st["state"] == "ok"
    assert (st["last_error"] or "").startswith(str(status)) == bool(counted)


def test_one_connection_error_counts_but_does_not_cool(
    make_driver: Callable[..., Driver], fakes: Fakes
) -> None:
    drv = make_driver(NO_RETRY)
    fakes.anth.enqueue(*[Reply("x", cut_after=0, cut_mode="abort")] * 3)
    r = drv.messages(msg("claude", stream=True))
    assert r.status == 529 and r.error_type == "overloaded_error"
    st = drv.states()["claude/anth"]
    assert st["state"] == "ok" and st["recent_failures"] == 1
    assert st["last_error"].startswith("connection")
    for _ in range(2):
        drv.messages(msg("claude", stream=True))
    assert drv.states()["claude/anth"]["state"] == "cooldown"  # the third within the window


def test_a_success_ends_a_cooldown(drv: Driver, fakes: Fakes) -> None:
    # the request that saw the 429 honours its retry-after, retries, and the answer ends it
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": "2"}))
    assert drv.messages(msg("claude")).status == 200
    assert drv.time.sleeps == [2.0]
    st = drv.states()["claude/anth"]
    assert st["state"] == "ok" and st["cooldown_remaining_s"] == 0


# -- retry-after values that are not sane (audit #14) ---------------------------------------------

_YEARS_AHEAD = "Fri, 31 Dec 9999 23:59:59 GMT"


@pytest.mark.parametrize(
    ("headers", "header", "cooldown"),
    [
        ({"retry-after": "nan"}, None, 5.0),  # unreadable: as if absent (default cooldown)
        ({"retry-after": "soon"}, None, 5.0),
        ({"retry-after": "inf"}, "300", 300.0),  # the cap (routing.cooldown.max_retry_after)
        ({"retry-after": "1e300"}, "300", 300.0),
        ({"retry-after": "9" * 400}, "300", 300.0),
        ({"retry-after": _YEARS_AHEAD}, "300", 300.0),
        ({"retry-after-ms": "1e309"}, "300", 300.0),
        ({"retry-after": "-5"}, "0", 0.0),  # in the past: now
        ({"retry-after-ms": "nan", "retry-after": "8"}, "8", 8.0),
    ],
)
def test_absurd_retry_after_is_clamped(
    make_driver: Callable[..., Driver],
    fakes: Fakes,
    headers: dict[str, str],
    header: str | None,
    cooldown: float,
) -> None:
    drv = make_driver(NO_RETRY)
    fakes.anth.enqueue(error_reply(429, "slow", headers=headers))
    r = drv.messages(msg("claude"))
    assert r.status == 429 and r.error_type == "rate_limit_error"  # never a 500
    assert r.headers.get("retry-after") == header
    if drv.kind == "library":
        assert r.exc is not None
        assert r.exc.retry_after == (None if header is None else cooldown)
    st = drv.states()["claude/anth"]
    assert st["cooldown_remaining_s"] == cooldown


def test_the_retry_after_cap_is_configurable(
    make_driver: Callable[..., Driver], fakes: Fakes
) -> None:
    drv = make_driver({**NO_RETRY, "cooldown": {"max_retry_after": 50}})
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": "1e300"}))
    fakes.vllm.enqueue(OpenAIErrorReply(429, "slow", headers={"retry-after": "120"}))
    r = drv.messages(msg("claude"))
    assert r.status == 429 and r.headers["retry-after"] == "50"
    o = drv.chat(chat("coder"))
    assert o.status == 429 and o.headers["retry-after"] == "50"
    st = drv.states()
    assert st["claude/anth"]["cooldown_remaining_s"] == st["coder/vllm"]["cooldown_remaining_s"]
    assert st["coder/vllm"]["cooldown_remaining_s"] == 50.0


def test_a_date_retry_after_is_read_against_the_wall_clock(
    make_driver: Callable[..., Driver], fakes: Fakes
) -> None:
    drv = make_driver(NO_RETRY)
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": when}))
    r = drv.messages(msg("claude"))
    assert r.status == 429 and 28 <= int(r.headers["retry-after"]) <= 30
    assert 27 < drv.states()["claude/anth"]["cooldown_remaining_s"] <= 30


# -- 4. fallbacks --------------------------------------------------------------------------------


def test_fallback_on_any_failure_crosses_kinds(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.default_reply = error_reply(500, "primary is down")
    fakes.vllm.enqueue(ChatReply("from the fallback"))
    r = drv.messages(msg("primary"))
    assert r.status == 200 and r.body["type"] == "message"
    assert r.text() == "from the fallback"
    assert r.body["model"] == "primary"  # the caller's name, not the fallback's
    # 1 + 2 retries on primary: the third failure (allowed_fails) cools its only deployment,
    # and a cooling model gives way to its fallback at once instead of a 4th try
    assert len(fakes.anth.requests) == 3
    assert len(drv.time.sleeps) == 2
    assert fakes.vllm.last_request.body["model"] == "qwen3-coder"
    assert (r.model, r.deployment, r.attempts) == ("coder", "coder/vllm", 4)


def test_fallback_streams_translated(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.default_reply = error_reply(529)
    fakes.vllm.enqueue(ChatReply("streamed fallback"))
    r = drv.messages(msg("primary", stream=True))
    assert r.status == 200 and r.stream_error is None
    assert r.text() == "streamed fallback"
    assert r.events is not None and r.events[-1][0] == "message_stop"


def test_openai_caller_falls_back_too(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.default_reply = error_reply(500)
    r = drv.chat(chat("primary"))
    assert r.status == 200 and r.body["object"] == "chat.completion"
    assert fakes.vllm.requests


def test_context_overflow_uses_context_window_fallbacks(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(
        ErrorReply(
            400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"
        )
    )
    r = drv.messages(msg("primary"))
    assert r.status == 200
    assert len(fakes.anth.requests) == 1 and drv.time.sleeps == []  # a 400 is not retried
    assert fakes.anth2.last_request.body["model"] == "claude-big"
    assert not fakes.vllm.requests  # not the generic fallback
    assert r.model == "big"


def test_refusal_uses_content_policy_fallbacks(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("I can't help with that.", stop_reason="refusal"))
    fakes.vllm.enqueue(ChatReply("safe answer"))
    r = drv.messages(msg("primary"))
    assert r.status == 200 and r.text() == "safe answer"
    assert fakes.vllm.last_request.body["model"] == "safe-model"
    assert r.model == "safe"


def test_refusal_without_policy_fallback_is_returned(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("No.", stop_reason="refusal"))
    r = drv.messages(msg("claude"))
    assert r.status == 200 and r.body["stop_reason"] == "refusal"


def test_cooling_primary_gives_way_to_its_fallback(
    make_driver: Callable[..., Driver], fakes: Fakes
) -> None:
    drv = make_driver(NO_RETRY)
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": "20"}))
    assert drv.messages(msg("primary")).status == 200  # 429 -> fallback coder
    assert (len(fakes.anth.requests), len(fakes.vllm.requests)) == (1, 1)
    r = drv.messages(msg("primary"))  # primary is cooling and coder can take it: skipped
    assert r.status == 200 and len(fakes.anth.requests) == 1
    assert len(fakes.vllm.requests) == 2
    if drv.kind == "server":
        assert r.headers["x-dragoman-model"] == "coder"
        assert r.headers["x-dragoman-attempts"] == "1"
    drv.time.advance(20)
    r = drv.messages(msg("primary"))  # cooled down: primary again
    assert r.status == 200 and len(fakes.anth.requests) == 2 and len(fakes.vllm.requests) == 2


def test_cooling_primary_gives_way_at_once_after_its_failure(drv: Driver, fakes: Fakes) -> None:
    # with retries on: a 429 with a retry-after cools primary's only deployment; rather than
    # waiting that out, the request moves to the fallback straight away
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": "2"}))
    r = drv.messages(msg("primary"))
    assert r.status == 200 and drv.time.sleeps == []
    assert (len(fakes.anth.requests), len(fakes.vllm.requests)) == (1, 1)


def test_the_last_route_is_tried_even_when_cooling(
    make_driver: Callable[..., Driver], fakes: Fakes
) -> None:
    """primary -> [coder]: both cooling. primary gives way (coder can take the request); coder
    is the last route, so it is tried, cooling or not, and its own answer comes back."""
    drv = make_driver(NO_RETRY)
    fakes.anth.enqueue(error_reply(429, headers={"retry-after": "30"}))
    fakes.vllm.enqueue(
        OpenAIErrorReply(429, "fallback busy", headers={"retry-after": "20"}),
        OpenAIErrorReply(429, "still busy", headers={"retry-after": "9"}),
    )
    r = drv.messages(msg("primary"))
    assert r.status == 429 and r.error_message == "fallback busy"
    assert r.headers["retry-after"] == "20"
    st = drv.states()
    assert st["primary/anth"]["state"] == st["coder/vllm"]["state"] == "cooldown"
    r = drv.messages(msg("primary"))
    assert r.status == 429 and r.error_message == "still busy" and r.headers["retry-after"] == "9"
    r = drv.messages(msg("primary"))
    assert r.status == 200 and r.body["model"] == "primary"
    assert (len(fakes.anth.requests), len(fakes.vllm.requests)) == (1, 3)


def test_no_fallback_error_when_everything_fails(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.default_reply = error_reply(500)
    fakes.vllm.default_reply = OpenAIErrorReply(500)
    r = drv.messages(msg("primary"))
    assert r.status == 500
    # primary: 3 tries (then cooling, it gives way); coder, the last route: 1 + 3 retries
    assert (len(fakes.anth.requests), len(fakes.vllm.requests)) == (3, 4)
    assert (r.model, r.deployment, r.attempts) == ("coder", "coder/vllm", 7)


def test_fallback_never_forwards_images_to_a_text_only_model(drv: Driver, fakes: Fakes) -> None:
    # pics -> [blind (vision: false, no vision_model), coder]: blind is skipped
    fakes.anth.default_reply = error_reply(500)
    body = msg("pics")
    body["messages"] = [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "text", "text": "what is this?"},
            ],
        }
    ]
    r = drv.messages(body)
    assert r.status == 200
    assert [q.body["model"] for q in fakes.vllm.requests] == ["qwen3-coder"]
    assert r.model == "coder"
