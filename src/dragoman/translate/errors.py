"""Upstream error -> typed ``DragomanError`` (docs/protocols.md §6.6, §7.11).

The server renders the result in the caller's dialect; what matters here is the Anthropic
``type``/status and the *wording*: Claude Code recognises context overflows by Anthropic's
messages (``prompt is too long: N tokens > M maximum``), so OpenAI-style overflow errors are
rewritten into them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import STATUS_BY_TYPE, DragomanError, error_for, type_for_status
from ..retry_after import parse_retry_after
from ..scrub import scrub

# --- context-overflow wordings (vLLM, OpenAI, DeepSeek, llama.cpp)
_MAX_CTX = re.compile(r"maximum (?:context|model) length (?:is|of) (\d+)", re.I)
_REQ_HAS = re.compile(r"(?:your request has|request has) (\d+) input tokens", re.I)
_TOO_LARGE = re.compile(r"'?max_tokens'? (?:or 'max_completion_tokens' )?is too large: (\d+)", re.I)
_REQUESTED = re.compile(
    r"you requested (\d+) tokens \((\d+) in the messages, (\d+) in the completion\)", re.I
)
_RESULTED = re.compile(r"(?:messages resulted in|prompt contains at least) (\d+) tokens", re.I)
_DECODER = re.compile(
    r"prompt \(length (\d+)\) is longer than the maximum model length of (\d+)", re.I
)
_INPUT_TOO_LONG = re.compile(
    r"input tokens? \((\d+)\) (?:exceeds?|is larger than).*?\((\d+)\)", re.I
)
_GENERIC_OVERFLOW = re.compile(
    r"context length|context_length|context window|exceeds? the available context|"
    r"maximum context|too many tokens|prompt is too long",
    re.I,
)


def _prompt_too_long(n: int, limit: int) -> str:
    return f"prompt is too long: {n} tokens > {limit} maximum"


def _input_plus_max(n: int, max_tokens: int, limit: int) -> str:
    return (
        f"input length and `max_tokens` exceed context limit: {n} + {max_tokens} > {limit}, "
        "decrease input length or `max_tokens` and try again"
    )


def rewrite_context_overflow(message: str, extra: Mapping[str, Any] | None = None) -> str | None:
    """Anthropic wording for an OpenAI-style context-overflow message, or None if it is not one."""
    extra = extra or {}
    # llama.cpp: {"type": "exceed_context_size_error", "n_prompt_tokens": N, "n_ctx": M}
    n_prompt, n_ctx = extra.get("n_prompt_tokens"), extra.get("n_ctx")
    if isinstance(n_prompt, int) and isinstance(n_ctx, int):
        return _prompt_too_long(n_prompt, n_ctx)
    m = _REQUESTED.search(message)
    mc = _MAX_CTX.search(message)
    if m and mc:
        limit, n_in, n_out = int(mc.group(1)), int(m.group(2)), int(m.group(3))
        if n_in >= limit:
            return _prompt_too_long(n_in, limit)
        return _input_plus_max(n_in, n_out, limit)
    mh = _REQ_HAS.search(message)
    if mc and mh:
        limit, n_in = int(mc.group(1)), int(mh.group(1))
        mt = _TOO_LARGE.search(message)
        if n_in >= limit or not mt:
            return _prompt_too_long(n_in, limit)
        return _input_plus_max(n_in, int(mt.group(1)), limit)
    md = _DECODER.search(message)
    if md:
        return _prompt_too_long(int(md.group(1)), int(md.group(2)))
    mr = _RESULTED.search(message)
    if mc and mr:
        return _prompt_too_long(int(mr.group(1)), int(mc.group(1)))
    mi = _INPUT_TOO_LONG.search(message)
    if mi:
        return _prompt_too_long(int(mi.group(1)), int(mi.group(2)))
    if _GENERIC_OVERFLOW.search(message):
        if message.startswith("prompt is too long"):
            return message
        return f"prompt is too long: {message}"
    return None


def _parse_body(body: bytes) -> tuple[dict[str, Any], str]:
    """(error object, fallback text) from an upstream error body of any shape."""
    text = body.decode("utf-8", "replace").strip() if body else ""
    try:
        obj = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return {}, text[:1000]
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):
            return err, text[:1000]
        if isinstance(err, str):
            return {"message": err}, text[:1000]
        detail = obj.get("detail")
        if isinstance(detail, str):
            return {"message": detail}, text[:1000]
        if isinstance(detail, list) and detail:
            return {"message": orjson.dumps(detail).decode()}, text[:1000]
        if isinstance(obj.get("message"), str):
            return obj, text[:1000]
    return {}, text[:1000]


_OPENAI_TYPE_MAP = {
    "invalid_request_error": "invalid_request_error",
    "badrequesterror": "invalid_request_error",
    "bad_request": "invalid_request_error",
    "authentication_error": "authentication_error",
    "authenticationerror": "authentication_error",
    "permission_error": "permission_error",
    "permissiondeniederror": "permission_error",
    "not_found_error": "not_found_error",
    "notfounderror": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "ratelimiterror": "rate_limit_error",
    "insufficient_quota": "billing_error",
    "server_error": "api_error",
    "internal_error": "api_error",
    "internalservererror": "api_error",
    "api_error": "api_error",
    "overloaded_error": "overloaded_error",
    "overloaded": "overloaded_error",
    "serviceunavailableerror": "overloaded_error",
    "timeout": "timeout_error",
    "timeout_error": "timeout_error",
    "exceed_context_size_error": "invalid_request_error",
}


_SPECIFIC_TYPES = frozenset(
    {
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "overloaded_error",
        "timeout_error",
    }
)


def _status_to_anthropic(status: int) -> tuple[int, str]:
    if status in (400, 422):
        return 400, "invalid_request_error"
    if status in (502, 503, 529):
        return 529, "overloaded_error"
    if status in (504, 408):
        return 504, "timeout_error"
    t = type_for_status(status)
    return STATUS_BY_TYPE.get(t, 500 if status >= 500 else 400), t


def openai_upstream_error(status: int, body: bytes, headers: Mapping[str, str]) -> DragomanError:
    """An OpenAI-compatible upstream's HTTP error -> typed error (Anthropic type and status)."""
    err, text = _parse_body(body)
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = text or f"upstream returned HTTP {status}"
    message = scrub(message)  # anything credential-like (the provider's own key: classify.py)
    otype = err.get("type")
    code = err.get("code")
    a_status, a_type = _status_to_anthropic(status)
    # the error type first, the status second: a specific type names the problem even when a
    # proxy or odd server picks another status (generic types defer to the status)
    specific = _OPENAI_TYPE_MAP.get(otype.lower()) if isinstance(otype, str) else None
    if specific in _SPECIFIC_TYPES and specific != a_type:
        a_type = specific
        a_status = STATUS_BY_TYPE[specific]
    if otype == "insufficient_quota" or code == "insufficient_quota":
        a_status, a_type = 402, "billing_error"
    if status in (400, 413, 422) or code == "context_length_exceeded":
        rewritten = rewrite_context_overflow(message, err)
        if rewritten is not None:
            message = rewritten
            a_status, a_type = 400, "invalid_request_error"
    limited = a_type in ("rate_limit_error", "overloaded_error")
    retry = parse_retry_after(headers) if limited else None
    return error_for(
        a_type,
        message,
        status=a_status,
        code=code if isinstance(code, str) else None,
        param=err.get("param") if isinstance(err.get("param"), str) else None,
        retry_after=retry,
    )


