"""What an OpenAI-dialect client's body needs before it reaches a given server (O->O path).

Pass-through stays pass-through: these change only what the server would otherwise reject or
lose. The body is a fresh shallow copy owned by the caller; messages are copied before they are
changed. See docs/flavors.md.
"""

from __future__ import annotations

from typing import Any

from .flavors import Flavor

_REASONING_KEYS = ("reasoning", "reasoning_content")


def cap_output(mt: Any, cap: int | None) -> Any:
    """``max_tokens`` lowered to ``cap`` (what fits the model's window and output limit)."""
    if cap is None or not isinstance(mt, int) or isinstance(mt, bool):
        return mt
    return max(min(mt, cap), 1)


def adapt_chat_request(
    body: dict[str, Any],
    row: Flavor,
    *,
    reasoning_field: str | None,
    pad_reasoning: bool,
    output_cap: int | None,
) -> dict[str, Any]:
    """Fix ``body`` (mutated and returned) for the server ``row`` describes.

    * reasoning a client sends back travels in the field the server uses (``reasoning`` vs
      ``reasoning_content``; dropped where it takes none); ``reasoning_field`` None = not known,
      left as the client wrote it;
    * ``pad_reasoning``: the assistant messages of a tool-calling turn without reasoning get an
      empty one (DeepSeek thinking mode answers 400 "The `reasoning_content` in the thinking
      mode must be passed back to the API." otherwise);
    * ``reasoning_effort`` with thinking switched off is dropped where the pair is a 400;
    * ``max_tokens`` / ``max_completion_tokens`` are lowered to ``output_cap``.
    """
    if reasoning_field is not None or pad_reasoning:
        msgs = body.get("messages")
        if isinstance(msgs, list):
            new = [_adapt_message(m, reasoning_field) for m in msgs]
            if pad_reasoning and reasoning_field:
                new = pad_tool_turns(new, reasoning_field)
            if any(a is not b for a, b in zip(new, msgs, strict=True)):
                body["messages"] = new
    if row.effort_needs_thinking and "reasoning_effort" in body:
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "disabled":
            del body["reasoning_effort"]
    if output_cap is not None:
        for key in ("max_tokens", "max_completion_tokens"):
            if key in body:
                body[key] = cap_output(body[key], output_cap)
    return body


def pad_tool_turns(messages: list[Any], field: str) -> list[Any]:
    """Every assistant message of a turn (user message to user message) that called tools
    carries ``field``, empty where the client kept no reasoning: DeepSeek thinking mode wants
    the reasoning of such turns back in all later requests. Messages that already carry it are
    the same objects; the others are copies."""
    out = list(messages)
    start = 0
    for end in range(len(out) + 1):
        if end < len(out) and not (isinstance(out[end], dict) and out[end].get("role") == "user"):
            continue
        turn = range(start, end)
        if any(_is_assistant(out[i]) and out[i].get("tool_calls") for i in turn):
            for i in turn:
                if _is_assistant(out[i]) and field not in out[i]:
                    out[i] = {**out[i], field: ""}
        start = end + 1
    return out


def _is_assistant(m: Any) -> bool:
    return isinstance(m, dict) and m.get("role") == "assistant"


def _adapt_message(m: Any, field: str | None) -> Any:
    if not isinstance(m, dict) or m.get("role") != "assistant":
        return m
    out = m
    if field == "":
        if any(k in m for k in _REASONING_KEYS):
            out = {k: v for k, v in m.items() if k not in _REASONING_KEYS}
    elif field is not None and field not in m:
        other = next((k for k in _REASONING_KEYS if k != field and k in m), None)
        if other is not None:
            out = {(field if k == other else k): v for k, v in m.items()}
    return out
