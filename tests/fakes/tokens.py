"""The fakes' deterministic "tokenizer".

Real tokenizers are not available offline, so both fakes count tokens with the same simple,
documented rule. Tests can call these functions (or ``fake.count_*``) to know the exact number
the fake will report, and assert that the gateway logged exactly that.

* text: one token per word (``\\w+``) and one per other non-space character;
* a message costs ``MESSAGE_OVERHEAD`` tokens plus its content;
* an image costs ``IMAGE_TOKENS``;
* JSON values (tool inputs, tool schemas, unknown blocks) are counted on their compact JSON text.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_TOKEN = re.compile(r"\w+|[^\w\s]")

MESSAGE_OVERHEAD = 4
GENERATION_PROMPT = 3  # "<|im_start|>assistant\n"
IMAGE_TOKENS = 1000
SYSTEM_OVERHEAD = 3


def count_text(text: str) -> int:
    return len(_TOKEN.findall(text))


def count_json(value: Any) -> int:
    return count_text(orjson.dumps(value).decode())


# ----------------------------------------------------------------------------- Anthropic


def _anthropic_block(block: Any) -> int:
    if not isinstance(block, dict):
        return count_json(block)
    kind = block.get("type")
    if kind == "text":
        return count_text(str(block.get("text", "")))
    if kind == "thinking":
        return count_text(str(block.get("thinking", "")))
    if kind == "redacted_thinking":
        return 50
    if kind in ("tool_use", "server_tool_use"):
        return count_text(str(block.get("name", ""))) + count_json(block.get("input", {}))
    if kind == "tool_result":
        return 2 + anthropic_content_tokens(block.get("content", ""))
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "mid_conv_system":
        return anthropic_content_tokens(block.get("content", []))
    return count_json({k: v for k, v in block.items() if k != "cache_control"})


def anthropic_content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return count_text(content)
    if isinstance(content, list):
        return sum(_anthropic_block(b) for b in content)
    return 0


def anthropic_tool_tokens(tool: Any) -> int:
    if not isinstance(tool, dict):
        return 0
    if "input_schema" in tool:
        return (
            count_text(str(tool.get("name", "")))
            + count_text(str(tool.get("description", "")))
            + count_json(tool["input_schema"])
        )
    return 100  # server tools (web_search_..., bash_...) have a fixed, hidden schema


def anthropic_input_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of an Anthropic Messages / count_tokens body."""
    total = 0
    system = body.get("system")
    if system:
        total += SYSTEM_OVERHEAD + anthropic_content_tokens(system)
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            total += MESSAGE_OVERHEAD + anthropic_content_tokens(msg.get("content"))
    for tool in body.get("tools") or []:
        total += anthropic_tool_tokens(tool)
    return total


def anthropic_output_tokens(content: list[dict[str, Any]]) -> int:
    return sum(_anthropic_block(b) for b in content)


# ----------------------------------------------------------------------------- OpenAI


def _openai_content(content: Any) -> int:
    if isinstance(content, str):
        return count_text(content)
    if isinstance(content, list):
        n = 0
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                n += count_text(str(part.get("text", "")))
            elif part.get("type") in ("image_url", "input_image"):
                n += IMAGE_TOKENS
            elif part.get("type") == "refusal":
                n += count_text(str(part.get("refusal", "")))
            else:
                n += count_json(part)
        return n
    return 0


def openai_message_tokens(msg: Any) -> int:
    if not isinstance(msg, dict):
        return 0
    n = MESSAGE_OVERHEAD + _openai_content(msg.get("content"))
    for field in ("reasoning", "reasoning_content"):
        if isinstance(msg.get(field), str):
            n += count_text(msg[field])
    for call in msg.get("tool_calls") or []:
        fn = call.get("function", {}) if isinstance(call, dict) else {}
        n += count_text(str(fn.get("name", ""))) + count_text(str(fn.get("arguments", "")))
    return n


def openai_prompt_tokens(
    messages: list[Any], tools: list[Any] | None = None, *, add_generation_prompt: bool = True
) -> int:
    """Prompt tokens of a chat request, as the chat template would render it."""
    n = sum(openai_message_tokens(m) for m in messages)
    for tool in tools or []:
        n += count_json(tool)
    if add_generation_prompt:
        n += GENERATION_PROMPT
    return n


def openai_completion_prompt_tokens(prompt: Any) -> int:
    if isinstance(prompt, str):
        return count_text(prompt)
    if isinstance(prompt, list):
        if all(isinstance(p, int) for p in prompt):
            return len(prompt)
        return sum(openai_completion_prompt_tokens(p) for p in prompt)
    return 0


def fake_token_ids(n: int, seed: str = "") -> list[int]:
    """Deterministic token ids for ``/tokenize`` answers (values mean nothing)."""
    base = sum(map(ord, seed)) % 1000
    return [(base + 7919 * i) % 151_000 + 100 for i in range(n)]
