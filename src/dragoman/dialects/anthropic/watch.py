"""Watches an Anthropic stream going by on the pass-through path (A->A): usage, completeness,
errors and what was delivered, without parsing every event (``dialects/delivered.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ...errors import STATUS_BY_TYPE, DragomanError, ServerError
from ...protocols import anthropic as pa
from ...protocols.sse import EventCutter, SSEParser, _parse_block, anthropic_frame
from ...scrub import scrub, scrub_json
from ...translate.errors import anthropic_upstream_error
from ...usage import Usage
from ..delivered import A_DELTA_OVERHEAD, InputEstimate, Meter, escaped_len, estimated


def _anthropic_text(obj: Any) -> int:
    d = obj.get("delta") if isinstance(obj, dict) else None
    if not isinstance(d, dict):
        return 0
    return sum(escaped_len(d.get(k)) for k in ("text", "partial_json", "thinking", "signature"))


class AnthropicWatch:
    """Watches an Anthropic stream going by: usage, completeness, errors, what was delivered."""

    __slots__ = (
        "error",
        "error_status",
        "error_type",
        "final_usage",
        "input_estimate",
        "meter",
        "secrets",
        "start_usage",
        "stopped",
        "tail",
        "usage",
    )

    def __init__(
        self,
        usage: Usage | None = None,
        secrets: Iterable[str] = (),
        input_estimate: InputEstimate | None = None,
    ) -> None:
        self.usage = usage if usage is not None else Usage()
        #: the provider's credentials: scrubbed from an error event before it is relayed
        self.secrets = tuple(secrets)
        #: the request's input estimate, computed only if the upstream reports no input count
        self.input_estimate: InputEstimate = input_estimate or (lambda: 0)
        self.stopped = False
        #: message of an upstream ``error`` event, its status and type
        self.error: str | None = None
        self.error_status = 500
        self.error_type = "api_error"
        self.start_usage = False  # message_start carried usage (the input side is known)
        self.final_usage = False  # message_delta carried output_tokens (the total is known)
        self.tail = EventCutter()
        self.meter = Meter()

    @property
    def errored(self) -> bool:
        return self.error is not None

    def start(self, first: bytes) -> bytes:
        return self.feed(first)

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to forward: whole events, as received, except an ``error`` event, which
        is rewritten with its text scrubbed (it may echo the provider's key: docs/upstream.md,
        "Nothing leaks")."""
        complete = self.tail.cut(chunk)
        if not complete:
            return b""
        if b"message_" not in complete and b"error" not in complete:
            # content events only (deltas, block starts/stops, pings): count what is delivered
            if complete.count(b"\n\n") == 1:
                self._content(complete, 0)
            else:
                for block in complete.split(b"\n\n"):
                    if block:
                        self._content(block, 2)
            return complete
        blocks = complete.split(b"\n\n")
        rewritten = False
        for i, block in enumerate(blocks):
            if not block:
                continue
            if b"event: message_" not in block and b"event: error" not in block:
                self._content(block, 2)
                continue
            ev = _parse_block(block)
            if ev is None:
                continue
            name = ev.event
            if name == "message_start":
                u = (orjson.loads(ev.data).get("message") or {}).get("usage")
                if isinstance(u, dict) and u:
                    self.usage.merge_anthropic(u)
                    self.start_usage = True
            elif name == "message_delta":
                u = orjson.loads(ev.data).get("usage")
                if isinstance(u, dict) and u:
                    self.usage.merge_anthropic(u)
                    self.final_usage = self.final_usage or u.get("output_tokens") is not None
            elif name == "message_stop":
                self.stopped = True
            elif name == "error":
                obj = scrub_json(orjson.loads(ev.data), self.secrets)
                e = obj.get("error") if isinstance(obj, dict) else None
                e = e if isinstance(e, dict) else {}
                self.error = scrub(str(e.get("message") or "upstream error"), self.secrets)
                self.error_type = str(e.get("type") or "api_error")
                self.error_status = STATUS_BY_TYPE.get(self.error_type, 500)
                if not isinstance(obj, dict):
                    obj = {"type": "error", "error": {"type": "api_error", "message": self.error}}
                blocks[i] = anthropic_frame("error", obj)[:-2]
                rewritten = True
        return b"\n\n".join(blocks) if rewritten else complete

    def _content(self, event: bytes, pad: int) -> None:
        if event.startswith(b"event: content_block_delta") or (
            event.startswith(b"data:") and b'"content_block_delta"' in event
        ):
            self.meter.add(event, pad)

    def delivered_tokens(self) -> int:
        return self.meter.tokens(_anthropic_text, A_DELTA_OVERHEAD)

    def settled_usage(self, input_estimate: InputEstimate) -> Usage:
        """The usage to charge: the upstream's, completed by estimates where it said nothing
        (no final count: what was relayed; no input count: the request's estimate)."""
        u = self.usage
        if not self.final_usage:
            out = self.delivered_tokens()
            if out > u.output_tokens:
                u.output_tokens = out
                u.estimated = True
        if not self.start_usage and u.input_tokens == 0:
            u.input_tokens = input_estimate()
            u.estimated = True
        return u

    def finish(self) -> bytes:
        """Bytes to send at upstream EOF: an error event if the stream ended incomplete."""
        if self.stopped or self.errored:
            return b""
        return error_ending(ServerError("upstream stream ended early"))

    def fail(self, err: DragomanError) -> bytes:
        return error_ending(err)

    def failure(self) -> tuple[int, str, str] | None:
        """(status, message, type) of how the stream failed; None when it completed."""
        if self.error is not None:
            return self.error_status, self.error, self.error_type
        if not self.stopped:
            return 502, "upstream stream ended early", "api_error"
        return None

    def settled(self) -> Usage:
        return self.settled_usage(self.input_estimate)


def anthropic_body_usage(resp: dict[str, Any], input_estimate: InputEstimate) -> Usage:
    """A Messages answer's usage; estimated from its content when the upstream sent none."""
    u = resp.get("usage")
    if isinstance(u, dict) and u:
        return Usage.from_anthropic(u)
    parts: list[str] = []
    for b in resp.get("content") or ():
        if not isinstance(b, dict):
            continue
        for k in ("text", "thinking"):
            if isinstance(b.get(k), str):
                parts.append(b[k])
        if b.get("type") == "tool_use":
            parts.append(b.get("name") or "")
            parts.append(orjson.dumps(b.get("input")).decode())
    return estimated(input_estimate, parts)


def error_ending(err: DragomanError) -> bytes:
    """How every stream to an Anthropic client ends when it fails: one ``error`` event, and no
    ``message_stop`` (docs/protocols.md, "Stream endings")."""
    return anthropic_frame("error", pa.error_event(err))


def first_event_error(first: bytes) -> DragomanError | None:
    """The typed error when an Anthropic upstream's first stream chunk is an ``error`` event
    (nothing reached the client yet: it can still be retried or fall back)."""
    if b"error" not in first:
        return None
    for ev in SSEParser().feed(first):
        if not ev.data:
            continue
        try:
            obj = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or (ev.event != "error" and obj.get("type") != "error"):
            continue
        e = obj.get("error")
        status = STATUS_BY_TYPE.get(str(e.get("type") if isinstance(e, dict) else None), 500)
        err = anthropic_upstream_error(status, ev.data.encode(), {})
        err.upstream_status = err.status
        return err
    return None
