"""Legacy ``/v1/completions`` served through the chat path (docs/protocols.md §6.7; lossy)."""

from __future__ import annotations

import time
from typing import Any

from ..protocols.openai import new_completion_id
from ..protocols.sse import OPENAI_DONE, openai_frame

_KEEP = ("model", "temperature", "top_p", "stop", "stream", "stream_options", "n", "user", "seed")


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "".join(p for p in prompt if isinstance(p, str))
    return ""


def completion_request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """Text-completion request -> chat request with the prompt as one user message."""
    out: dict[str, Any] = {k: body[k] for k in _KEEP if body.get(k) is not None}
    out["messages"] = [{"role": "user", "content": _prompt_text(body.get("prompt"))}]
    mt = body.get("max_tokens")
    out["max_tokens"] = mt if isinstance(mt, int) and not isinstance(mt, bool) else 16
    for k in ("frequency_penalty", "presence_penalty", "logit_bias"):
        if body.get(k) is not None:
            out[k] = body[k]
    # echo, suffix, best_of, logprobs: no chat equivalent, dropped
    return out


def _choice_text(message: dict[str, Any]) -> str:
    c = message.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return "".join(p.get("text") or "" for p in c if isinstance(p, dict))
    return ""


def _finish(fr: Any) -> Any:
    return "stop" if fr in ("tool_calls", "function_call") else fr


def chat_response_to_completion(resp: dict[str, Any]) -> dict[str, Any]:
    """chat.completion -> text_completion."""
    choices = []
    for i, ch in enumerate(resp.get("choices") or ()):
        if not isinstance(ch, dict):
            continue
        choices.append(
            {
                "index": ch.get("index", i),
                "text": _choice_text(ch.get("message") or {}),
                "logprobs": None,
                "finish_reason": _finish(ch.get("finish_reason")),
            }
        )
    out: dict[str, Any] = {
        "id": new_completion_id("cmpl-"),
        "object": "text_completion",
        "created": resp.get("created") or int(time.time()),
        "model": resp.get("model"),
        "choices": choices,
    }
    if "usage" in resp:
        u = resp.get("usage")
        if isinstance(u, dict):
            u = {k: u[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens") if k in u}
        out["usage"] = u
    return out


class ChatToCompletionStream:
    """chat.completion.chunk dicts -> text_completion SSE frames."""

    def __init__(self) -> None:
        self.id = new_completion_id("cmpl-")
        self.created = int(time.time())
        self._done = False

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done:
            return b""
        if "error" in chunk and not chunk.get("choices"):
            return openai_frame({"error": chunk["error"]})
        choices = []
        for ch in chunk.get("choices") or ():
            if not isinstance(ch, dict):
                continue
            d = ch.get("delta") or {}
            text = d.get("content")
            fr = ch.get("finish_reason")
            if not (isinstance(text, str) and text) and not fr:
                continue
            choices.append(
                {
                    "index": ch.get("index", 0),
                    "text": text if isinstance(text, str) else "",
                    "logprobs": None,
                    "finish_reason": _finish(fr),
                }
            )
        u = chunk.get("usage")
        if not choices and not u:
            return b""
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": chunk.get("model"),
            "choices": choices,
        }
        if "usage" in chunk:
            payload["usage"] = u
        return openai_frame(payload)

    def done(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        return OPENAI_DONE
