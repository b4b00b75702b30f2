"""chat.completion -> Responses ``response`` object (the non-streamed path).

The answer is fed to the stream state machine as one chunk, so a non-streamed response and the
final ``response.completed`` of a streamed one are built by the same code and cannot disagree.
"""

from __future__ import annotations

from typing import Any

from ...usage import Usage
from .context import ResponsesContext
from .stream import ChatToResponsesStream


def _as_chunk(resp: dict[str, Any]) -> dict[str, Any]:
    chunk: dict[str, Any] = {}
    if resp.get("error") is not None and not resp.get("choices"):
        chunk["error"] = resp["error"]
        return chunk
    choices = resp.get("choices")
    ch = next(
        (
            c
            for c in (choices if isinstance(choices, list) else ())
            if isinstance(c, dict) and c.get("index", 0) in (0, None)
        ),
        None,
    )
    if ch is not None:
        msg = ch.get("message")
        delta = dict(msg) if isinstance(msg, dict) else {}
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            delta["tool_calls"] = [
                {**tc, "index": i} for i, tc in enumerate(calls) if isinstance(tc, dict)
            ]
        # a complete answer without a finish_reason finished normally
        chunk["choices"] = [
            {"index": 0, "delta": delta, "finish_reason": ch.get("finish_reason") or "stop"}
        ]
    else:
        chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    if isinstance(resp.get("usage"), dict):
        chunk["usage"] = resp["usage"]
    return chunk


def chat_to_response(resp: dict[str, Any], ctx: ResponsesContext) -> dict[str, Any]:
    """A chat.completion (dict) -> the Responses ``response`` (completed, incomplete on
    ``length``/``content_filter``, failed for an error body)."""
    return chat_to_response_with_usage(resp, ctx)[0]


def chat_to_response_with_usage(
    resp: dict[str, Any], ctx: ResponsesContext
) -> tuple[dict[str, Any], Usage]:
    """:func:`chat_to_response` and the usage the books record."""
    m = ChatToResponsesStream(ctx, emit=False)
    m.feed(_as_chunk(resp))
    m.finish()
    assert m.response is not None
    return m.response, m.usage
