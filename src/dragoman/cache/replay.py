"""A cached answer replayed: as a body, or as the stream its client's dialect would have sent.

Each replay gets a fresh id (and ``created``): two answers are never one response. The stream
carries the whole text of a block in one delta; the events are those of the real APIs, in their
order, so the SDKs' accumulators rebuild exactly the stored body (tests/cache/test_replay.py).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import orjson

from ..protocols.anthropic import new_message_id
from ..protocols.openai import new_completion_id
from ..protocols.sse import OPENAI_DONE, anthropic_frame, openai_frame


def fresh_body(dialect: str, body: dict[str, Any]) -> dict[str, Any]:
    """The stored body with a new id (and, for OpenAI, ``created`` now)."""
    out = dict(body)
    if dialect == "anthropic":
        out["id"] = new_message_id()
    else:
        out["id"] = new_completion_id()
        out["created"] = int(time.time())
    return out


# -- Anthropic ------------------------------------------------------------------------------


def _start_block(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        if block.get("citations"):
            start["citations"] = []
        return start
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
        return {**block, "input": {}}
    return block  # redacted_thinking, *_tool_result...: whole at the start


def _deltas(block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    kind = block.get("type")
    if kind == "text":
        for c in block.get("citations") or ():
            yield {"type": "citations_delta", "citation": c}
        if block.get("text"):
            yield {"type": "text_delta", "text": block["text"]}
    elif kind == "thinking":
        if block.get("thinking"):
            yield {"type": "thinking_delta", "thinking": block["thinking"]}
        if block.get("signature"):
            yield {"type": "signature_delta", "signature": block["signature"]}
    elif kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
        yield {
            "type": "input_json_delta",
            "partial_json": orjson.dumps(block.get("input") or {}).decode(),
        }


def anthropic_stream(body: dict[str, Any]) -> Iterator[bytes]:
    """The ``message_start`` ... ``message_stop`` events of a complete Messages body."""
    usage = dict(body.get("usage") or {})
    start_usage = {**usage, "output_tokens": min(int(usage.get("output_tokens") or 0), 1)}
    message = {k: v for k, v in body.items() if k not in ("content", "usage")}
    message.update(
        content=[], stop_reason=None, stop_sequence=None, usage=start_usage, type="message"
    )
    yield anthropic_frame("message_start", {"type": "message_start", "message": message})
    for i, block in enumerate(body.get("content") or ()):
        yield anthropic_frame(
            "content_block_start",
            {"type": "content_block_start", "index": i, "content_block": _start_block(block)},
        )
        for delta in _deltas(block):
            yield anthropic_frame(
                "content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}
            )
        yield anthropic_frame("content_block_stop", {"type": "content_block_stop", "index": i})
    yield anthropic_frame(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": body.get("stop_reason"),
                "stop_sequence": body.get("stop_sequence"),
            },
            "usage": usage,
        },
    )
    yield anthropic_frame("message_stop", {"type": "message_stop"})


# -- OpenAI ---------------------------------------------------------------------------------

_MESSAGE_DELTA_FIELDS = ("content", "refusal", "reasoning_content", "reasoning")


def openai_stream(body: dict[str, Any], include_usage: bool = False) -> Iterator[bytes]:
    """The ``chat.completion.chunk`` events of a complete chat completion, then ``[DONE]``;
    the usage chunk (``choices: []``) only when the client asked for it
    (``stream_options.include_usage``), as the API does."""
    env: dict[str, Any] = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
    }
    for k in ("system_fingerprint", "service_tier"):
        if k in body:
            env[k] = body[k]
    if include_usage:
        env["usage"] = None

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return openai_frame({**env, "choices": choices, **extra})

    for choice in body.get("choices") or ():
        idx = choice.get("index", 0)
        msg = choice.get("message") or {}
        yield chunk(
            [
                {
                    "index": idx,
                    "delta": {"role": msg.get("role", "assistant"), "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        )
        delta = {k: msg[k] for k in _MESSAGE_DELTA_FIELDS if msg.get(k)}
        if delta or choice.get("logprobs"):
            yield chunk(
                [
                    {
                        "index": idx,
                        "delta": delta,
                        "logprobs": choice.get("logprobs"),
                        "finish_reason": None,
                    }
                ]
            )
        calls = msg.get("tool_calls") or ()
        if calls:
            yield chunk(
                [
                    {
                        "index": idx,
                        "delta": {
                            "tool_calls": [
                                {"index": n, **copy.deepcopy(call)} for n, call in enumerate(calls)
                            ]
                        },
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]
            )
        yield chunk(
            [
                {
                    "index": idx,
                    "delta": {},
                    "logprobs": None,
                    "finish_reason": choice.get("finish_reason"),
                }
            ]
        )
    if include_usage:
        yield chunk([], usage=body.get("usage"))
    yield OPENAI_DONE


def stream(dialect: str, body: dict[str, Any], include_usage: bool = False) -> Iterator[bytes]:
    """The SSE bytes replaying ``body`` to a client of ``dialect``."""
    if dialect == "anthropic":
        return anthropic_stream(body)
    return openai_stream(body, include_usage)
