"""Chat Completions chunk stream -> the Responses API event stream.

The invariants this state machine keeps (checked by tests/conformance/responses_sse_checks.py):

* ``response.created`` then ``response.in_progress`` first; every event carries a
  ``sequence_number`` one above the previous one, from 0;
* output items are emitted one at a time, ``output_index`` 0, 1, 2... in order: an item is
  added, receives its deltas (inside its content or summary part) and is done before the next
  one is added; the concatenated deltas always equal the ``...done`` text and the done item;
* a function call is added with its ``call_id`` and (client) name and streams its arguments;
  a custom (freeform) tool call's input is sent once the call is complete, unwrapped
  (:func:`~.tools.unwrap_custom_input`); a reasoning item is done with its sealed
  ``encrypted_content`` when the client asked for it;
* the stream ALWAYS ends with exactly one of ``response.completed`` (``finish_reason`` seen),
  ``response.incomplete`` (``length`` / ``content_filter``) or ``response.failed`` (an error
  chunk, an upstream that ends without a ``finish_reason``, or :meth:`fail`), each carrying the
  response id, every finished item in ``output`` and the usage; nothing after it.

Servers that interleave the fragments of parallel tool calls switch the machine to buffered
mode: the open call keeps its place, everything after it is queued and replayed, calls whole,
at the end (as :mod:`..stream_o2a` does).
"""

from __future__ import annotations

import time
from typing import Any, Literal, cast

import orjson

from ...errors import DragomanError, ServerError
from ...tokens import estimate_text_tokens
from ...usage import Usage
from ..common import is_complete_json
from ..errors import openai_stream_error_to_error
from .context import ResponsesContext
from .reasoning import THINKING_CARRIER, Reasoning, seal_reasoning, valid_block
from .think import ThinkSplitter
from .tools import LOCAL_SHELL, ToolRef, local_shell_action, unwrap_custom_input
from .wire import (
    failure,
    frame,
    new_id,
    reasoning_tokens_of,
    usage_from_chat,
    usage_to_responses,
)

Kind = Literal["reasoning", "text", "refusal"]
_ITEM_PREFIX = {"function": "fc_", "custom": "ctc_", LOCAL_SHELL: "lsh_"}


class _Tool:
    __slots__ = ("args", "emitted", "id", "item_id", "name", "ref", "sent")

    def __init__(self) -> None:
        self.id: str | None = None  # upstream call id
        self.name: str | None = None  # upstream (Chat) function name
        self.args: list[str] = []
        self.sent = 0  # fragments of args already streamed as deltas
        self.emitted = False
        self.item_id = ""
        self.ref: ToolRef | None = None

    def text(self) -> str:
        return "".join(self.args)


class _Open:
    """The item being streamed."""

    __slots__ = ("blocks", "id", "index", "kind", "part_kind", "parts", "text", "tool")

    def __init__(self, kind: str, index: int, id: str) -> None:
        self.kind = kind  # "reasoning" | "message" | "tool"
        self.index = index
        self.id = id
        self.text: list[str] = []  # reasoning text, or the open content part's text
        self.blocks: list[dict[str, Any]] = []  # reasoning: Anthropic thinking blocks
        self.parts: list[dict[str, Any]] = []  # message: finished content parts
        self.part_kind: str | None = None  # message: "output_text" | "refusal" open
        self.tool: int | None = None


