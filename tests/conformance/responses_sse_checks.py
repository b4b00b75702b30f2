"""Strict wire checks for OpenAI Responses API event streams (``POST /v1/responses``).

Written from the API definition (the ``openai`` SDK's ``types/responses`` and the event order
OpenAI documents), independently of dragoman's emitter, and stricter than any client: the SDK's
accumulator ignores most inconsistencies and Codex reads only a few events. ``check_responses_sse``
raises ``AssertionError`` naming the frame that breaks a rule, and rebuilds the response from the
frames alone so tests can compare it with what the terminal event claims.

The rules:

* every frame has an ``event:`` line equal to ``data.type`` and one line of JSON; no ``[DONE]``;
* ``sequence_number`` is 0 on the first event and one more on each next one;
* ``response.created`` first (``response.id`` ``resp_...``, ``status`` ``in_progress`` or
  ``queued``, ``output: []``); ``response.in_progress``/``queued`` may follow; every lifecycle
  event names the same response id;
* output items: ``output_item.added`` with ``output_index`` 0, 1, 2... in order; with
  ``sequential`` (OpenAI's behaviour, the default) one item at a time; every event that targets
  an item names its ``item_id`` and ``output_index``, and the item must be open; content parts,
  summary parts and their deltas likewise (``content_index``/``summary_index`` in order, one
  open at a time); each ``...done`` text equals the concatenated deltas;
* ``output_item.done`` closes the open item with the same id, type, ``call_id`` and name, and
  content equal to what was streamed (function arguments, custom tool input, message parts,
  reasoning summary and text); function calls get ``function_call_arguments.done``, custom tool
  calls ``custom_tool_call_input.done``;
* the stream ends with exactly one terminal event, the last frame: ``response.completed``
  (status ``completed``), ``response.incomplete`` (status ``incomplete``,
  ``incomplete_details.reason``) or ``response.failed`` (status ``failed``, ``error.code`` and
  ``error.message``), and with ``allow_error`` an ``error`` event; every item added is done by
  then, and ``response.output`` equals the done items in order; ``usage`` (when present) is
  well formed with ``total_tokens = input_tokens + output_tokens``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tests.conformance.sse_checks import Frame, split_frames

TERMINAL = {"response.completed", "response.incomplete", "response.failed"}
LIFECYCLE = {"response.created", "response.in_progress", "response.queued", *TERMINAL}
ITEM_TYPES = {"message", "function_call", "custom_tool_call", "reasoning", "local_shell_call"}
INCOMPLETE_REASONS = {"max_output_tokens", "content_filter", "max_messages", "steered"}
_RESP_ID = re.compile(r"^resp_[A-Za-z0-9_-]+$")


@dataclass
class CheckedResponse:
    """What a Responses stream said, rebuilt from its frames."""

    events: list[dict[str, Any]] = field(default_factory=list)
    #: the items as their ``output_item.done`` events gave them, in output order
    items: list[dict[str, Any]] = field(default_factory=list)
    #: the terminal event's type and ``response``
    terminal: str | None = None
    response: dict[str, Any] = field(default_factory=dict)
    error_event: dict[str, Any] | None = None

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    @property
    def text(self) -> str:
        return "".join(
            p["text"]
            for it in self.items
            if it["type"] == "message"
            for p in it["content"]
            if p["type"] == "output_text"
        )

    def of_type(self, item_type: str) -> list[dict[str, Any]]:
        return [it for it in self.items if it["type"] == item_type]


def _loads(fr: Frame, i: int) -> dict[str, Any]:
    assert "\n" not in fr.data, f"frame #{i}: multi-line data: {fr.raw!r}"
    try:
        obj = json.loads(fr.data)
    except json.JSONDecodeError as e:
        raise AssertionError(f"frame #{i}: data is not JSON ({e}): {fr.raw!r}") from None
    assert isinstance(obj, dict), f"frame #{i}: data is not an object: {fr.raw!r}"
    return obj


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_usage(u: Any, where: str) -> None:
    assert isinstance(u, dict), f"{where}: usage is not an object: {u!r}"
    for k in ("input_tokens", "output_tokens", "total_tokens"):
        assert _int(u.get(k)), f"{where}: usage.{k} = {u.get(k)!r}"
    assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"], (
        f"{where}: usage total_tokens is not input + output: {u!r}"
    )
    itd, otd = u.get("input_tokens_details"), u.get("output_tokens_details")
    assert isinstance(itd, dict) and _int(itd.get("cached_tokens")), f"{where}: {u!r}"
    assert isinstance(otd, dict) and _int(otd.get("reasoning_tokens")), f"{where}: {u!r}"
    assert itd["cached_tokens"] <= u["input_tokens"], f"{where}: cached > input: {u!r}"


class _Item:
    def __init__(self, index: int, item: dict[str, Any]) -> None:
        self.index = index
        self.item = item
        self.id = item.get("id")
        self.type = item.get("type")
        self.parts: list[dict[str, Any]] = []  # message / reasoning content parts, done
        self.summary: list[dict[str, Any]] = []  # reasoning summary parts, done
        self.open_part: tuple[str, int, str] | None = None  # (kind, index, part type)
        self.buf = ""
        self.args = ""
        self.args_done: str | None = None
        self.input = ""
        self.input_done: str | None = None


def _check_added(it: dict[str, Any], where: str) -> None:
    t = it.get("type")
    assert t in ITEM_TYPES, f"{where}: unknown item type {t!r}"
    assert isinstance(it.get("id"), str) and it["id"], f"{where}: item without id: {it!r}"
    if t == "message":
        assert it.get("role") == "assistant", f"{where}: {it!r}"
        assert it.get("content") == [], f"{where}: message added with content: {it!r}"
        assert it.get("status") == "in_progress", f"{where}: {it!r}"
    elif t in ("function_call", "custom_tool_call", "local_shell_call"):
        assert isinstance(it.get("call_id"), str) and it["call_id"], f"{where}: no call_id: {it!r}"
        if t != "local_shell_call":
            assert isinstance(it.get("name"), str) and it["name"], f"{where}: no name: {it!r}"
        if t == "function_call":
            assert it.get("arguments") == "", f"{where}: arguments before deltas: {it!r}"
            assert it.get("status") == "in_progress", f"{where}: {it!r}"
        if t == "custom_tool_call":
            assert it.get("input") == "", f"{where}: input before deltas: {it!r}"
    elif t == "reasoning":
        assert it.get("summary") == [], f"{where}: reasoning added with a summary: {it!r}"


def _check_done(o: _Item, it: dict[str, Any], where: str) -> None:
    assert it.get("id") == o.id and it.get("type") == o.type, (
        f"{where}: done item {it.get('type')}/{it.get('id')} is not the open {o.type}/{o.id}"
    )
    assert o.open_part is None, f"{where}: item done while part {o.open_part} is open"
    t = o.type
    if t == "message":
        assert it.get("content") == o.parts, (
            f"{where}: message content {it.get('content')!r} != streamed parts {o.parts!r}"
        )
        assert it.get("status") in ("completed", "incomplete"), f"{where}: {it!r}"
        assert it.get("role") == "assistant", f"{where}: {it!r}"
    elif t in ("function_call", "custom_tool_call", "local_shell_call"):
        assert it.get("call_id") == o.item.get("call_id"), f"{where}: call_id changed"
        assert it.get("name") == o.item.get("name"), f"{where}: name changed"
        if t == "function_call":
            assert o.args_done is not None, f"{where}: no function_call_arguments.done"
            assert it.get("arguments") == o.args_done, f"{where}: arguments != done arguments"
            assert it.get("status") in ("completed", "incomplete"), f"{where}: {it!r}"
        elif t == "custom_tool_call":
            assert o.input_done is not None, f"{where}: no custom_tool_call_input.done"
            assert it.get("input") == o.input_done, f"{where}: input != done input"
        else:
            action = it.get("action")
            assert isinstance(action, dict) and action.get("type") == "exec", f"{where}: {it!r}"
            assert isinstance(action.get("command"), list), f"{where}: {it!r}"
    elif t == "reasoning":
        assert it.get("summary") == o.summary, (
            f"{where}: summary {it.get('summary')!r} != streamed {o.summary!r}"
        )
        content = it.get("content")
        if o.parts:
            assert content == o.parts, f"{where}: content {content!r} != streamed {o.parts!r}"
        else:
            assert not content, f"{where}: reasoning content never streamed: {content!r}"
        enc = it.get("encrypted_content")
        assert enc is None or (isinstance(enc, str) and enc), f"{where}: encrypted_content {enc!r}"


def check_responses_sse(
    raw: bytes, *, sequential: bool = True, allow_error: bool = False
) -> CheckedResponse:
    frames = split_frames(raw)
    assert frames, "empty stream"
    out = CheckedResponse()
    resp_id: str | None = None
    items: dict[int, _Item] = {}
    open_items: list[int] = []
    ended = False
    for i, fr in enumerate(frames):
        where = f"frame #{i}"
        assert not ended, f"{where}: frame after the terminal event: {fr.raw!r}"
        assert fr.data != "[DONE]", f"{where}: [DONE] in a Responses stream"
        assert fr.event is not None, f"{where}: no event: line: {fr.raw!r}"
        ev = _loads(fr, i)
        t = ev.get("type")
        assert t == fr.event, f"{where}: event {fr.event!r} but data.type {t!r}"
        where = f"frame #{i} ({t})"
        assert ev.get("sequence_number") == i, (
            f"{where}: sequence_number {ev.get('sequence_number')!r}, expected {i}"
        )
        out.events.append(ev)
        if i == 0:
            assert t == "response.created", f"first event is {t!r}, not response.created"
        if t in LIFECYCLE:
            r = ev.get("response")
            assert isinstance(r, dict), f"{where}: no response object"
            assert r.get("object") == "response", f"{where}: object {r.get('object')!r}"
            if t == "response.created":
                assert resp_id is None, f"{where}: second response.created"
                rid = r.get("id")
                assert isinstance(rid, str) and _RESP_ID.match(rid), f"{where}: id {rid!r}"
                resp_id = rid
                assert r.get("status") in ("in_progress", "queued"), f"{where}: {r.get('status')}"
                assert r.get("output") == [], f"{where}: output not empty"
            else:
                assert r.get("id") == resp_id, f"{where}: response id {r.get('id')!r} changed"
            assert isinstance(r.get("model"), str) and r["model"], f"{where}: no model"
            assert isinstance(r.get("created_at"), int | float), f"{where}: no created_at"
            if t in ("response.in_progress", "response.queued"):
                assert not open_items and not items, f"{where}: after output began"
                assert r.get("status") == t.split(".")[1], f"{where}: status {r.get('status')}"
            if t in TERMINAL:
                ended = True
                out.terminal = t
                out.response = r
                status = {
                    "response.completed": "completed",
                    "response.incomplete": "incomplete",
                    "response.failed": "failed",
                }[t]
                assert r.get("status") == status, f"{where}: status {r.get('status')!r}"
                assert not open_items, f"{where}: items still open: {open_items}"
                assert r.get("output") == out.items, (
                    f"{where}: response.output differs from the done items:\n"
                    f"{r.get('output')!r}\n!=\n{out.items!r}"
                )
                if r.get("usage") is not None or t == "response.completed":
                    check_usage(r.get("usage"), where)
                if t == "response.incomplete":
                    det = r.get("incomplete_details")
                    assert isinstance(det, dict) and det.get("reason") in INCOMPLETE_REASONS, (
                        f"{where}: incomplete_details {det!r}"
                    )
                else:
                    assert r.get("incomplete_details") is None, f"{where}: incomplete_details"
                if t == "response.failed":
                    err = r.get("error")
                    assert isinstance(err, dict), f"{where}: failed without error"
                    assert isinstance(err.get("code"), str) and err["code"], f"{where}: {err!r}"
                    assert isinstance(err.get("message"), str) and err["message"], (
                        f"{where}: {err!r}"
                    )
                else:
                    assert r.get("error") is None, f"{where}: error {r.get('error')!r}"
            continue
        if t == "error":
            assert allow_error, f"{where}: error event: {ev!r}"
            assert isinstance(ev.get("message"), str), f"{where}: {ev!r}"
            out.error_event = ev
            ended = True
            continue
        assert resp_id is not None, f"{where}: before response.created"
        if t == "response.output_item.added":
            idx = ev.get("output_index")
            assert idx == len(items), f"{where}: output_index {idx}, expected {len(items)}"
            if sequential:
                assert not open_items, f"{where}: item {open_items} still open"
            it = ev.get("item")
            assert isinstance(it, dict), f"{where}: no item"
            _check_added(it, where)
            assert all(o.id != it["id"] for o in items.values()), f"{where}: duplicate item id"
            items[idx] = _Item(idx, it)
            open_items.append(idx)
            continue
        idx = ev.get("output_index")
        assert idx in open_items, f"{where}: output_index {idx!r} is not an open item"
        o = items[idx]
        if t == "response.output_item.done":
            it = ev.get("item")
            assert isinstance(it, dict), f"{where}: no item"
            _check_done(o, it, where)
            open_items.remove(idx)
            assert len(out.items) == idx, f"{where}: items done out of order"
            out.items.append(it)
            continue
        assert ev.get("item_id") == o.id, f"{where}: item_id {ev.get('item_id')!r} != {o.id!r}"
        _check_item_event(o, t, ev, where)
    assert ended, "the stream ended without response.completed/incomplete/failed"
    return out


def _part_start(o: _Item, kind: str, index_key: str, ev: dict[str, Any], where: str) -> None:
    assert o.open_part is None, f"{where}: part {o.open_part} still open"
    n = len(o.summary) if kind == "summary" else len(o.parts)
    assert ev.get(index_key) == n, f"{where}: {index_key} {ev.get(index_key)!r}, expected {n}"
    part = ev.get("part")
    assert isinstance(part, dict), f"{where}: no part"
    pt = part.get("type")
    if kind == "summary":
        assert o.type == "reasoning" and pt == "summary_text", f"{where}: {pt!r} in {o.type}"
    elif o.type == "message":
        assert pt in ("output_text", "refusal"), f"{where}: part {pt!r} in a message"
    else:
        assert o.type == "reasoning" and pt == "reasoning_text", f"{where}: {pt!r} in {o.type}"
    body = part.get("refusal" if pt == "refusal" else "text")
    assert body == "", f"{where}: part starts non-empty: {part!r}"
    if pt == "output_text":
        assert part.get("annotations") == [], f"{where}: {part!r}"
    o.open_part = (kind, n, pt)
    o.buf = ""


def _part_delta(
    o: _Item, kind: str, pt: str, index_key: str, ev: dict[str, Any], where: str
) -> None:
    op = o.open_part
    assert op is not None and op[0] == kind and op[2] == pt, f"{where}: no open {pt} part ({op})"
    assert ev.get(index_key) == op[1], f"{where}: {index_key} {ev.get(index_key)} != {op[1]}"
    d = ev.get("delta")
    assert isinstance(d, str), f"{where}: delta {d!r}"
    o.buf += d


def _part_text_done(
    o: _Item, kind: str, pt: str, index_key: str, key: str, ev: dict[str, Any], where: str
) -> None:
    op = o.open_part
    assert op is not None and op[0] == kind and op[2] == pt, f"{where}: no open {pt} part"
    assert ev.get(index_key) == op[1], f"{where}: {index_key} mismatch"
    assert ev.get(key) == o.buf, f"{where}: {key} {ev.get(key)!r} != deltas {o.buf!r}"
    o.open_part = (kind, op[1], pt + ":done")


def _part_done(o: _Item, kind: str, index_key: str, ev: dict[str, Any], where: str) -> None:
    op = o.open_part
    assert op is not None and op[0] == kind and op[2].endswith(":done"), (
        f"{where}: part done before its text done ({op})"
    )
    assert ev.get(index_key) == op[1], f"{where}: {index_key} mismatch"
    part = ev.get("part")
    pt = op[2][: -len(":done")]
    assert isinstance(part, dict) and part.get("type") == pt, f"{where}: part {part!r}"
    body = part.get("refusal" if pt == "refusal" else "text")
    assert body == o.buf, f"{where}: part text {body!r} != deltas {o.buf!r}"
    if pt == "output_text":
        assert part.get("annotations") == [], f"{where}: {part!r}"
    (o.summary if kind == "summary" else o.parts).append(part)
    o.open_part = None


def _check_item_event(o: _Item, t: str, ev: dict[str, Any], where: str) -> None:
    if t == "response.content_part.added":
        _part_start(o, "content", "content_index", ev, where)
    elif t == "response.content_part.done":
        _part_done(o, "content", "content_index", ev, where)
    elif t == "response.output_text.delta":
        assert isinstance(ev.get("logprobs"), list), f"{where}: logprobs {ev.get('logprobs')!r}"
        _part_delta(o, "content", "output_text", "content_index", ev, where)
    elif t == "response.output_text.done":
        _part_text_done(o, "content", "output_text", "content_index", "text", ev, where)
    elif t == "response.refusal.delta":
        _part_delta(o, "content", "refusal", "content_index", ev, where)
    elif t == "response.refusal.done":
        _part_text_done(o, "content", "refusal", "content_index", "refusal", ev, where)
    elif t == "response.reasoning_text.delta":
        _part_delta(o, "content", "reasoning_text", "content_index", ev, where)
    elif t == "response.reasoning_text.done":
        _part_text_done(o, "content", "reasoning_text", "content_index", "text", ev, where)
    elif t == "response.reasoning_summary_part.added":
        _part_start(o, "summary", "summary_index", ev, where)
    elif t == "response.reasoning_summary_part.done":
        _part_done(o, "summary", "summary_index", ev, where)
    elif t == "response.reasoning_summary_text.delta":
        _part_delta(o, "summary", "summary_text", "summary_index", ev, where)
    elif t == "response.reasoning_summary_text.done":
        _part_text_done(o, "summary", "summary_text", "summary_index", "text", ev, where)
    elif t == "response.function_call_arguments.delta":
        assert o.type == "function_call", f"{where}: arguments for a {o.type}"
        assert o.args_done is None, f"{where}: delta after arguments.done"
        assert isinstance(ev.get("delta"), str), f"{where}: delta {ev.get('delta')!r}"
        o.args += ev["delta"]
    elif t == "response.function_call_arguments.done":
        assert o.type == "function_call", f"{where}: arguments for a {o.type}"
        assert o.args_done is None, f"{where}: second arguments.done"
        assert ev.get("arguments") == o.args, (
            f"{where}: arguments {ev.get('arguments')!r} != deltas {o.args!r}"
        )
        o.args_done = o.args
    elif t == "response.custom_tool_call_input.delta":
        assert o.type == "custom_tool_call", f"{where}: input for a {o.type}"
        assert o.input_done is None, f"{where}: delta after input.done"
        assert isinstance(ev.get("delta"), str), f"{where}: delta {ev.get('delta')!r}"
        o.input += ev["delta"]
    elif t == "response.custom_tool_call_input.done":
        assert o.type == "custom_tool_call", f"{where}: input for a {o.type}"
        assert o.input_done is None, f"{where}: second input.done"
        assert ev.get("input") == o.input, f"{where}: input {ev.get('input')!r} != deltas"
        o.input_done = o.input
    else:
        raise AssertionError(f"{where}: unexpected event type {t!r}")


# ---------------------------------------------------------------------------- SDK cross-check


@functools.cache
def _event_adapter() -> Any:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    return TypeAdapter(ResponseStreamEvent)


def validate_with_sdk(events: list[dict[str, Any]]) -> None:
    """Every event parses as the ``openai`` SDK's ``ResponseStreamEvent`` (strict pydantic
    validation), and the SDK's own stream state machine accumulates them into a final
    response equal to the terminal one. Failure codes Codex reads but the SDK's enum lacks
    (``context_length_exceeded``, ``insufficient_quota``) are checked as ``server_error``."""
    from openai import omit
    from openai.lib.streaming.responses._responses import ResponseStreamState

    adapter = _event_adapter()
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for ev in events:
        data = ev
        if ev["type"] == "response.failed":
            data = json.loads(json.dumps(ev))
            code = data["response"]["error"]["code"]
            if code in ("context_length_exceeded", "insufficient_quota"):
                data["response"]["error"]["code"] = "server_error"
        parsed = adapter.validate_python(data)
        state.handle_event(parsed)
