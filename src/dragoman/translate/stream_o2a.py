"""OpenAI chat.completion.chunk stream -> Anthropic SSE (docs/protocols.md §7.3).

The invariants this state machine guarantees (docs/failure-catalogue.md):

* ``message_start`` first (from :meth:`start`), carrying a full ``usage`` object;
* block indices 0, 1, 2... in start order; a block is started, receives deltas and is stopped
  before the next one starts; no delta ever targets a block that is not open;
* a thinking block ends with exactly one ``signature_delta`` right before its stop;
* a tool_use block starts with its id and (un-shortened) name set;
* ``stop_reason`` is ``tool_use`` whenever a tool_use block was emitted (unless the upstream
  hit ``length``/``content_filter``);
* ``message_delta`` is held until [DONE]/EOF so it carries the real (cumulative) usage;
* a stream that ends without a ``finish_reason`` ends with an ``error`` event, never a fake
  clean ``message_stop``; nothing is ever emitted after ``message_stop`` or ``error``.

Fragments that would need an already-closed block reopened (servers interleaving parallel tool
calls) switch the machine to BUFFERED mode: the open tool keeps streaming, everything else is
queued and replayed, tool calls whole, at the end.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..errors import DragomanError, ServerError
from ..protocols.anthropic import new_message_id
from ..protocols.sse import anthropic_frame
from ..tokens import estimate_text_tokens
from ..usage import Usage
from .common import finish_to_stop_reason, is_complete_json, usage_to_anthropic
from .context import ResponseContext
from .errors import openai_stream_error_to_error
from .names import signature_from_digest

_PING = anthropic_frame("ping", {"type": "ping"})
_OPEN_TAG = "<think>"
_CLOSE_TAG = "</think>"


def _stop_frame(idx: int) -> bytes:
    return anthropic_frame("content_block_stop", {"type": "content_block_stop", "index": idx})


class _Tool:
    __slots__ = ("a_id", "args", "closed", "emitted", "id", "name")

    def __init__(self, id: str | None) -> None:
        self.id = id  # upstream id (None until one arrives)
        self.a_id = ""  # the id we emitted
        self.name: str | None = None
        self.args: list[str] = []
        self.emitted = False  # content_block_start sent
        self.closed = False

    def args_text(self) -> str:
        return "".join(self.args)


class OpenAIToAnthropicStream:
    """Feed parsed OpenAI chunks; get Anthropic SSE bytes back."""

    def __init__(self, rctx: ResponseContext) -> None:
        self.rctx = rctx
        #: the delta field the upstream streamed its reasoning in (the A->O bridge learns it)
        self.reasoning_key: str | None = None
        self.message_id = new_message_id()
        self._started = False
        self._done = False
        self._failed = False
        self._next_index = 0
        # open block: kind in {"text", "thinking", "tool"}, its A index, and the tool key
        self._open_kind: str | None = None
        self._open_index = -1
        self._open_tool: int | None = None
        self._sig = hashlib.sha256()
        self._tools: dict[int, _Tool] = {}
        self._tool_by_id: dict[str, int] = {}
        self._last_tool: int | None = None
        self._buffered = False
        self._queue: list[tuple[str, Any]] = []
        self._finish: str | None = None
        self._matched_stop: Any = None
        self._saw_tool = False
        self._usage: dict[str, Any] | None = None
        self._out_text: list[str] = []
        # leaked <think> handling: "undecided" until the first content shows whether it starts
        # with the tag; "inside" routes content to thinking until the close tag
        self._think_state = "undecided"
        self._think_buf = ""

    # ------------------------------------------------------------------ public surface

    @property
    def done(self) -> bool:
        return self._done

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def usage(self) -> Usage:
        if self._usage is not None:
            return Usage.from_openai(self._usage)
        return Usage(
            self.rctx.input_tokens_estimate,
            self._estimated_output(),
            estimated=True,
        )

    def start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.rctx.requested_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.rctx.input_tokens_estimate,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        frame = anthropic_frame("message_start", {"type": "message_start", "message": message})
        return frame + _PING

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self.start())
        if "error" in chunk and chunk.get("error") is not None and not chunk.get("choices"):
            out.append(self._error(openai_stream_error_to_error(chunk)))
            return b"".join(out)
        u = chunk.get("usage")
        if u:
            self._usage = u
        choices = chunk.get("choices")
        if not choices:
            return b"".join(out)
        ch = choices[0]
        if not isinstance(ch, dict) or ch.get("index", 0) not in (0, None):
            # n>1 streams: only choice 0 is translated (Anthropic has no n)
            for c in choices:
                if isinstance(c, dict) and c.get("index", 0) == 0:
                    ch = c
                    break
            else:
                return b"".join(out)
        d = ch.get("delta") or ch.get("message") or {}
        key = "reasoning"
        r = d.get(key)
        if not r:
            key = "reasoning_content"
            r = d.get(key)
        if r and isinstance(r, str):
            self.reasoning_key = key
            self._think_state = "done"  # a real reasoning channel: no tag sniffing
            self._on_piece("thinking", r, out)
        c = d.get("content")
        if c:
            if isinstance(c, list):
                c = "".join(
                    p.get("text") or ""
                    for p in c
                    if isinstance(p, dict) and p.get("type") == "text"
                )
            if isinstance(c, str) and c:
                self._on_content(c, out)
        refusal = d.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._flush_think(out)
            self._on_piece("text", refusal, out)
            self._finish = self._finish or "content_filter"
        tcs = d.get("tool_calls")
        if tcs:
            self._flush_think(out)
            for tc in tcs:
                if isinstance(tc, dict):
                    self._on_tool_fragment(tc, out)
        fc = d.get("function_call")
        if isinstance(fc, dict):
            self._flush_think(out)
            self._on_tool_fragment({"index": 0, "function": fc}, out)
        fr = ch.get("finish_reason")
        if fr:
            self._finish = fr
            sr = ch.get("stop_reason")
            if sr is not None:
                self._matched_stop = sr
        return b"".join(out)

    def finish(self) -> bytes:
        """Upstream ended ([DONE] or clean EOF): close the message, or fail if it never finished."""
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self.start())
        if self._finish is None:
            out.append(self._error(ServerError("upstream stream ended early")))
            return b"".join(out)
        self._flush_think(out, final=True)
        if self._buffered:
            self._replay(out)
        self._close_open(out)
        # tools whose name arrived but were never started (name-less fragments resolved late)
        for k in sorted(self._tools):
            t = self._tools[k]
            if not t.emitted and t.name:
                self._emit_whole_tool(t, out)
        if self._next_index == 0:
            out.append(
                anthropic_frame(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            out.append(_stop_frame(0))
            self._next_index = 1
        stop_reason, stop_seq = finish_to_stop_reason(
            self._finish, self._saw_tool, self._matched_stop, self.rctx.stop_sequences
        )
        out.append(
            anthropic_frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_seq},
                    "usage": usage_to_anthropic(self.usage),
                },
            )
        )
        out.append(anthropic_frame("message_stop", {"type": "message_stop"}))
        self._done = True
        return b"".join(out)

    def fail(self, err: DragomanError) -> bytes:
        """Abort with an ``error`` event (upstream broke, timeout, client policy...)."""
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self.start())
        out.append(self._error(err))
        return b"".join(out)

    # ------------------------------------------------------------------ internals

    def _error(self, err: DragomanError) -> bytes:
        self._done = True
        self._failed = True
        return anthropic_frame(
            "error", {"type": "error", "error": {"type": err.type, "message": err.message}}
        )

    def _estimated_output(self) -> int:
        text = "".join(self._out_text)
        return estimate_text_tokens(text) if text else 0

    # ---- content with optional leaked <think> tags

    def _on_content(self, c: str, out: list[bytes]) -> None:
        st = self._think_state
        if st == "done":
            self._on_piece("text", c, out)
            return
        if st == "undecided":
            buf = self._think_buf + c
            probe = buf.lstrip()
            if not probe or (len(probe) < len(_OPEN_TAG) and _OPEN_TAG.startswith(probe)):
                self._think_buf = buf  # cannot tell yet
                return
            self._think_buf = ""
            if probe.startswith(_OPEN_TAG):
                self._think_state = "inside"
                c = probe[len(_OPEN_TAG) :]
                if not c:
                    return
            else:
                self._think_state = "done"
                self._on_piece("text", buf, out)
                return
        # inside a leaked think section: route to thinking until the close tag
        buf = self._think_buf + c
        end = buf.find(_CLOSE_TAG)
        if end >= 0:
            if end:
                self._on_piece("thinking", buf[:end], out)
            self._think_buf = ""
            self._think_state = "done"
            rest = buf[end + len(_CLOSE_TAG) :].lstrip("\n")
            if rest:
                self._on_piece("text", rest, out)
            return
        # keep a tail that may be the start of a split close tag
        keep = 0
        for n in range(min(len(_CLOSE_TAG) - 1, len(buf)), 0, -1):
            if _CLOSE_TAG.startswith(buf[-n:]):
                keep = n
                break
        emit = buf[: len(buf) - keep]
        self._think_buf = buf[len(buf) - keep :]
        if emit:
            self._on_piece("thinking", emit, out)

    def _flush_think(self, out: list[bytes], final: bool = False) -> None:
        """Something other than content arrived: settle any undecided/held content."""
        buf = self._think_buf
        st = self._think_state
        if st == "undecided":
            self._think_buf = ""
            if buf:
                self._think_state = "done"
                self._on_piece("text", buf, out)
            elif final:
                self._think_state = "done"
        elif st == "inside" and final and buf:
            self._think_buf = ""
            self._on_piece("thinking", buf, out)

    # ---- blocks

    def _on_piece(self, kind: str, s: str, out: list[bytes]) -> None:
        self._out_text.append(s)
        if self._buffered:
            self._queue.append((kind, s))
            return
        if self._open_kind != kind:
            if self._open_kind == "tool" and not self._open_tool_complete():
                self._enter_buffered()
                self._queue.append((kind, s))
                return
            self._close_open(out)
            self._start_block(kind, out)
        self._delta(kind, s, out)

    def _start_block(self, kind: str, out: list[bytes]) -> None:
        idx = self._next_index
        self._next_index += 1
        block: dict[str, Any]
        if kind == "text":
            block = {"type": "text", "text": ""}
        else:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            self._sig = hashlib.sha256()
        out.append(
            anthropic_frame(
                "content_block_start",
                {"type": "content_block_start", "index": idx, "content_block": block},
            )
        )
        self._open_kind = kind
        self._open_index = idx
        self._open_tool = None

    def _delta(self, kind: str, s: str, out: list[bytes]) -> None:
        if kind == "text":
            delta = {"type": "text_delta", "text": s}
        else:
            delta = {"type": "thinking_delta", "thinking": s}
            self._sig.update(s.encode())
        out.append(
            anthropic_frame(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._open_index, "delta": delta},
            )
        )

    def _close_open(self, out: list[bytes]) -> None:
        kind = self._open_kind
        if kind is None:
            return
        idx = self._open_index
        if kind == "thinking":
            out.append(
                anthropic_frame(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": idx,
                        "delta": {
                            "type": "signature_delta",
                            "signature": signature_from_digest(self._sig.hexdigest()),
                        },
                    },
                )
            )
        elif kind == "tool" and self._open_tool is not None:
            t = self._tools[self._open_tool]
            if not t.args_text().strip():
                out.append(self._json_delta(idx, "{}"))
            t.closed = True
        out.append(_stop_frame(idx))
        self._open_kind = None
        self._open_index = -1
        self._open_tool = None

    def _open_tool_complete(self) -> bool:
        if self._open_tool is None:
            return True
        text = self._tools[self._open_tool].args_text()
        return bool(text.strip()) and is_complete_json(text)

    def _enter_buffered(self) -> None:
        self._buffered = True

    @staticmethod
    def _json_delta(idx: int, s: str) -> bytes:
        return anthropic_frame(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": idx,
                "delta": {"type": "input_json_delta", "partial_json": s},
            },
        )

    # ---- tool calls

    def _tool_key(self, tc: dict[str, Any]) -> int:
        k = tc.get("index")
        tid = tc.get("id")
        if isinstance(k, int) and not isinstance(k, bool):
            if isinstance(tid, str) and tid and k in self._tools:
                known = self._tools[k].id
                if known is not None and known != tid:
                    # a server reusing index 0 for every call (seen with whole-call chunks)
                    if tid in self._tool_by_id:
                        return self._tool_by_id[tid]
                    return max(self._tools) + 1 if self._tools else 0
            return k
        if isinstance(tid, str) and tid:
            if tid in self._tool_by_id:
                return self._tool_by_id[tid]
            return max(self._tools) + 1 if self._tools else 0
        fn = tc.get("function") or {}
        if fn.get("name") or self._last_tool is None:
            return max(self._tools) + 1 if self._tools else 0
        return self._last_tool

    def _on_tool_fragment(self, tc: dict[str, Any], out: list[bytes]) -> None:
        k = self._tool_key(tc)
        fn = tc.get("function") or {}
        t = self._tools.get(k)
        if t is None:
            t = _Tool(None)
            self._tools[k] = t
        tid = tc.get("id")
        if isinstance(tid, str) and tid and t.id is None:
            t.id = tid
            self._tool_by_id[tid] = k
        name = fn.get("name")
        if isinstance(name, str) and name and t.name is None:
            t.name = name
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str):
            args = orjson.dumps(args).decode()  # a server sending an object, not a string
        self._last_tool = k
        if args:
            self._out_text.append(args)

        if t.emitted:
            if args:
                if self._open_kind == "tool" and self._open_tool == k:
                    t.args.append(args)
                    out.append(self._json_delta(self._open_index, args))
                elif not args.strip():
                    pass  # whitespace for a finished call: nothing to do
                else:
                    # the block is closed and cannot be reopened; record (lossy, logged upstream)
                    t.args.append(args)
            return
        if args:
            t.args.append(args)
        if t.name is None:
            return  # wait for the name (id-before-name servers)
        if self._buffered:
            self._queue.append(("tool", k))
            return
        if self._open_kind == "tool" and not self._open_tool_complete():
            # another call starts while the open one is unfinished: interleaving
            self._enter_buffered()
            self._queue.append(("tool", k))
            return
        self._close_open(out)
        self._start_tool(k, t, out)
        if t.args:
            out.append(self._json_delta(self._open_index, t.args_text()))

    def _start_tool(self, k: int, t: _Tool, out: list[bytes]) -> None:
        idx = self._next_index
        self._next_index += 1
        t.a_id = self.rctx.client_tool_id(t.id)
        name = t.name or ""
        out.append(
            anthropic_frame(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": idx,
                    "content_block": {
                        "type": "tool_use",
                        "id": t.a_id,
                        "name": self.rctx.tool_names.get(name, name),
                        "input": {},
                    },
                },
            )
        )
        t.emitted = True
        self._saw_tool = True
        self._open_kind = "tool"
        self._open_index = idx
        self._open_tool = k

    def _emit_whole_tool(self, t: _Tool, out: list[bytes]) -> None:
        k = next(key for key, v in self._tools.items() if v is t)
        self._start_tool(k, t, out)
        text = t.args_text()
        if text.strip():
            out.append(self._json_delta(self._open_index, text))
        self._close_open(out)

    def _replay(self, out: list[bytes]) -> None:
        """End of a BUFFERED stream: close the open tool, then emit the queue in order."""
        self._buffered = False
        self._close_open(out)
        queue, self._queue = self._queue, []
        for item in queue:
            kind = item[0]
            if kind == "tool":
                t = self._tools[item[1]]
                if not t.emitted and t.name:
                    self._close_open(out)
                    self._emit_whole_tool(t, out)
            else:
                if self._open_kind != kind:
                    self._close_open(out)
                    self._start_block(kind, out)
                self._delta(kind, item[1], out)