class ChatToResponsesStream:
    """Feed parsed Chat chunks; get Responses SSE bytes back. ``emit=False`` builds the final
    :attr:`response` without framing events (the non-streamed path uses it)."""

    def __init__(self, ctx: ResponsesContext, *, emit: bool = True) -> None:
        self.ctx = ctx
        self.id = new_id("resp_")
        self.created_at = ctx.created_at if ctx.created_at is not None else int(time.time())
        #: the delta field the upstream streamed its reasoning in
        self.reasoning_key: str | None = None
        #: the final ``response`` object, once the stream has ended
        self.response: dict[str, Any] | None = None
        self._emit_frames = emit
        self._buf: list[bytes] = []
        self._seq = 0
        self._started = False
        self._done = False
        self._failed = False
        self._output: list[dict[str, Any]] = []
        self._open: _Open | None = None
        self._tools: dict[int, _Tool] = {}
        self._tool_by_id: dict[str, int] = {}
        self._last_tool: int | None = None
        self._buffered = False
        self._queue: list[tuple[str, Any]] = []
        self._finish: str | None = None
        self._usage_raw: dict[str, Any] | None = None
        self._think = ThinkSplitter()
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
        if self._usage_raw is not None:
            return usage_from_chat(self._usage_raw)
        text = "".join(self._out_text)
        return Usage(
            self.ctx.input_tokens_estimate,
            estimate_text_tokens(text) if text else 0,
            estimated=True,
        )

    def start(self) -> bytes:
        if not self._started:
            self._started = True
            base = self._response("in_progress", [])
            self._event({"type": "response.created", "response": base})
            self._event({"type": "response.in_progress", "response": base})
        return self._drain()

    def ping(self) -> bytes:
        """An SSE comment that keeps an idle stream alive (a model thinking for minutes behind a
        bridge that sends nothing meanwhile; Codex gives up after 300 s of silence). Every SSE
        reader skips comments; nothing once the stream is over or before it starts."""
        return b": keepalive\n\n" if self._started and not self._done else b""

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done:
            return b""
        self.start()
        if chunk.get("error") is not None and not chunk.get("choices"):
            return self.fail(openai_stream_error_to_error(chunk))
        u = chunk.get("usage")
        if isinstance(u, dict) and u:
            self._usage_raw = u
        choices = chunk.get("choices")
        ch = _choice0(choices) if isinstance(choices, list) else None
        if ch is None:
            return self._drain()
        d = ch.get("delta") or ch.get("message") or {}
        if not isinstance(d, dict):
            d = {}
        for key in ("reasoning", "reasoning_content"):
            r = d.get(key)
            if isinstance(r, str) and r:
                self.reasoning_key = key
                self._think.stop()
                self._piece("reasoning", r)
                break
        blocks = d.get(THINKING_CARRIER)
        if isinstance(blocks, list) and blocks:
            self._settle_think()
            self._carrier([b for b in blocks if valid_block(b)])
        c = d.get("content")
        if isinstance(c, list):
            c = "".join(
                p.get("text") or ""
                for p in c
                if isinstance(p, dict) and p.get("type") in ("text", "output_text")
            )
        if isinstance(c, str) and c:
            for kind, s in self._think.feed(c):
                self._piece(kind, s)
        refusal = d.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._settle_think()
            self._piece("refusal", refusal)
        tcs = d.get("tool_calls")
        if isinstance(tcs, list) and tcs:
            self._settle_think()
            for tc in tcs:
                if isinstance(tc, dict):
                    self._on_tool_fragment(tc)
        fc = d.get("function_call")
        if isinstance(fc, dict):
            self._settle_think()
            self._on_tool_fragment({"index": 0, "function": fc})
        fr = ch.get("finish_reason")
        if isinstance(fr, str) and fr:
            self._finish = fr
        return self._drain()

    def finish(self) -> bytes:
        """The upstream ended ([DONE] or EOF): the terminal event, ``response.failed`` when no
        ``finish_reason`` ever came."""
        if self._done:
            return b""
        self.start()
        if self._finish is None:
            return self.fail(ServerError("upstream stream ended early"))
        self._settle_think()
        if self._buffered:
            self._replay()
        truncated = self._finish == "length"
        self._close_open("incomplete" if truncated else "completed")
        for k in sorted(self._tools):  # named late (id-before-name servers), never started
            t = self._tools[k]
            if not t.emitted and t.name:
                self._emit_whole_tool(k, "incomplete" if truncated else "completed")
        if self._finish in ("length", "content_filter"):
            reason = "max_output_tokens" if truncated else "content_filter"
            self._terminal("response.incomplete", "incomplete", incomplete={"reason": reason})
        else:
            self._terminal("response.completed", "completed")
        return self._drain()

    def fail(self, err: DragomanError) -> bytes:
        """End with ``response.failed`` (upstream error, timeout, client policy...)."""
        if self._done:
            return b""
        self.start()
        self._settle_think()
        self._close_open("incomplete")
        self._failed = True
        self._terminal("response.failed", "failed", error=failure(err))
        return self._drain()

    # ------------------------------------------------------------------ events

    def _event(self, payload: dict[str, Any]) -> None:
        payload["sequence_number"] = self._seq
        self._seq += 1
        if self._emit_frames:
            self._buf.append(frame(payload))

    def _drain(self) -> bytes:
        if not self._buf:
            return b""
        out = b"".join(self._buf)
        self._buf = []
        return out

    def _response(
        self,
        status: str,
        output: list[dict[str, Any]],
        *,
        usage: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        incomplete: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        echo = self.ctx.echo
        r: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": echo.get("instructions"),
            "max_output_tokens": echo.get("max_output_tokens"),
            "model": self.ctx.requested_model,
            "output": output,
            "parallel_tool_calls": echo.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": echo.get("reasoning", {"effort": None, "summary": None}),
            "store": False,
            "temperature": echo.get("temperature"),
            "text": echo.get("text", {"format": {"type": "text"}}),
            "tool_choice": echo.get("tool_choice", "auto"),
            "tools": echo.get("tools", []),
            "top_p": echo.get("top_p"),
            "truncation": "disabled",
            "usage": usage,
            "metadata": echo.get("metadata") or {},
        }
        for k in ("prompt_cache_key", "safety_identifier", "service_tier", "user"):
            if k in echo:
                r[k] = echo[k]
        return r

    def _terminal(self, etype: str, status: str, **kw: Any) -> None:
        usage = usage_to_responses(self.usage, reasoning_tokens_of(self._usage_raw))
        r = self._response(status, list(self._output), usage=usage, **kw)
        if status == "completed":
            r["completed_at"] = (
                self.ctx.created_at if self.ctx.created_at is not None else int(time.time())
            )
        self.response = r
        self._event({"type": etype, "response": r})
        self._done = True
        self._queue = []
        self._buffered = False

    # ------------------------------------------------------------------ pieces of content

    def _settle_think(self) -> None:
        """Something other than content arrives: content held to decide on a ``<think>`` tag
        goes out first."""
        for kind, s in self._think.flush():
            self._piece(kind, s)

    def _piece(self, kind: Kind, s: str) -> None:
        self._out_text.append(s)
        if self._buffered:
            self._queue.append((kind, s))
            return
        o = self._open
        if o is not None and _belongs(o.kind, kind):
            self._delta(o, kind, s)
            return
        if o is not None and o.kind == "tool" and not self._tool_complete(o):
            self._buffered = True
            self._queue.append((kind, s))
            return
        self._close_open("completed")
        o = self._start_item("reasoning" if kind == "reasoning" else "message")
        self._delta(o, kind, s)

    def _carrier(self, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if self._buffered:
            self._queue.append(("carrier", blocks))
            return
        o = self._open
        if o is None or o.kind != "reasoning":
            if o is not None and o.kind == "tool" and not self._tool_complete(o):
                self._buffered = True
                self._queue.append(("carrier", blocks))
                return
            self._close_open("completed")
            o = self._start_item("reasoning")
        o.blocks.extend(blocks)

    def _start_item(self, kind: str) -> _Open:
        idx = len(self._output)
        if kind == "reasoning":
            o = _Open(kind, idx, new_id("rs_"))
            item: dict[str, Any] = {"id": o.id, "type": "reasoning", "summary": []}
        else:
            o = _Open(kind, idx, new_id("msg_"))
            item = {
                "id": o.id,
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
        self._event({"type": "response.output_item.added", "output_index": idx, "item": item})
        self._open = o
        return o

    def _delta(self, o: _Open, kind: Kind, s: str) -> None:
        ref = {"item_id": o.id, "output_index": o.index}
        if o.kind == "reasoning":
            summary = self.ctx.summary_mode
            if not o.text:
                if summary:
                    self._event(
                        {
                            "type": "response.reasoning_summary_part.added",
                            **ref,
                            "summary_index": 0,
                            "part": {"type": "summary_text", "text": ""},
                        }
                    )
                else:
                    self._event(
                        {
                            "type": "response.content_part.added",
                            **ref,
                            "content_index": 0,
                            "part": {"type": "reasoning_text", "text": ""},
                        }
                    )
            o.text.append(s)
            if summary:
                self._event(
                    {
                        "type": "response.reasoning_summary_text.delta",
                        **ref,
                        "summary_index": 0,
                        "delta": s,
                    }
                )
            else:
                self._event(
                    {"type": "response.reasoning_text.delta", **ref, "content_index": 0, "delta": s}
                )
            return
        want = "output_text" if kind == "text" else "refusal"
        if o.part_kind != want:
            self._close_part(o)
            o.part_kind = want
            part: dict[str, Any] = (
                {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                if want == "output_text"
                else {"type": "refusal", "refusal": ""}
            )
            self._event(
                {
                    "type": "response.content_part.added",
                    **ref,
                    "content_index": len(o.parts),
                    "part": part,
                }
            )
        o.text.append(s)
        ci = len(o.parts)
        if want == "output_text":
            self._event(
                {
                    "type": "response.output_text.delta",
                    **ref,
                    "content_index": ci,
                    "delta": s,
                    "logprobs": [],
                }
            )
        else:
            self._event({"type": "response.refusal.delta", **ref, "content_index": ci, "delta": s})

    def _close_part(self, o: _Open) -> None:
        if o.part_kind is None:
            return
        ref = {"item_id": o.id, "output_index": o.index, "content_index": len(o.parts)}
        text = "".join(o.text)
        part: dict[str, Any]
        if o.part_kind == "output_text":
            self._event({"type": "response.output_text.done", **ref, "text": text, "logprobs": []})
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
        else:
            self._event({"type": "response.refusal.done", **ref, "refusal": text})
            part = {"type": "refusal", "refusal": text}
        self._event({"type": "response.content_part.done", **ref, "part": part})
        o.parts.append(part)
        o.part_kind = None
        o.text = []

    def _close_open(self, status: str) -> None:
        o = self._open
        if o is None:
            return
        self._open = None
        if o.kind == "tool":
            assert o.tool is not None
            self._close_tool(o, self._tools[o.tool], status)
            return
        item: dict[str, Any]
        if o.kind == "message":
            self._close_part(o)
            item = {
                "id": o.id,
                "type": "message",
                "status": status,
                "content": o.parts,
                "role": "assistant",
            }
        else:
            item = self._close_reasoning(o)
        self._done_item(o.index, item)

    def _close_reasoning(self, o: _Open) -> dict[str, Any]:
        text = "".join(o.text)
        ref = {"item_id": o.id, "output_index": o.index}
        item: dict[str, Any] = {"id": o.id, "type": "reasoning", "summary": []}
        if text:
            if self.ctx.summary_mode:
                part = {"type": "summary_text", "text": text}
                self._event(
                    {
                        "type": "response.reasoning_summary_text.done",
                        **ref,
                        "summary_index": 0,
                        "text": text,
                    }
                )
                self._event(
                    {
                        "type": "response.reasoning_summary_part.done",
                        **ref,
                        "summary_index": 0,
                        "part": part,
                    }
                )
                item["summary"] = [part]
            else:
                part = {"type": "reasoning_text", "text": text}
                self._event(
                    {
                        "type": "response.reasoning_text.done",
                        **ref,
                        "content_index": 0,
                        "text": text,
                    }
                )
                self._event(
                    {"type": "response.content_part.done", **ref, "content_index": 0, "part": part}
                )
                item["content"] = [part]
        sealer = self.ctx.sealer
        if self.ctx.include_encrypted and sealer is not None:
            item["encrypted_content"] = seal_reasoning(sealer, Reasoning(text, tuple(o.blocks)))
        return item

    def _done_item(self, index: int, item: dict[str, Any]) -> None:
        self._output.append(item)
        self._event({"type": "response.output_item.done", "output_index": index, "item": item})

    # ------------------------------------------------------------------ tool calls

    def _tool_key(self, tc: dict[str, Any]) -> int:
        k = tc.get("index")
        tid = tc.get("id")
        if isinstance(k, int) and not isinstance(k, bool):
            if isinstance(tid, str) and tid and k in self._tools:
                known = self._tools[k].id
                if known is not None and known != tid:
                    # a server reusing index 0 for every call (whole-call chunks)
                    if tid in self._tool_by_id:
                        return self._tool_by_id[tid]
                    return max(self._tools) + 1
            return k
        if isinstance(tid, str) and tid:
            if tid in self._tool_by_id:
                return self._tool_by_id[tid]
            return max(self._tools) + 1 if self._tools else 0
        fn = tc.get("function") or {}
        if (isinstance(fn, dict) and fn.get("name")) or self._last_tool is None:
            return max(self._tools) + 1 if self._tools else 0
        return self._last_tool

    def _on_tool_fragment(self, tc: dict[str, Any]) -> None:
        k = self._tool_key(tc)
        fn: dict[str, Any] = tc.get("function") or tc.get("custom") or {}
        if not isinstance(fn, dict):
            fn = {}
        t = self._tools.get(k)
        if t is None:
            t = self._tools[k] = _Tool()
        tid = tc.get("id")
        if isinstance(tid, str) and tid and t.id is None:
            t.id = tid
            self._tool_by_id[tid] = k
        name = fn.get("name")
        if isinstance(name, str) and name and t.name is None:
            t.name = name
        args = fn.get("arguments", fn.get("input"))
        if args is not None and not isinstance(args, str):
            args = orjson.dumps(args).decode()  # a server sending an object, not a string
        self._last_tool = k
        if args:
            self._out_text.append(args)
            t.args.append(args)
        if t.emitted:
            o = self._open
            if args and o is not None and o.kind == "tool" and o.tool == k and not self._buffered:
                self._stream_args(o, t)
            return  # arguments for a call already closed cannot be sent (a broken server)
        if t.name is None:
            return  # wait for the name (id-before-name servers)
        if self._buffered:
            self._queue.append(("tool", k))
            return
        o = self._open
        if o is not None and o.kind == "tool" and not self._tool_complete(o):
            self._buffered = True  # another call starts while the open one is unfinished
            self._queue.append(("tool", k))
            return
        self._close_open("completed")
        self._start_tool(k, t)

    def _tool_complete(self, o: _Open) -> bool:
        assert o.tool is not None
        text = self._tools[o.tool].text()
        return bool(text.strip()) and is_complete_json(text)

    def _start_tool(self, k: int, t: _Tool) -> _Open:
        assert t.name is not None
        ref = self.ctx.tools.ref(t.name)
        t.ref = ref
        t.emitted = True
        if t.id is None:
            t.id = new_id("call_")
        idx = len(self._output)
        o = _Open("tool", idx, new_id(_ITEM_PREFIX[ref.kind]))
        o.tool = k
        t.item_id = o.id
        self._event(
            {
                "type": "response.output_item.added",
                "output_index": idx,
                "item": self._tool_item(t, ref, "in_progress", None),
            }
        )
        self._open = o
        self._stream_args(o, t)
        return o

    def _tool_item(self, t: _Tool, ref: ToolRef, status: str, final: str | None) -> dict[str, Any]:
        item: dict[str, Any]
        if ref.kind == "custom":
            item = {
                "id": t.item_id,
                "type": "custom_tool_call",
                "call_id": t.id,
                "name": ref.name,
                "input": final or "",
            }
        elif ref.kind == LOCAL_SHELL:
            action = local_shell_action(final or "")
            item = {
                "id": t.item_id,
                "type": "local_shell_call",
                "call_id": t.id,
                "status": status,
                "action": action,
            }
        else:
            item = {
                "id": t.item_id,
                "type": "function_call",
                "status": status,
                "arguments": final or "",
                "call_id": t.id,
                "name": ref.name,
            }
        if ref.namespace is not None:
            item["namespace"] = ref.namespace
        return item

    def _stream_args(self, o: _Open, t: _Tool) -> None:
        assert t.ref is not None
        if t.ref.kind != "function":
            return  # freeform input is sent whole, once the call is complete
        if len(t.args) > t.sent:  # the fragments not sent yet (linear in the arguments' size)
            self._event(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": o.id,
                    "output_index": o.index,
                    "delta": "".join(t.args[t.sent :]),
                }
            )
            t.sent = len(t.args)

    def _close_tool(self, o: _Open, t: _Tool, status: str) -> None:
        assert t.ref is not None
        ref = {"item_id": o.id, "output_index": o.index}
        kind = t.ref.kind
        if kind == "function":
            self._stream_args(o, t)
            args = t.text()
            if not args.strip():  # a call without arguments means "{}", which clients parse
                self._event(
                    {"type": "response.function_call_arguments.delta", **ref, "delta": "{}"}
                )
                args += "{}"
            self._event(
                {
                    "type": "response.function_call_arguments.done",
                    **ref,
                    "arguments": args,
                    "name": t.ref.name,
                }
            )
            final = args
        elif kind == "custom":
            final = unwrap_custom_input(t.text())
            if final:
                self._event(
                    {"type": "response.custom_tool_call_input.delta", **ref, "delta": final}
                )
            self._event({"type": "response.custom_tool_call_input.done", **ref, "input": final})
        else:
            final = t.text()
        self._done_item(o.index, self._tool_item(t, t.ref, status, final))

    def _emit_whole_tool(self, k: int, status: str) -> None:
        o = self._start_tool(k, self._tools[k])
        self._open = None
        self._close_tool(o, self._tools[k], status)

    def _replay(self) -> None:
        """End of a buffered stream: close the open call, then emit the queue in order."""
        self._buffered = False
        self._close_open("completed")
        queue, self._queue = self._queue, []
        for kind, payload in queue:
            if kind == "tool":
                t = self._tools[payload]
                if not t.emitted and t.name:
                    self._close_open("completed")
                    self._emit_whole_tool(payload, "completed")
            elif kind == "carrier":
                self._carrier(payload)
            else:
                piece = cast(Kind, kind)
                o = self._open
                if o is not None and _belongs(o.kind, piece):
                    self._delta(o, piece, payload)
                else:
                    self._close_open("completed")
                    item = self._start_item("reasoning" if piece == "reasoning" else "message")
                    self._delta(item, piece, payload)


def _belongs(item_kind: str, piece: str) -> bool:
    return (item_kind == "reasoning") == (piece == "reasoning")


def _choice0(choices: list[Any]) -> dict[str, Any] | None:
    """Choice 0 (Responses has no ``n``)."""
    for c in choices:
        if isinstance(c, dict) and c.get("index", 0) in (0, None):
            return c
    return None
