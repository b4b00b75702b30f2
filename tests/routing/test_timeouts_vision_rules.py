"""Issue items 5 (timeouts), 6 (vision routing) and 7 (scenario rules), server and library.

The ``tight`` providers have connect 1 s, first byte 0.5 s, idle 1.5 s (distinct, so each test
shows which knob fired) and total 10 s; ``brief`` is ``tight`` with total 1.5 s. ``hush`` talks
to a port that accepts and never answers, ``faraway`` to one whose connects hang (both owned by
the module, connect and first byte 0.5 s).
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes import ChatReply, Reply
from tests.routing.harness import PNG, Driver, Fakes, base_config, chat, msg

from dragoman.config import Timeouts, load_config_dict

NO_RETRY = {"retries": {"max_retries": 0}}

# -- 5. timeouts ---------------------------------------------------------------------------------


def test_timeouts_are_per_provider_with_safe_defaults(fakes: Fakes) -> None:
    cfg = load_config_dict(base_config(fakes))
    assert cfg.providers["tight"].timeouts == Timeouts(
        connect=1.0, first_byte=0.5, idle=1.5, total=10.0
    )
    assert cfg.providers["anth"].timeouts == Timeouts()
    assert Timeouts() == Timeouts(connect=10.0, first_byte=600.0, idle=300.0, total=3600.0)


def test_slow_first_byte_times_out_and_is_retried(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("late", first_byte_delay=1.0))
    r = drv.messages(msg("timed"))
    assert r.status == 200 and r.text() == fakes.anth.default_text
    assert len(fakes.anth.requests) == 2 and len(drv.time.sleeps) == 1


def test_slow_first_byte_of_a_stream_is_retried(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("late", first_byte_delay=1.0))
    r = drv.messages(msg("timed", stream=True))
    assert r.status == 200 and r.stream_error is None
    assert len(fakes.anth.requests) == 2


def test_first_byte_timeout_every_time_is_504(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.default_reply = Reply("late", first_byte_delay=0.8)
    r = drv.chat(chat("timed"))
    assert r.status == 504 and r.error_type == "timeout"
    assert "did not answer within 0.5s" in r.error_message
    assert len(fakes.anth.requests) == 4  # 1 + the default 3 retries


def test_upstream_that_accepts_and_never_answers(make_driver: Any, fakes: Fakes) -> None:
    drv = make_driver(NO_RETRY)
    t0 = time.monotonic()
    r = drv.messages(msg("hush"))
    assert r.status == 504 and r.error_type == "timeout_error"
    assert "did not answer within 0.5s" in r.error_message
    assert time.monotonic() - t0 < 5
    st = drv.states()["hush/silent"]
    assert st["recent_failures"] == 1 and st["last_error"].startswith("connection")


def test_connect_timeout(make_driver: Any, fakes: Fakes) -> None:
    drv = make_driver(NO_RETRY)
    r = drv.chat(chat("faraway"))
    assert r.status == 504 and r.error_type == "timeout"
    assert "could not connect within 0.5s" in r.error_message
    assert drv.states()["faraway/unreachable"]["recent_failures"] == 1


def test_refused_connection_is_a_529_and_counts(make_driver: Any, fakes: Fakes) -> None:
    drv = make_driver(NO_RETRY)
    r = drv.messages(msg("halfdead"))  # hd-dead (refused) weighs 1000: tried first, no retry
    assert r.status == 529 and r.error_type == "overloaded_error"
    assert "unreachable" in r.error_message
    assert drv.states()["hd-dead"]["recent_failures"] == 1
    assert not fakes.anth.requests


def test_idle_gap_before_the_first_event_is_retried(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("x", first_event_delay=2.0))  # headers at once, then silence
    r = drv.messages(msg("timed", stream=True))
    assert r.status == 200 and r.stream_error is None
    assert len(fakes.anth.requests) == 2


def test_gap_longer_than_first_byte_but_within_idle_passes(drv: Driver, fakes: Fakes) -> None:
    # 1.0 s of silence mid-stream: more than first_byte (0.5 s), less than idle (1.5 s)
    fakes.anth.enqueue(Reply("some words here", pauses={4: 1.0}))
    r = drv.messages(msg("timed", stream=True))
    assert r.status == 200 and r.stream_error is None
    assert r.text() == "some words here"
    fakes.vllm.enqueue(ChatReply("some words here", pauses={3: 1.0}))
    o = drv.chat(chat("timed-o", stream=True))
    assert o.status == 200 and o.stream_error is None and o.text() == "some words here"


def test_idle_gap_mid_stream_is_an_error_event(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("some words here", pauses={4: 2.0}))
    r = drv.messages(msg("timed", stream=True))
    assert r.status == 200 and r.stream_error == "timeout_error"
    assert len(fakes.anth.requests) == 1 and drv.time.sleeps == []


def test_idle_gap_mid_stream_openai_provider(drv: Driver, fakes: Fakes) -> None:
    fakes.vllm.enqueue(ChatReply("some words here", pauses={3: 2.0}))
    r = drv.chat(chat("timed-o", stream=True))
    assert r.status == 200 and r.stream_error is not None
    assert len(fakes.vllm.requests) == 1


def test_total_timeout_cuts_a_trickling_stream(drv: Driver, fakes: Fakes) -> None:
    # every gap (0.1 s) is under the idle limit, but the whole stream takes ~4 s > total 1.5 s
    fakes.anth.enqueue(Reply("x" * 40, text_chunk=1, event_delay=0.1))
    r = drv.messages(msg("trickle", stream=True))
    assert r.status == 200 and r.stream_error is not None
    assert len(r.text()) < 40


# -- 6. vision routing ---------------------------------------------------------------------------


def _image_block() -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


def test_image_goes_to_the_vision_model(drv: Driver, fakes: Fakes) -> None:
    body = msg("textonly")
    body["messages"] = [
        {"role": "user", "content": [_image_block(), {"type": "text", "text": "?"}]}
    ]
    r = drv.messages(body)
    assert r.status == 200
    assert not fakes.vllm.requests  # never forwarded to the text-only model
    assert fakes.anth.last_request.body["model"] == "claude-sonnet-4-5"
    assert (r.model, r.deployment) == ("claude", "claude/anth")


def test_image_inside_a_tool_result_counts(drv: Driver, fakes: Fakes) -> None:
    body = msg("textonly")
    body["tools"] = [{"name": "shot", "input_schema": {"type": "object"}}]
    body["messages"] = [
        {"role": "user", "content": "take a screenshot"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [_image_block()]}
            ],
        },
    ]
    r = drv.messages(body)
    assert r.status == 200 and not fakes.vllm.requests
    assert fakes.anth.last_request.body["model"] == "claude-sonnet-4-5"


def test_openai_image_url_goes_to_the_vision_model(drv: Driver, fakes: Fakes) -> None:
    body = chat("textonly")
    body["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        }
    ]
    r = drv.chat(body)
    assert r.status == 200 and r.body["object"] == "chat.completion"
    assert not fakes.vllm.requests
    sent = fakes.anth.last_request.body["messages"][0]["content"]
    assert any(b["type"] == "image" for b in sent)  # translated O->A


def test_image_to_text_only_model_without_vision_route_is_a_clear_400(
    drv: Driver, fakes: Fakes
) -> None:
    body = msg("blind")
    body["messages"] = [{"role": "user", "content": [_image_block()]}]
    r = drv.messages(body)
    assert r.status == 400 and r.error_type == "invalid_request_error"
    assert "'blind'" in r.error_message and "cannot take images" in r.error_message
    o = drv.chat(
        {
            "model": "blind",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/y.png"}}
                    ],
                }
            ],
        }
    )
    assert o.status == 400 and "cannot take images" in o.error_message
    assert not fakes.vllm.requests


def test_text_only_model_serves_text(drv: Driver, fakes: Fakes) -> None:
    assert drv.messages(msg("textonly")).status == 200
    assert fakes.vllm.last_request.body["model"] == "text-model"


# -- 7. scenario rules ---------------------------------------------------------------------------


def test_background_rule_sends_haiku_names_to_the_small_model(drv: Driver, fakes: Fakes) -> None:
    r = drv.messages(msg("claude-3-5-haiku-20241022"))
    assert r.status == 200
    assert fakes.vllm.last_request.body["model"] == "qwen3-coder" and not fakes.anth.requests
    assert (r.model, r.deployment) == ("coder", "coder/vllm")


def test_thinking_rule(drv: Driver, fakes: Fakes) -> None:
    body = msg("coder", thinking={"type": "enabled", "budget_tokens": 1024})
    body["max_tokens"] = 2048
    r = drv.messages(body)
    assert r.status == 200 and not fakes.vllm.requests
    assert fakes.anth.last_request.body["model"] == "claude-sonnet-4-5"


def test_long_context_rule(drv: Driver, fakes: Fakes) -> None:
    r = drv.messages(msg("coder", "word " * 30000))
    assert r.status == 200 and not fakes.vllm.requests
    assert fakes.anth2.last_request.body["model"] == "claude-big"
    short = drv.messages(msg("coder", "word " * 10))
    assert short.status == 200 and fakes.vllm.requests


def test_rules_apply_to_openai_callers(drv: Driver, fakes: Fakes) -> None:
    assert drv.chat(chat("gpt-haiku-mini")).status == 200
    assert fakes.vllm.last_request.body["model"] == "qwen3-coder"
    assert drv.chat(chat("coder", reasoning_effort="high")).status == 200
    assert fakes.anth.last_request.body["model"] == "claude-sonnet-4-5"
