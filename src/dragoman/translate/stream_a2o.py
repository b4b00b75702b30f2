"""Anthropic SSE -> OpenAI chat.completion.chunk stream (docs/protocols.md §7.6).

Guarantees: one ``id``/``created``/``model`` for every chunk; a role chunk first; tool calls
numbered 0, 1, 2... in start order with id and name on their first fragment; the finish chunk,
the optional usage chunk (``choices: []``) and ``[DONE]`` only after ``message_stop``; an
upstream that ends without ``message_stop`` gets an error chunk + ``[DONE]``, never a fake
clean finish; nothing after ``[DONE]``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..errors import DragomanError, ServerError, error_for
from ..protocols.openai import error_body, new_completion_id
from ..protocols.sse import OPENAI_DONE, openai_frame
from ..tokens import estimate_text_tokens
from ..usage import Usage
from .common import stop_reason_to_finish, usage_to_openai
from .context import ResponseContext


class AnthropicToOpenAIStream:
    """Feed (event name, parsed data) pairs; get OpenAI SSE bytes back."""

    def __init__(self, rctx: ResponseContext) -> None:
        self.rctx = rctx
        self.id = new_completion_id()
        self.created = int(time.time())
        self._include_usage = rctx.include_usage
        self._done = False
        self._failed = False
        self._role_sent = False
        # Anthropic block index -> ("text"|"thinking"|"tool"|"skip", OpenAI tool index)
        self._blocks: dict[int, tuple[str, int]] = {}
        self._tool_args_seen: dict[int, bool] = {}
        self._n_tools = 0
        self._stop_reason: str | None = None
        self._usage = Usage()
        self._saw_usage = False
        self._saw_final_usage = False  # message_delta carried usage (authoritative output count)
        self._thinking_tokens: int | None = None
        self._out_text: list[str] = []

    # ------------------------------------------------------------------ public surface

    @property
    def done(self) -> bool:
        return self._done

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def usage(self) -> Usage:
        if self._saw_usage and (self._saw_final_usage or not self._out_text):
            return Usage(
                self._usage.input_tokens,
                self._usage.output_tokens,
                self._usage.cache_creation_input_tokens,
                self._usage.cache_read_input_tokens,
            )
        text = "".join(self._out_text)
        return Usage(
            self._usage.input_tokens or self.rctx.input_tokens_estimate,
            estimate_text_tokens(text) if text else 0,
            self._usage.cache_creation_input_tokens,
            self._usage.cache_read_input_tokens,
            estimated=True,
        )

    def feed(self, event: str, data: dict[str, Any]) -> bytes:
        if self._done:
            return b""
        etype = data.get("type") or event
        if etype == "content_block_delta":
            return self._on_delta(data)
        if etype == "message_start":
            msg = data.get("message") or {}
            u = msg.get("usage")
            if isinstance(u, dict):
                self._usage.merge_anthropic(u)
                self._saw_usage = True
            return self._role_chunk()
        if etype == "content_block_start":
            return self._on_block_start(data)
        if etype == "content_block_stop":
            idx = data.get("index")
            kind = self._blocks.get(idx) if isinstance(idx, int) else None
            if kind and kind[0] == "tool" and not self._tool_args_seen.get(kind[1]):
                self._tool_args_seen[kind[1]] = True
                return self._chunk(
                    {"tool_calls": [{"index": kind[1], "function": {"arguments": "{}"}}]}
                )
            return b""
        if etype == "message_delta":
            delta = data.get("delta") or {}
            sr = delta.get("stop_reason")
            if sr:
                self._stop_reason = sr
            u = data.get("usage")
            if isinstance(u, dict):
                self._usage.merge_anthropic(u)
                self._saw_usage = True
                self._saw_final_usage = "output_tokens" in u
                details = u.get("output_tokens_details")
                if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
                    self._thinking_tokens = details["thinking_tokens"]
            return b""
        if etype == "message_stop":
            return self._finish_ok()
        if etype == "error":
            err = data.get("error") or {}
            et, em = err.get("type"), err.get("message")
            return self.fail(
                error_for(
                    et if isinstance(et, str) else "api_error",
                    em if isinstance(em, str) else "upstream error",
                )
            )
        return b""  # ping, unknown future events

    def finish(self) -> bytes:
        """Upstream EOF. Clean only if ``message_stop`` was seen; otherwise an error chunk."""
        if self._done:
            return b""
        return self.fail(ServerError("upstream stream ended early"))

    def fail(self, err: DragomanError) -> bytes:
        if self._done:
            return b""
        self._done = True
        self._failed = True
        # an error chunk and no [DONE]: a failed stream never ends like a complete one
        # (docs/protocols.md, "Stream endings")
        return openai_frame(error_body(err))

    # ------------------------------------------------------------------ internals

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        out = b""
        if not self._role_sent:
            out = self._role_chunk()
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.rctx.requested_model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            payload["usage"] = None
        return out + openai_frame(payload)

    def _role_chunk(self) -> bytes:
        if self._role_sent:
            return b""
        self._role_sent = True
        return self._chunk({"role": "assistant", "content": ""})

    def _on_block_start(self, data: dict[str, Any]) -> bytes:
        idx = data.get("index")
        block = data.get("content_block") or {}
        bt = block.get("type")
        if not isinstance(idx, int):
            return b""
        if bt == "text":
            self._blocks[idx] = ("text", -1)
            s = block.get("text")
            if isinstance(s, str) and s:
                self._out_text.append(s)
                return self._chunk({"content": s})
            return b""
        if bt == "thinking":
            self._blocks[idx] = ("thinking", -1)
            s = block.get("thinking")
            if isinstance(s, str) and s:
                self._out_text.append(s)
                return self._chunk({"reasoning_content": s})
            return b""
        if bt == "tool_use":
            t = self._n_tools
            self._n_tools += 1
            self._blocks[idx] = ("tool", t)
            name = block.get("name") or ""
            entry: dict[str, Any] = {
                "index": t,
                "id": block.get("id") or "",
                "type": "function",
                "function": {"name": self.rctx.tool_names.get(name, name), "arguments": ""},
            }
            inp = block.get("input")
            if isinstance(inp, dict) and inp:
                entry["function"]["arguments"] = orjson.dumps(inp).decode()
                self._tool_args_seen[t] = True
            return self._chunk({"tool_calls": [entry]})
        self._blocks[idx] = ("skip", -1)  # redacted_thinking, server tools and their results
        return b""

    def _on_delta(self, data: dict[str, Any]) -> bytes:
        idx = data.get("index")
        kind = self._blocks.get(idx) if isinstance(idx, int) else None
        d = data.get("delta") or {}
        dt = d.get("type")
        if dt == "text_delta":
            s = d.get("text")
            if isinstance(s, str) and s and (kind is None or kind[0] == "text"):
                self._out_text.append(s)
                return self._chunk({"content": s})
            return b""
        if dt == "thinking_delta":
            s = d.get("thinking")
            if isinstance(s, str) and s:
                self._out_text.append(s)
                return self._chunk({"reasoning_content": s})
            return b""
        if dt == "input_json_delta":
            s = d.get("partial_json")
            if kind is None or kind[0] != "tool" or not isinstance(s, str) or not s:
                return b""
            self._out_text.append(s)
            self._tool_args_seen[kind[1]] = True
            return self._chunk({"tool_calls": [{"index": kind[1], "function": {"arguments": s}}]})
        return b""  # signature_delta, citations_delta

    def _finish_ok(self) -> bytes:
        finish = stop_reason_to_finish(self._stop_reason)
        if self._n_tools and finish == "stop":
            finish = "tool_calls"
        out = [self._role_chunk(), self._chunk({}, finish)]
        if self._include_usage:
            out.append(
                openai_frame(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.rctx.requested_model,
                        "choices": [],
                        "usage": usage_to_openai(self.usage, self._thinking_tokens),
                    }
                )
            )
        out.append(OPENAI_DONE)
        self._done = True
        return b"".join(out)
