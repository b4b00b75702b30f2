"""Watches an OpenAI chat stream going by on the pass-through path (O->O): usage (hiding the
usage chunk dragoman asked for itself), completeness, errors and what was delivered."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ...errors import DragomanError, ServerError
from ...protocols import openai as po
from ...protocols.sse import EventCutter, SSEParser, _parse_block, openai_frame
from ...scrub import scrub_json
from ...translate.errors import openai_stream_error_to_error
from ...usage import Usage
from ..delivered import O_CHUNK_OVERHEAD, InputEstimate, Meter, escaped_len, estimated


def _openai_text(obj: Any) -> int:
    ch = obj.get("choices") if isinstance(obj, dict) else None
    n = 0
    for c in ch if isinstance(ch, list) else ():
        d = c.get("delta") if isinstance(c, dict) else None
        if not isinstance(d, dict):
            continue
        for k in ("content", "reasoning_content", "reasoning", "refusal"):
            n += escaped_len(d.get(k))
        for t in d.get("tool_calls") or ():
            f = t.get("function") if isinstance(t, dict) else None
            if isinstance(f, dict):
                n += escaped_len(f.get("name")) + escaped_len(f.get("arguments"))
    return n


def _has_usage(complete: bytes) -> bool:
    """Whether some event may carry a usage object (not just ``"usage": null``)."""
    n = complete.count(b'"usage"')
    if not n:
        return False
    return n > complete.count(b'"usage":null') + complete.count(b'"usage": null')


class OpenAIWatch:
    """Relays OpenAI chunks, reading usage and hiding the usage chunk we asked for ourselves."""

    __slots__ = (
        "done",
        "error",
        "error_status",
        "error_type",
        "inject",
        "input_estimate",
        "meter",
        "saw_usage",
        "secrets",
        "tail",
        "usage",
    )

    def __init__(
        self,
        usage: Usage | None = None,
        inject: bool = False,
        secrets: Iterable[str] = (),
        input_estimate: InputEstimate | None = None,
    ) -> None:
        self.usage = usage if usage is not None else Usage()
        self.inject = inject
        #: the provider's credentials: scrubbed from an error chunk before it is relayed
        self.secrets = tuple(secrets)
        #: the request's input estimate, computed only if the upstream reports no usage
        self.input_estimate: InputEstimate = input_estimate or (lambda: 0)
        self.done = False
        self.saw_usage = False
        #: message of an upstream ``{"error": ...}`` chunk, its status and (Anthropic) type
        self.error: str | None = None
        self.error_status = 500
        self.error_type = "api_error"
        self.tail = EventCutter()
        self.meter = Meter()

    def start(self, first: bytes) -> bytes:
        return self.feed(first)

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to forward: whole events only (upstreams flush per event, so this adds
        no delay in practice)."""
        complete = self.tail.cut(chunk)
        if not complete:
            return b""
        if b"error" not in complete and b"[DONE]" not in complete and not _has_usage(complete):
            if complete.count(b"\n\n") == 1:
                self.meter.add(complete)
            else:
                for block in complete.split(b"\n\n"):
                    if block:
                        self.meter.add(block, 2)
            return complete
        out: list[bytes] = []
        for block in complete.split(b"\n\n"):
            if not block:
                continue
            raw = block + b"\n\n"
            if b"[DONE]" in block and block.strip().endswith(b"[DONE]"):
                self.done = True
                if self.error is None:  # a failed stream never ends like a complete one
                    out.append(raw)
                continue
            if b'"usage"' in block or b'"error"' in block:
                # parsed, not matched by bytes: `"usage": {` (json.dumps spacing) is usage too
                ev = _parse_block(block)
                obj = orjson.loads(ev.data) if ev is not None and ev.data else {}
                if isinstance(obj, dict):
                    if obj.get("error") is not None and "choices" not in obj:
                        # relayed rewritten, its text scrubbed (it may echo the provider's key)
                        obj = scrub_json(obj, self.secrets)
                        err = openai_stream_error_to_error(obj)
                        self.error, self.error_status = err.message, err.status
                        self.error_type = err.type
                        out.append(openai_frame(obj))
                        continue
                    elif isinstance(obj.get("usage"), dict) and obj["usage"]:
                        u = Usage.from_openai(obj["usage"])
                        self.usage.input_tokens = u.input_tokens
                        self.usage.output_tokens = u.output_tokens
                        self.usage.cache_creation_input_tokens = u.cache_creation_input_tokens
                        self.usage.cache_read_input_tokens = u.cache_read_input_tokens
                        self.saw_usage = True
                        if not obj.get("choices"):
                            if self.inject:
                                continue  # the client did not ask for the usage chunk
                            out.append(raw)
                            continue
                    if obj.get("choices"):
                        self.meter.add(raw)
            else:
                self.meter.add(raw)
            out.append(raw)
        return b"".join(out)

    def delivered_tokens(self) -> int:
        return self.meter.tokens(_openai_text, O_CHUNK_OVERHEAD)

    def settled_usage(self, input_estimate: InputEstimate) -> Usage:
        """The upstream's usage when it sent one, else an estimate: the request's input
        estimate and the text relayed."""
        if self.saw_usage:
            return self.usage
        u = self.usage
        u.input_tokens = input_estimate()
        u.output_tokens = self.delivered_tokens()
        u.estimated = True
        return u

    def finish(self) -> bytes:
        """Bytes to send at upstream EOF: an error chunk if the stream ended incomplete."""
        if self.done or self.error is not None:
            return b""
        return error_ending(ServerError("upstream stream ended early"))

    def fail(self, err: DragomanError) -> bytes:
        return error_ending(err)

    def failure(self) -> tuple[int, str, str] | None:
        """(status, message, type) of how the stream failed; None when it completed."""
        if self.error is not None:
            return self.error_status, self.error, self.error_type
        if not self.done:
            return 502, "upstream stream ended early", "api_error"
        return None

    def settled(self) -> Usage:
        return self.settled_usage(self.input_estimate)


def openai_body_usage(resp: dict[str, Any], input_estimate: InputEstimate) -> Usage:
    """A chat completion's usage; estimated from its choices when the upstream sent none."""
    u = resp.get("usage")
    if isinstance(u, dict) and u:
        return Usage.from_openai(u)
    parts: list[str] = []
    for c in resp.get("choices") or ():
        m = c.get("message") if isinstance(c, dict) else None
        if not isinstance(m, dict):
            continue
        for k in ("content", "reasoning_content", "reasoning", "refusal"):
            if isinstance(m.get(k), str):
                parts.append(m[k])
        for t in m.get("tool_calls") or ():
            f = t.get("function") if isinstance(t, dict) else None
            if isinstance(f, dict):
                parts.extend(v for v in (f.get("name"), f.get("arguments")) if isinstance(v, str))
    return estimated(input_estimate, parts)


def error_ending(err: DragomanError) -> bytes:
    """How every stream to an OpenAI client ends when it fails: one error chunk and no
    ``[DONE]``, so a failed stream never ends like a complete one (docs/protocols.md, "Stream
    endings")."""
    return openai_frame(po.error_body(err))


def first_event_error(first: bytes) -> DragomanError | None:
    """The typed error when an OpenAI upstream's first stream chunk is an error chunk."""
    if b"error" not in first:
        return None
    for ev in SSEParser().feed(first):
        if not ev.data or ev.data == "[DONE]":
            continue
        try:
            obj = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or "error" not in obj or "choices" in obj:
            continue
        err = openai_stream_error_to_error(obj)
        err.upstream_status = err.status
        return err
    return None
