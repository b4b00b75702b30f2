"""Strict SSE parsers/accumulators for the translation tests.

The Anthropic accumulator FAILS (AssertionError) on anything a strict client could choke on:
a frame without an ``event:`` line or whose name differs from ``data.type``, anything before
``message_start``, index gaps or deltas for a block that is not the open one, a thinking block
closed without exactly one signature_delta right before its stop, a tool_use start without id
or name, more than one message_delta, and anything after ``message_stop``.
"""

from __future__ import annotations

from typing import Any

import orjson

from dragoman.translate.context import ResponseContext, Target


def vllm_target(**kw: Any) -> Target:
    base: dict[str, Any] = {"model": "qwen3-coder", "requested_model": "claude-sonnet-4-5"}
    base.update(kw)
    return Target(**base)


def rctx(**kw: Any) -> ResponseContext:
    base: dict[str, Any] = {"requested_model": "claude-sonnet-4-5"}
    base.update(kw)
    return ResponseContext(**base)


def parse_anthropic_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    assert raw.endswith(b"\n\n") or raw == b"", raw[-50:]
    events: list[tuple[str, dict[str, Any]]] = []
    for frame in raw.split(b"\n\n"):
        if not frame:
            continue
        lines = frame.split(b"\n")
        assert len(lines) == 2, frame
        assert lines[0].startswith(b"event: "), frame
        assert lines[1].startswith(b"data: "), frame
        name = lines[0][7:].decode()
        data = orjson.loads(lines[1][6:])
        assert data["type"] == name, (name, data)
        events.append((name, data))
    return events


class StrictAnthropicAccumulator:
    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.open: int | None = None
        self.json_bufs: dict[int, str] = {}
        self.last_delta_type: str | None = None
        self.signatures: dict[int, int] = {}
        self.deltas_after_sig = False
        self.message_delta_seen = False
        self.stopped = False
        self.error: dict[str, Any] | None = None

    def feed(self, name: str, data: dict[str, Any]) -> None:
        assert not self.stopped, f"{name} after message_stop"
        assert self.error is None, f"{name} after error"
        if name == "error":
            self.error = data["error"]
            return
        if name == "ping":
            return
        if self.message is None:
            assert name == "message_start", f"{name} before message_start"
            msg = data["message"]
            u = msg["usage"]
            for k in (
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ):
                assert isinstance(u[k], int), u
            assert msg["content"] == []
            assert msg["id"].startswith("msg_")
            self.message = {**msg, "content": []}
            return
        msg = self.message
        assert name != "message_start", "duplicate message_start"
        if name == "content_block_start":
            assert self.open is None, "block started while another is open"
            assert not self.message_delta_seen
            idx = data["index"]
            assert idx == len(msg["content"]), f"index {idx} != {len(msg['content'])}"
            block = dict(data["content_block"])
            if block["type"] == "tool_use":
                assert block["id"] and block["name"], block
                assert block["input"] == {}
                self.json_bufs[idx] = ""
            if block["type"] == "thinking":
                assert block["signature"] == ""
                self.signatures[idx] = 0
            msg["content"].append(block)
            self.open = idx
            self.last_delta_type = None
            return
        if name == "content_block_delta":
            idx = data["index"]
            assert idx == self.open, f"delta for index {idx}, open is {self.open}"
            block = msg["content"][idx]
            d = data["delta"]
            dt = d["type"]
            if dt == "text_delta":
                assert block["type"] == "text"
                block["text"] += d["text"]
            elif dt == "thinking_delta":
                assert block["type"] == "thinking"
                assert self.signatures[idx] == 0, "thinking after signature"
                block["thinking"] += d["thinking"]
            elif dt == "signature_delta":
                assert block["type"] == "thinking"
                self.signatures[idx] += 1
                block["signature"] = d["signature"]
            elif dt == "input_json_delta":
                assert block["type"] == "tool_use"
                self.json_bufs[idx] += d["partial_json"]
            else:
                raise AssertionError(f"unknown delta {dt}")
            self.last_delta_type = dt
            return
        if name == "content_block_stop":
            idx = data["index"]
            assert idx == self.open, f"stop for {idx}, open is {self.open}"
            block = msg["content"][idx]
            if block["type"] == "thinking":
                assert self.signatures[idx] == 1, "thinking block needs exactly one signature"
                assert self.last_delta_type == "signature_delta"
            if block["type"] == "tool_use":
                buf = self.json_bufs[idx]
                block["input"] = orjson.loads(buf) if buf else {}
                assert isinstance(block["input"], dict)
            self.open = None
            return
        if name == "message_delta":
            assert self.open is None, "message_delta with an open block"
            assert not self.message_delta_seen, "two message_delta"
            self.message_delta_seen = True
            msg["stop_reason"] = data["delta"]["stop_reason"]
            msg["stop_sequence"] = data["delta"].get("stop_sequence")
            assert isinstance(data["usage"]["output_tokens"], int)
            for k, v in data["usage"].items():
                if v is not None:
                    msg["usage"][k] = v
            return
        if name == "message_stop":
            assert self.message_delta_seen, "message_stop without message_delta"
            self.stopped = True
            return
        raise AssertionError(f"unexpected event {name}")


def accumulate_anthropic(raw: bytes) -> StrictAnthropicAccumulator:
    acc = StrictAnthropicAccumulator()
    for name, data in parse_anthropic_sse(raw):
        acc.feed(name, data)
    return acc


def anthropic_sse_bytes(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    from dragoman.protocols.sse import anthropic_frame

    return b"".join(anthropic_frame(n, d) for n, d in events)


def parse_openai_sse(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for frame in raw.split(b"\n\n"):
        if not frame:
            continue
        assert frame.startswith(b"data: "), frame
        body = frame[6:]
        out.append("[DONE]" if body == b"[DONE]" else orjson.loads(body))
    return out


def accumulate_openai(items: list[Any]) -> dict[str, Any]:
    """Strictly accumulate chat.completion.chunk payloads into a chat.completion-like dict."""
    assert items and items[-1] == "[DONE]", items[-3:]
    assert items.count("[DONE]") == 1
    chunks = items[:-1]
    ids = {c["id"] for c in chunks if "id" in c}
    assert len(ids) <= 1
    msg: dict[str, Any] = {"role": None, "content": None}
    calls: list[dict[str, Any]] = []
    finish = None
    usage = None
    error = None
    for c in chunks:
        if "error" in c:
            error = c["error"]
            continue
        assert c["object"] == "chat.completion.chunk"
        assert finish is None or not c["choices"], "chunk after finish"
        if c.get("usage"):
            usage = c["usage"]
        for ch in c["choices"]:
            d = ch["delta"]
            if d.get("role"):
                msg["role"] = d["role"]
            if d.get("content"):
                msg["content"] = (msg["content"] or "") + d["content"]
            if d.get("reasoning_content"):
                msg["reasoning_content"] = msg.get("reasoning_content", "") + d["reasoning_content"]
            for tc in d.get("tool_calls") or ():
                i = tc["index"]
                if i == len(calls):
                    assert tc.get("id") and tc["function"].get("name"), tc
                    calls.append(
                        {
                            "id": tc["id"],
                            "type": "function",
                            "function": {"name": tc["function"]["name"], "arguments": ""},
                        }
                    )
                assert i < len(calls), "tool index gap"
                calls[i]["function"]["arguments"] += tc["function"].get("arguments") or ""
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
    if calls:
        msg["tool_calls"] = calls
    return {"message": msg, "finish_reason": finish, "usage": usage, "error": error}
