"""Small helpers shared by both translation directions (stop reasons, usage, tool arguments)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ..usage import Usage

# ------------------------------------------------------------------------- tool arguments

_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _close_json(s: str) -> str:
    """Close unterminated strings/arrays/objects of a truncated JSON text (best effort)."""
    stack: list[str] = []
    in_str = False
    esc = False
    for ch in s:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    out = s
    if in_str:
        if esc:
            out = out[:-1]
        out += '"'
    out = out.rstrip()
    if out.endswith(","):
        out = out[:-1]
    elif out.endswith(":"):
        out += "null"
    return out + "".join(reversed(stack))


def _repair_json(s: str) -> Any:
    s = s.strip()
    # code fences some models wrap around arguments
    if s.startswith("```"):
        s = s.strip("`")
        if s.startswith("json"):
            s = s[4:]
        s = s.strip()
    candidates = [s, _TRAILING_COMMA.sub(r"\1", s)]
    start = s.find("{")
    end = s.rfind("}")
    if start >= 0 and end > start:
        candidates.append(s[start : end + 1])
    candidates.append(_close_json(s))
    for c in candidates:
        try:
            return orjson.loads(c)
        except orjson.JSONDecodeError:
            continue
    return None


def parse_tool_arguments(args: Any) -> dict[str, Any]:
    """OpenAI ``function.arguments`` (a JSON string) -> Anthropic ``tool_use.input`` (an object).

    ``""``/null -> ``{}``; JSON object -> it; other JSON -> ``{"value": v}``; invalid JSON -> a
    lenient repair (trailing commas, fences, truncation) else ``{}``. Never returns a non-dict.
    """
    if args is None:
        return {}
    if isinstance(args, dict):
        return args
    if not isinstance(args, str):
        return {"value": args}
    if not args.strip():
        return {}
    try:
        v = orjson.loads(args)
    except orjson.JSONDecodeError:
        v = _repair_json(args)
        if v is None:
            return {}
    if isinstance(v, dict):
        return v
    if v is None:
        return {}
    return {"value": v}


def dumps_arguments(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``: Python's separators (docs/protocols.md §7.1).

    (orjson would be faster but emits compact JSON; keeping the exact bytes means upstream
    prefix caches see the same history text every turn.)
    """
    return json.dumps(value, ensure_ascii=False)


def is_complete_json(s: str) -> bool:
    try:
        orjson.loads(s)
    except orjson.JSONDecodeError:
        return False
    return True


# ----------------------------------------------------------------------------- stop reasons

A_TO_O_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
    "compaction": "length",
}


def finish_to_stop_reason(
    finish: str | None,
    saw_tool: bool,
    matched_stop: Any,
    stop_sequences: list[str],
) -> tuple[str, str | None]:
    """OpenAI ``finish_reason`` + facts about the answer -> (stop_reason, stop_sequence)."""
    if finish == "length":
        return "max_tokens", None
    if finish == "content_filter":
        return "refusal", None
    if saw_tool:
        return "tool_use", None
    if (
        finish == "stop"
        and isinstance(matched_stop, str)
        and matched_stop
        and matched_stop in stop_sequences
    ):
        return "stop_sequence", matched_stop
    return "end_turn", None


def stop_reason_to_finish(stop_reason: str | None) -> str:
    return A_TO_O_FINISH.get(stop_reason or "end_turn", "stop")


# ------------------------------------------------------------------------------------ usage


def usage_to_anthropic(u: Usage) -> dict[str, int]:
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
    }


def usage_to_openai(u: Usage, reasoning_tokens: int | None = None) -> dict[str, Any]:
    prompt = u.prompt_tokens
    details: dict[str, int] = {"cached_tokens": u.cache_read_input_tokens}
    if u.cache_creation_input_tokens:
        details["cache_write_tokens"] = u.cache_creation_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens or 0},
    }
