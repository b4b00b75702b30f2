"""A streamed answer rebuilt into the body the cache stores, only if the stream completed.

Fed the SSE bytes the client received (``feed``), chunk by chunk as they pass; ``body()`` is the
complete non-stream body in the same dialect, or None when the stream did not complete (no
``message_stop`` / ``[DONE]`` with a finish reason, an error event, or it grew over the size
limit: then it stops parsing and costs nothing more).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..protocols.sse import SSEParser


class _Recorder:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.seen = 0
        self.failed = False
        self.complete = False
        self._sse = SSEParser()

    def feed(self, chunk: bytes) -> None:
        if self.failed:
            return
        self.seen += len(chunk)
        if self.seen > self.max_bytes * 4:  # a stream is larger than its body, not 4x larger
            self.failed = True
            return
        for ev in self._sse.feed(chunk):
            try:
                self._event(ev.event, ev.data)
            except (ValueError, KeyError, TypeError, AttributeError, IndexError):
                self.failed = True
                return

    def _event(self, name: str | None, data: str) -> None:
        raise NotImplementedError


class AnthropicRecorder(_Recorder):
    """Rebuilds a Messages body from ``message_start`` ... ``message_stop``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}

    def _event(self, name: str | None, data: str) -> None:
        if self.complete:
            return
        ev = orjson.loads(data)
        kind = ev.get("type") or name
        if kind == "message_start":
            self.message = dict(ev["message"])
        elif kind == "content_block_start":
            block = dict(ev["content_block"])
            i = ev["index"]
            if block.get("type") in ("tool_use", "server_tool_use", "mcp_tool_use"):
                self._json[i] = []
            self.blocks[i] = block
        elif kind == "content_block_delta":
            block, d = self.blocks[ev["index"]], ev["delta"]
            dt = d.get("type")
            if dt == "text_delta":
                block["text"] = block.get("text", "") + d["text"]
            elif dt == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + d["thinking"]
            elif dt == "signature_delta":
                block["signature"] = d["signature"]
            elif dt == "input_json_delta":
                self._json[ev["index"]].append(d["partial_json"])
            elif dt == "citations_delta":
                block.setdefault("citations", []).append(d["citation"])
            else:
                raise ValueError(f"unknown delta {dt!r}")
        elif kind == "content_block_stop":
            i = ev["index"]
            if i in self._json:
                text = "".join(self._json.pop(i))
                self.blocks[i]["input"] = orjson.loads(text) if text else {}
        elif kind == "message_delta":
            assert self.message is not None
            self.message.update(ev.get("delta") or {})
            usage = dict(self.message.get("usage") or {})
            usage.update(ev.get("usage") or {})
            self.message["usage"] = usage
        elif kind == "message_stop":
            self.complete = self.message is not None and not self._json
        elif kind == "error":
            self.failed = True

    def body(self) -> dict[str, Any] | None:
        if self.failed or not self.complete or self.message is None:
            return None
        return {**self.message, "content": [self.blocks[i] for i in sorted(self.blocks)]}


class OpenAIRecorder(_Recorder):
    """Rebuilds a chat completion from its chunks; complete at ``[DONE]`` when every choice
    has its finish reason."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def _event(self, name: str | None, data: str) -> None:
        if data.strip() == "[DONE]":
            self.complete = bool(self.choices) and all(
                c.get("finish_reason") is not None for c in self.choices.values()
            )
            return
        ev = orjson.loads(data)
        if "error" in ev:
            self.failed = True
            return
        if not self.head:
            self.head = {
                k: ev[k]
                for k in ("id", "created", "model", "system_fingerprint", "service_tier")
                if k in ev
            }
        if ev.get("usage"):
            self.usage = ev["usage"]
        for ch in ev.get("choices") or ():
            c = self.choices.setdefault(
                ch.get("index", 0), {"message": {"role": "assistant"}, "finish_reason": None}
            )
            msg, d = c["message"], ch.get("delta") or {}
            for k, v in d.items():
                if k == "role":
                    msg["role"] = v
                elif k == "tool_calls":
                    calls = msg.setdefault("tool_calls", [])
                    for frag in v:
                        n = frag.get("index", 0)
                        while len(calls) <= n:
                            calls.append({"function": {"name": "", "arguments": ""}})
                        call = calls[n]
                        for ck in ("id", "type"):
                            if frag.get(ck):
                                call[ck] = frag[ck]
                        fn = frag.get("function") or {}
                        call["function"]["name"] += fn.get("name") or ""
                        call["function"]["arguments"] += fn.get("arguments") or ""
                elif isinstance(v, str):
                    msg[k] = (msg.get(k) or "") + v
                elif v is not None:
                    msg[k] = v
            lp = ch.get("logprobs")
            if lp:
                have = c.setdefault("logprobs", {})
                for lk, lv in lp.items():
                    if isinstance(lv, list):
                        have.setdefault(lk, []).extend(lv)
                    else:
                        have[lk] = lv
            if ch.get("finish_reason") is not None:
                c["finish_reason"] = ch["finish_reason"]

    def body(self, usage: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The body; ``usage`` fills in when the client's stream carried none (it did not ask
        for ``include_usage``, and the gateway hid the usage chunk it asked upstream for)."""
        if self.failed or not self.complete:
            return None
        choices = []
        for i in sorted(self.choices):
            c = self.choices[i]
            msg = c["message"]
            msg.setdefault("content", None)
            choices.append(
                {
                    "index": i,
                    "message": msg,
                    "logprobs": c.get("logprobs"),
                    "finish_reason": c["finish_reason"],
                }
            )
        body: dict[str, Any] = {
            "id": self.head.get("id"),
            "object": "chat.completion",
            "created": self.head.get("created"),
            "model": self.head.get("model"),
            "choices": choices,
            "usage": self.usage or usage,
        }
        for k in ("system_fingerprint", "service_tier"):
            if k in self.head:
                body[k] = self.head[k]
        return body


def recorder(dialect: str, max_bytes: int) -> AnthropicRecorder | OpenAIRecorder:
    return AnthropicRecorder(max_bytes) if dialect == "anthropic" else OpenAIRecorder(max_bytes)
