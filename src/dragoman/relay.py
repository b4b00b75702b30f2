"""Pass-through stream relays: upstream SSE bytes go to the client as they arrive, and the relay
reads only what the books need (usage), whether the stream completed, and whether it failed.

This is the innermost loop of the pass-through paths, so the relays do not parse every event:
they cut the byte stream at event boundaries (``\\n\\n``) with C-level ``bytes`` operations and
look inside only the few events that carry usage or an ending.

What was delivered is counted on the way (bytes and number of content events), so a stream that
ends without usage (cut short, the client left, or an upstream that reports none) is charged
for what it relayed (docs/accounting.md, "Charge what was delivered"): the framing of a content
event is learnt from a few sampled events, parsed only when the estimate is needed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

import orjson

from .errors import STATUS_BY_TYPE
from .protocols.sse import EventCutter, _parse_block, anthropic_frame, openai_frame
from .scrub import scrub
from .tokens import estimate_text_tokens
from .translate.errors import openai_stream_error_to_error
from .usage import Usage

#: bytes of SSE framing and JSON around the text of one event, when no sample can be read
_A_DELTA_OVERHEAD = 115
_O_CHUNK_OVERHEAD = 130
#: content events kept to learn the framing from: the first few, then one in every
#: ``_SAMPLE_EVERY`` along the stream (framing can vary per event, e.g. random padding)
_FIRST_SAMPLES = 8
_SAMPLE_EVERY = 16
_MAX_SAMPLES = 32
#: UTF-8 bytes of (JSON-escaped) text per token: errs high, like ``dragoman.tokens``
_BYTES_PER_TOKEN = 3

#: the request's input estimate, computed only if needed (it costs a pass over the request)
InputEstimate = Callable[[], int]


def _scrubbed(obj: Any, secrets: tuple[str, ...]) -> Any:
    """``obj`` (an upstream error event's JSON) with every string scrubbed of credentials."""
    if isinstance(obj, str):
        return scrub(obj, secrets)
    if isinstance(obj, dict):
        return {k: _scrubbed(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrubbed(v, secrets) for v in obj]
    return obj


def _escaped_len(s: Any) -> int:
    """Length of a string as it appears inside JSON (without its quotes)."""
    return len(orjson.dumps(s)) - 2 if isinstance(s, str) else 0


def _anthropic_text(obj: Any) -> int:
    d = obj.get("delta") if isinstance(obj, dict) else None
    if not isinstance(d, dict):
        return 0
    return sum(_escaped_len(d.get(k)) for k in ("text", "partial_json", "thinking", "signature"))


def _openai_text(obj: Any) -> int:
    ch = obj.get("choices") if isinstance(obj, dict) else None
    n = 0
    for c in ch if isinstance(ch, list) else ():
        d = c.get("delta") if isinstance(c, dict) else None
        if not isinstance(d, dict):
            continue
        for k in ("content", "reasoning_content", "reasoning", "refusal"):
            n += _escaped_len(d.get(k))
        for t in d.get("tool_calls") or ():
            f = t.get("function") if isinstance(t, dict) else None
            if isinstance(f, dict):
                n += _escaped_len(f.get("name")) + _escaped_len(f.get("arguments"))
    return n


class _Meter:
    """Bytes and count of the content events relayed, plus a few of them as samples."""

    __slots__ = ("content_bytes", "content_events", "samples")

    def __init__(self) -> None:
        self.content_bytes = 0
        self.content_events = 0
        self.samples: list[bytes] = []

    def add(self, event: bytes, pad: int = 0) -> None:
        """Count one content event; ``pad``: bytes of its terminator cut off by a split."""
        self.content_bytes += len(event) + pad
        self.content_events += 1
        n = len(self.samples)
        if n < _FIRST_SAMPLES or (self.content_events % _SAMPLE_EVERY == 0 and n < _MAX_SAMPLES):
            self.samples.append(event + b"\n\n" if pad else event)

    def tokens(self, text_of: Callable[[Any], int], default_overhead: int) -> int:
        """Output tokens of the text relayed (0 if none): bytes minus the learnt framing."""
        if not self.content_events:
            return 0
        frames: list[int] = []
        for raw in self.samples:
            ev = _parse_block(raw)
            if ev is None or not ev.data:
                continue
            try:
                text = text_of(orjson.loads(ev.data))
            except (orjson.JSONDecodeError, TypeError, AttributeError):
                continue
            if text:
                frames.append(len(raw) - text)
        overhead = sum(frames) // len(frames) if frames else default_overhead
        text_bytes = self.content_bytes - overhead * self.content_events
        return -(-max(text_bytes, 0) // _BYTES_PER_TOKEN)


class AnthropicRelay:
    """Watches an Anthropic stream going by: usage, completeness, errors, what was delivered."""

    __slots__ = (
        "error",
        "error_status",
        "error_type",
        "final_usage",
        "meter",
        "secrets",
        "start_usage",
        "stopped",
        "tail",
        "usage",
    )

    def __init__(self, usage: Usage | None = None, secrets: Iterable[str] = ()) -> None:
        self.usage = usage if usage is not None else Usage()
        #: the provider's credentials: scrubbed from an error event before it is relayed
        self.secrets = tuple(secrets)
        self.stopped = False
        #: message of an upstream ``error`` event, its status and type
        self.error: str | None = None
        self.error_status = 500
        self.error_type = "api_error"
        self.start_usage = False  # message_start carried usage (the input side is known)
        self.final_usage = False  # message_delta carried output_tokens (the total is known)
        self.tail = EventCutter()
        self.meter = _Meter()

    @property
    def errored(self) -> bool:
        return self.error is not None

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
                obj = _scrubbed(orjson.loads(ev.data), self.secrets)
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
        return self.meter.tokens(_anthropic_text, _A_DELTA_OVERHEAD)

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
        return anthropic_frame(
            "error",
            {
                "type": "error",
                "error": {"type": "api_error", "message": "upstream stream ended early"},
            },
        )


def _has_usage(complete: bytes) -> bool:
    """Whether some event may carry a usage object (not just ``"usage": null``)."""
    n = complete.count(b'"usage"')
    if not n:
        return False
    return n > complete.count(b'"usage":null') + complete.count(b'"usage": null')


class OpenAIRelay:
    """Relays OpenAI chunks, reading usage and hiding the usage chunk we asked for ourselves."""

    __slots__ = (
        "done",
        "error",
        "error_status",
        "error_type",
        "inject",
        "meter",
        "saw_usage",
        "secrets",
        "tail",
        "usage",
    )

    def __init__(
        self, usage: Usage | None = None, inject: bool = False, secrets: Iterable[str] = ()
    ) -> None:
        self.usage = usage if usage is not None else Usage()
        self.inject = inject
        #: the provider's credentials: scrubbed from an error chunk before it is relayed
        self.secrets = tuple(secrets)
        self.done = False
        self.saw_usage = False
        #: message of an upstream ``{"error": ...}`` chunk, its status and (Anthropic) type
        self.error: str | None = None
        self.error_status = 500
        self.error_type = "api_error"
        self.tail = EventCutter()
        self.meter = _Meter()

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
                out.append(raw)
                continue
            if b'"usage"' in block or b'"error"' in block:
                # parsed, not matched by bytes: `"usage": {` (json.dumps spacing) is usage too
                ev = _parse_block(block)
                obj = orjson.loads(ev.data) if ev is not None and ev.data else {}
                if isinstance(obj, dict):
                    if obj.get("error") is not None and "choices" not in obj:
                        # relayed rewritten, its text scrubbed (it may echo the provider's key)
                        obj = _scrubbed(obj, self.secrets)
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
        return self.meter.tokens(_openai_text, _O_CHUNK_OVERHEAD)

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
        if self.done or self.error is not None:
            return b""
        return openai_frame(
            {
                "error": {
                    "message": "upstream stream ended early",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        )


def _estimated(input_estimate: InputEstimate, parts: list[str]) -> Usage:
    return Usage(input_estimate(), estimate_text_tokens("".join(parts)), estimated=True)


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
    return _estimated(input_estimate, parts)


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
    return _estimated(input_estimate, parts)


class PrimedStream:
    """An async byte stream whose first item is already computed.

    Closing it always closes the generator underneath, which has started, so its ``finally``
    (upstream connection, in-flight count, ledger) runs even if nobody reads a byte.
    """

    __slots__ = ("_first", "_gen")

    def __init__(self, first: bytes | None, gen: AsyncGenerator[bytes, None]) -> None:
        self._first = first
        self._gen = gen

    @classmethod
    async def start(cls, gen: AsyncGenerator[bytes, None]) -> PrimedStream:
        try:
            first: bytes | None = await gen.__anext__()
        except StopAsyncIteration:
            first = None
        return cls(first, gen)

    def __aiter__(self) -> PrimedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        self._first = None
        await self._gen.aclose()
