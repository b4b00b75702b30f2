"""Strict wire checks for the streams dragoman sends to clients.

The official SDKs are lenient (the Anthropic accumulator ignores ``index``, skips frames without
an ``event:`` name, tolerates bytes after ``message_stop``); Claude Code is not. These checkers
hold every byte of a stream to the grammar of docs/protocols.md §3 (Anthropic) and §6.5 (OpenAI) and
raise ``AssertionError`` naming the frame that breaks it.

``check_anthropic_sse(raw)`` also rebuilds the message from the frames alone (content blocks,
stop reason, usage), independently of any SDK, so tests can compare the two.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ANTHROPIC_EVENTS = {
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "ping",
    "error",
}
STOP_REASONS = {
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
}
ANTHROPIC_ERROR_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
}
FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "function_call"}
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_FRAME_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(r"\r\n|\n|\r")
_DELTAS_FOR = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
}


@dataclass
class Frame:
    event: str | None
    data: str
    raw: bytes


@dataclass
class CheckedStream:
    """What a stream said, rebuilt from the frames alone."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    message: dict[str, Any] = field(default_factory=dict)
    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    start_usage: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    #: per content index, the deltas in order (to inspect how a block was streamed)
    deltas: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    @property
    def block_types(self) -> list[str]:
        return [b["type"] for b in self.content]

    def blocks(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.content if b["type"] == kind]


def split_frames(raw: bytes) -> list[Frame]:
    """Frames of an SSE body; asserts the body ends with a complete frame."""
    frames: list[Frame] = []
    pos = 0
    for m in _FRAME_END.finditer(raw):
        chunk = raw[pos : m.end()]
        pos = m.end()
        text = chunk.decode("utf-8")
        event: str | None = None
        data: list[str] = []
        fields = 0
        for line in _LINE_END.split(text):
            if not line or line.startswith(":"):
                continue
            name, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            fields += 1
            if name == "event":
                assert event is None, f"two event: lines in one frame: {chunk!r}"
                event = value
            elif name == "data":
                data.append(value)
            else:
                raise AssertionError(f"unexpected SSE field {name!r} in frame {chunk!r}")
        if fields:
            frames.append(Frame(event, "\n".join(data), chunk))
    assert not raw[pos:].strip(), f"stream ends with an unterminated frame: {raw[pos:]!r}"
    return frames


def _loads(frame: Frame) -> dict[str, Any]:
    assert "\n" not in frame.data, f"multi-line data in frame {frame.raw!r}"
    try:
        obj = json.loads(frame.data)
    except json.JSONDecodeError as e:
        raise AssertionError(f"data is not JSON ({e}): {frame.raw!r}") from None
    assert isinstance(obj, dict), f"data is not a JSON object: {frame.raw!r}"
    return obj


def _check_usage(usage: Any, where: str, *, need_input: bool) -> dict[str, Any]:
    assert isinstance(usage, dict), f"{where}: usage missing ({usage!r})"
    keys = ("input_tokens", "output_tokens") if need_input else ("output_tokens",)
    for k in keys:
        v = usage.get(k)
        assert isinstance(v, int) and not isinstance(v, bool) and v >= 0, (
            f"{where}: usage.{k} must be a non-negative integer, got {v!r}"
        )
    for k in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        v = usage.get(k)
        assert v is None or (isinstance(v, int) and v >= 0), f"{where}: usage.{k}={v!r}"
    return usage


