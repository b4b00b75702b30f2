"""The Responses API's small wire facts: ids, SSE framing, usage and error shapes.

Everything here follows the API as OpenAI defines it (the ``openai`` SDK's
``types/responses``) and as the Codex CLI reads it (docs/codex.md).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from ...errors import DragomanError
from ...usage import Usage


def new_id(prefix: str) -> str:
    """``resp_``, ``msg_``, ``fc_``, ``ctc_``, ``rs_``, ``lsh_`` + 48 hex digits (OpenAI's
    length), unguessable so ids never collide across instances."""
    return prefix + secrets.token_hex(24)


def frame(payload: dict[str, Any]) -> bytes:
    """``event: <type>`` + ``data: {json}``: the SDKs dispatch on the data's ``type``, Codex
    and other strict readers on the event name; both are sent and always agree."""
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def usage_to_responses(u: Usage, reasoning_tokens: int = 0) -> dict[str, Any]:
    """The ``usage`` object of a response (``ResponseUsage``): input counts every prompt token,
    cached reads and cache writes included, as OpenAI reports it."""
    prompt = u.prompt_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_input_tokens,
            "cache_write_tokens": u.cache_creation_input_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": prompt + u.output_tokens,
    }


def _n(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def usage_from_chat(u: dict[str, Any]) -> Usage:
    """A Chat Completions ``usage`` -> Usage, reading only well-formed counts (an upstream's
    garbage never becomes an exception mid-stream)."""
    d = u.get("prompt_tokens_details")
    d = d if isinstance(d, dict) else {}
    cached, written = _n(d.get("cached_tokens")), _n(d.get("cache_write_tokens"))
    return Usage(
        max(_n(u.get("prompt_tokens")) - cached - written, 0),
        _n(u.get("completion_tokens")),
        written,
        cached,
    )


def usage_from_responses(u: Any) -> Usage:
    """A Responses ``usage`` (a native pass-through's ``response.completed``) -> the books'
    Usage: OpenAI counts cached reads (and cache writes) inside ``input_tokens``."""
    if not isinstance(u, dict):
        return Usage(estimated=True)
    d = u.get("input_tokens_details")
    d = d if isinstance(d, dict) else {}
    cached, written = _n(d.get("cached_tokens")), _n(d.get("cache_write_tokens"))
    return Usage(
        max(_n(u.get("input_tokens")) - cached - written, 0),
        _n(u.get("output_tokens")),
        written,
        cached,
    )


def reasoning_tokens_of(u: Any) -> int:
    """``completion_tokens_details.reasoning_tokens`` of a Chat Completions usage, else 0."""
    if not isinstance(u, dict):
        return 0
    d = u.get("completion_tokens_details")
    v = d.get("reasoning_tokens") if isinstance(d, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


_OVERFLOW = ("context length", "context_length", "prompt is too long", "context window")


def failure(err: DragomanError) -> dict[str, Any]:
    """``response.error`` for a failed response, with the codes Codex acts on: it reports
    ``context_length_exceeded`` and ``insufficient_quota`` and stops, waits the time a
    ``rate_limit_exceeded`` message names, and retries anything else (docs/codex.md)."""
    msg = err.message
    low = msg.lower()
    if err.type == "rate_limit_error":
        code = "rate_limit_exceeded"
        if err.retry_after is not None and "try again in" not in low:
            msg = f"{msg} Please try again in {max(err.retry_after, 0.0):.3g}s."
    elif err.type == "billing_error":
        code = "insufficient_quota"
    elif err.code == "context_length_exceeded" or any(s in low for s in _OVERFLOW):
        code = "context_length_exceeded"
    elif err.type in ("invalid_request_error", "request_too_large"):
        code = "invalid_prompt"
    else:
        code = "server_error"
    return {"code": code, "message": msg}
