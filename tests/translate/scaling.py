"""Requests whose translation was quadratic (audit #4), sized by ``n``, and a timer that takes
the best of a few runs: shared by ``test_tx_linear.py`` and ``bench/translate_scaling.py``."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from dragoman.translate.a2o import anthropic_to_openai_request
from dragoman.translate.context import Target
from dragoman.translate.o2a import openai_to_anthropic_request
from dragoman.translate.responses import responses_to_chat

TARGET = Target(model="m", requested_model="m", input_tokens_estimate=1)


def anthropic_reverse_tools(n: int) -> dict[str, Any]:
    """One assistant turn with ``n`` tool calls, answered in reverse order."""
    uses = [{"type": "tool_use", "id": f"toolu_{i}", "name": "f", "input": {}} for i in range(n)]
    results = [
        {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": "ok"}
        for i in reversed(range(n))
    ]
    return {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": uses},
            {"role": "user", "content": results},
        ],
    }


def anthropic_user_run(n: int) -> dict[str, Any]:
    """``n`` user turns in a row (merged into one upstream message)."""
    msgs = [{"role": "user", "content": "some words of a message " * 40} for _ in range(n)]
    return {"model": "m", "max_tokens": 10, "messages": msgs}


def openai_reverse_tools(n: int) -> dict[str, Any]:
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        for i in range(n)
    ]
    tools = [
        {"role": "tool", "tool_call_id": f"call_{i}", "content": "ok"} for i in reversed(range(n))
    ]
    return {
        "model": "m",
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            *tools,
        ],
    }


def responses_user_run(n: int) -> dict[str, Any]:
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "w " * 20}]}
        for _ in range(n)
    ]
    return {"model": "m", "input": items, "store": False}


CASES: dict[str, tuple[Callable[[int], dict[str, Any]], Callable[[dict[str, Any]], Any]]] = {
    "a2o tool results in reverse order": (
        anthropic_reverse_tools,
        lambda b: anthropic_to_openai_request(b, TARGET),
    ),
    "a2o consecutive user turns": (
        anthropic_user_run,
        lambda b: anthropic_to_openai_request(b, TARGET),
    ),
    "o2a tool results in reverse order": (
        openai_reverse_tools,
        lambda b: openai_to_anthropic_request(b, TARGET),
    ),
    "responses consecutive user items": (responses_user_run, responses_to_chat),
}


def best_time(fn: Callable[[dict[str, Any]], Any], body: dict[str, Any], runs: int = 5) -> float:
    """The fastest of ``runs`` translations of ``body`` (garbage collection paused)."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(body)
            best = min(best, time.perf_counter() - t0)
    finally:
        gc.enable()
    return best
