"""Issue items 5 (timeouts), 6 (vision routing) and 7 (scenario rules), server and library.

The ``tight`` providers have connect 1 s, first byte 0.4 s, idle 0.4 s and total 1.5 s.
"""

from __future__ import annotations

from typing import Any

from tests.fakes import ChatReply, Reply
from tests.routing.harness import PNG, Driver, Fakes, chat, msg

from dragoman.config import load_config_dict
from dragoman.providers import make_provider

# -- 5. timeouts ---------------------------------------------------------------------------------


def test_timeouts_are_per_provider(fakes: Fakes) -> None:
    from tests.routing.harness import base_config

    cfg = load_config_dict(base_config(fakes))
    t = make_provider("tight", cfg.providers["tight"])._timeout
    assert (t.sock_connect, t.connect, t.sock_read, t.total) == (1.0, 1.0, 0.4, 1.5)
    d = make_provider("anth", cfg.providers["anth"])._timeout
    assert (d.sock_read, d.total) == (600.0, 3600.0)


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
    assert r.status == 504 and r.error_type == "timeout"  # OpenAI's type: a chat caller
    assert len(fakes.anth.requests) == 4


def test_idle_gap_before_the_first_event_is_retried(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("x", first_event_delay=1.0))  # headers at once, then silence
    r = drv.messages(msg("timed", stream=True))
    assert r.status == 200 and r.stream_error is None
    assert len(fakes.anth.requests) == 2


def test_idle_gap_mid_stream_is_an_error_event(drv: Driver, fakes: Fakes) -> None:
    fakes.anth.enqueue(Reply("some words here", pauses={4: 1.0}))
    r = drv.messages(msg("timed", stream=True))
    assert r.status == 200 and r.stream_error == "timeout_error"
    assert len(fakes.anth.requests) == 1 and drv.time.sleeps == []


def test_idle_gap_mid_stream_openai_provider(drv: Driver, fakes: Fakes) -> None:
    fakes.vllm.enqueue(ChatReply("some words here", pauses={3: 1.0}))
    r = drv.chat(chat("timed-o", stream=True))
    assert r.status == 200 and r.stream_error is not None
    assert len(fakes.vllm.requests) == 1


def test_total_timeout_cuts_a_trickling_stream(drv: Driver, fakes: Fakes) -> None:
    # every gap (0.1 s) is under the idle limit, but the whole stream takes ~4 s > total 1.5 s
    fakes.anth.enqueue(Reply("x" * 40, text_chunk=1, event_delay=0.1))
    r = drv.messages(msg("timed", stream=True))
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
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
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