def anthropic_upstream_error(status: int, body: bytes, headers: Mapping[str, str]) -> DragomanError:
    """An Anthropic upstream's HTTP error -> typed error, type and message kept."""
    err, text = _parse_body(body)
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = text or f"upstream returned HTTP {status}"
    message = scrub(message)  # anything credential-like (the provider's own key: classify.py)
    etype = err.get("type")
    if not isinstance(etype, str) or etype not in STATUS_BY_TYPE:
        etype = type_for_status(status)
    return error_for(
        etype,
        message,
        status=status if status >= 400 else None,
        retry_after=parse_retry_after(headers),
    )


def openai_stream_error_to_error(obj: dict[str, Any]) -> DragomanError:
    """A mid-stream ``{"error": {...}}`` chunk -> typed error (vLLM internal_error -> api_error)."""
    err = obj.get("error")
    if isinstance(err, str):
        err = {"message": err}
    if not isinstance(err, dict):
        err = {}
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = "upstream error"
    message = scrub(message)
    otype = err.get("type")
    code = err.get("code")
    a_type: str | None = None
    if isinstance(otype, str):
        a_type = _OPENAI_TYPE_MAP.get(otype.lower())
    if a_type is None and isinstance(code, int) and not isinstance(code, bool):
        a_type = _status_to_anthropic(code)[1]
    if a_type is None:
        a_type = "api_error"
    rewritten = rewrite_context_overflow(message, err)
    if rewritten is not None and a_type == "invalid_request_error":
        message = rewritten
    return error_for(a_type, message)