def check_anthropic_sse(raw: bytes, *, allow_error: bool = False) -> CheckedStream:
    """Hold an Anthropic-dialect stream to the grammar Claude Code relies on.

    * every frame has an ``event:`` line equal to ``data.type`` and one line of JSON data;
      no ``[DONE]``; only known event names;
    * ``message_start`` first, with ``usage.input_tokens``/``output_tokens`` integers;
    * blocks sequential: ``content_block_start`` indices 0, 1, 2... in order, a block stopped
      before the next starts, no delta/stop for a block that is not the open one;
    * block starts well formed (tool_use: non-empty id matching ``^[a-zA-Z0-9_-]+$`` and
      non-empty name, ``input == {}``); delta types match their block; a thinking block ends
      with exactly one ``signature_delta``; tool input JSON (concatenated) is an object;
    * exactly one ``message_delta`` (legal ``stop_reason``, ``usage.output_tokens``) after every
      block is closed, then exactly one ``message_stop``, then nothing;
    * with ``allow_error``: the stream may instead end with one ``error`` event (typed with an
      Anthropic error type) and nothing after it.
    """
    frames = split_frames(raw)
    assert frames, "empty stream"
    out = CheckedStream()
    open_index: int | None = None
    open_block: dict[str, Any] | None = None
    open_sigs = 0
    json_buf: dict[int, str] = {}
    n_message_delta = 0
    finished = False
    for i, fr in enumerate(frames):
        assert not finished, f"frame after the end of the stream: {fr.raw!r}"
        assert fr.data != "[DONE]", "[DONE] sent to an Anthropic client"
        assert fr.event is not None, f"frame #{i} has no event: line: {fr.raw!r}"
        assert fr.event in ANTHROPIC_EVENTS, f"unknown event {fr.event!r}"
        obj = _loads(fr)
        assert obj.get("type") == fr.event, (
            f"frame #{i}: event {fr.event!r} but data.type {obj.get('type')!r}"
        )
        name = fr.event
        out.events.append((name, obj))
        if i == 0:
            assert name == "message_start", f"first event is {name!r}, not message_start"
        elif name == "message_start":
            raise AssertionError("second message_start")
        if name == "message_start":
            msg = obj.get("message")
            assert isinstance(msg, dict), "message_start without message"
            assert msg.get("type") == "message" and msg.get("role") == "assistant", msg
            assert isinstance(msg.get("id"), str) and msg["id"], "message_start without id"
            assert msg.get("content") == [], f"message_start content not empty: {msg!r}"
            assert isinstance(msg.get("model"), str), "message_start without model"
            out.start_usage = dict(_check_usage(msg.get("usage"), "message_start", need_input=True))
            out.usage = dict(out.start_usage)
            out.message = msg
        elif name == "ping":
            pass
        elif name == "content_block_start":
            assert n_message_delta == 0, "content_block_start after message_delta"
            assert open_index is None, (
                f"content_block_start {obj.get('index')} while block {open_index} is open"
            )
            idx = obj.get("index")
            assert idx == len(out.content), (
                f"content_block_start index {idx}, expected {len(out.content)}"
            )
            block = obj.get("content_block")
            assert isinstance(block, dict) and isinstance(block.get("type"), str), obj
            bt = block["type"]
            if bt == "text":
                assert block.get("text") == "", f"text block starts non-empty: {block!r}"
            elif bt == "thinking":
                assert block.get("thinking") == "", block
                assert "signature" in block, f"thinking start without signature key: {block!r}"
            elif bt in ("tool_use", "server_tool_use"):
                tid, tname = block.get("id"), block.get("name")
                assert isinstance(tid, str) and tid and _TOOL_ID.match(tid), (
                    f"tool_use start with bad id {tid!r}"
                )
                assert isinstance(tname, str) and tname, f"tool_use start with bad name {tname!r}"
                assert block.get("input") == {}, f"tool_use start input not {{}}: {block!r}"
                json_buf[idx] = ""
            block = json.loads(json.dumps(block))
            out.content.append(block)
            out.deltas[idx] = []
            open_index, open_block, open_sigs = idx, block, 0
        elif name == "content_block_delta":
            idx = obj.get("index")
            assert open_index is not None and idx == open_index, (
                f"delta for index {idx} but the open block is {open_index}"
            )
            assert open_block is not None
            d = obj.get("delta")
            assert isinstance(d, dict), obj
            dt = d.get("type")
            bt = open_block["type"]
            allowed = _DELTAS_FOR.get(bt, set())
            assert dt in allowed, f"{dt!r} delta for a {bt!r} block"
            out.deltas[idx].append(d)
            if dt == "text_delta":
                assert isinstance(d.get("text"), str), d
                open_block["text"] += d["text"]
            elif dt == "thinking_delta":
                assert open_sigs == 0, "thinking_delta after signature_delta"
                assert isinstance(d.get("thinking"), str), d
                open_block["thinking"] += d["thinking"]
            elif dt == "signature_delta":
                sig = d.get("signature")
                assert isinstance(sig, str) and sig, f"empty signature_delta: {d!r}"
                open_sigs += 1
                open_block["signature"] = sig
            elif dt == "input_json_delta":
                pj = d.get("partial_json")
                assert isinstance(pj, str), d
                json_buf[idx] += pj
        elif name == "content_block_stop":
            idx = obj.get("index")
            assert open_index is not None and idx == open_index, (
                f"content_block_stop for {idx} but the open block is {open_index}"
            )
            assert open_block is not None
            if open_block["type"] == "thinking":
                assert open_sigs == 1, (
                    f"thinking block {idx} closed with {open_sigs} signature_delta(s)"
                )
                last = out.deltas[idx][-1] if out.deltas[idx] else {}
                assert last.get("type") == "signature_delta", "signature_delta is not last"
            if idx in json_buf:
                text = json_buf[idx]
                try:
                    inp = json.loads(text) if text.strip() else {}
                except json.JSONDecodeError as e:
                    raise AssertionError(f"tool input of block {idx} not JSON: {text!r}") from e
                assert isinstance(inp, dict), f"tool input of block {idx} not an object: {inp!r}"
                open_block["input"] = inp
            open_index, open_block = None, None
        elif name == "message_delta":
            assert open_index is None, f"message_delta while block {open_index} is open"
            n_message_delta += 1
            assert n_message_delta == 1, "more than one message_delta"
            d = obj.get("delta")
            assert isinstance(d, dict), obj
            sr = d.get("stop_reason")
            assert sr in STOP_REASONS, f"illegal stop_reason {sr!r}"
            out.stop_reason = sr
            out.stop_sequence = d.get("stop_sequence")
            u = _check_usage(obj.get("usage"), "message_delta", need_input=False)
            for k, v in u.items():
                if v is not None:
                    out.usage[k] = v
        elif name == "message_stop":
            assert n_message_delta == 1, "message_stop without exactly one message_delta"
            finished = True
        elif name == "error":
            assert allow_error, f"unexpected error event: {obj!r}"
            err = obj.get("error")
            assert isinstance(err, dict), obj
            assert err.get("type") in ANTHROPIC_ERROR_TYPES, f"error type {err.get('type')!r}"
            assert isinstance(err.get("message"), str), obj
            out.error = err
            finished = True
    assert finished, f"stream ended without message_stop/error (last: {out.names[-3:]})"
    if out.error is None:
        assert out.content, "a finished message with no content block at all"
    return out


# ---------------------------------------------------------------------------------- OpenAI


@dataclass
class CheckedChunks:
    chunks: list[dict[str, Any]] = field(default_factory=list)
    content: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def check_openai_sse(raw: bytes, *, allow_error: bool = False) -> CheckedChunks:
    """Hold a Chat Completions stream to §6.5: ``data:`` lines only, one id for all chunks,
    ``chat.completion.chunk`` objects, tool calls with id+name on their first fragment and
    indices 0, 1, 2..., exactly one finish_reason, usage only on a trailing ``choices: []``
    chunk, ``[DONE]`` last and nothing after it; a failed stream ends with one error chunk and
    no ``[DONE]``."""
    frames = split_frames(raw)
    out = CheckedChunks()
    done = False
    ids: set[str] = set()
    calls: dict[int, dict[str, Any]] = {}
    for fr in frames:
        assert not done, f"data after [DONE]: {fr.raw!r}"
        assert fr.event is None, f"event: line in an OpenAI stream: {fr.raw!r}"
        if fr.data == "[DONE]":
            done = True
            continue
        obj = _loads(fr)
        if "error" in obj and "choices" not in obj:
            assert allow_error, f"unexpected error chunk {obj!r}"
            assert isinstance(obj["error"], dict) and isinstance(obj["error"].get("message"), str)
            out.error = obj["error"]
            continue
        assert out.error is None, "chunk after an error chunk"
        assert obj.get("object") == "chat.completion.chunk", obj
        ids.add(obj.get("id"))
        out.chunks.append(obj)
        choices = obj.get("choices")
        assert isinstance(choices, list), obj
        if not choices:
            assert obj.get("usage"), f"empty choices without usage: {obj!r}"
            out.usage = obj["usage"]
            continue
        assert out.usage is None, "content chunk after the usage chunk"
        ch = choices[0]
        d = ch.get("delta") or {}
        assert out.finish_reason is None, f"chunk after finish_reason: {obj!r}"
        if isinstance(d.get("content"), str):
            out.content += d["content"]
        for k in ("reasoning_content", "reasoning"):
            if isinstance(d.get(k), str):
                out.reasoning += d[k]
        for tc in d.get("tool_calls") or ():
            k = tc.get("index")
            assert isinstance(k, int), f"tool call fragment without index: {tc!r}"
            fn = tc.get("function") or {}
            if k not in calls:
                assert k == len(calls), f"tool call index {k}, expected {len(calls)}"
                assert tc.get("id") and fn.get("name"), f"first fragment lacks id/name: {tc!r}"
                calls[k] = {"id": tc["id"], "name": fn["name"], "arguments": ""}
            if isinstance(fn.get("arguments"), str):
                calls[k]["arguments"] += fn["arguments"]
        if ch.get("finish_reason") is not None:
            assert ch["finish_reason"] in FINISH_REASONS, ch
            out.finish_reason = ch["finish_reason"]
    assert len(ids) <= 1, f"chunks carry different ids: {ids}"
    if out.error is None:
        assert done, "stream did not end with [DONE]"
        assert out.finish_reason is not None, "no finish_reason in the stream"
    else:
        assert allow_error
        # a failed stream never ends like a complete one (docs/protocols.md, "Stream endings")
        assert not done, "[DONE] after an error chunk"
    out.tool_calls = [calls[k] for k in sorted(calls)]
    return out
