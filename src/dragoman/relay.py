"""Pass-through stream relays: upstream SSE bytes go to the client as they arrive, and the relay
reads only what the books need (usage), whether the stream completed, and whether it failed.

This is the innermost loop of the pass-through paths, so the relays do not parse every event:
they cut the byte stream at event boundaries (``\\n\\n``) with C-level ``bytes`` operations and
look inside only the few events that carry usage or an ending.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson

from .accounting.usage import Usage
from .protocols.sse import _parse_block, anthropic_frame, openai_frame

#: bytes of SSE framing and JSON around the text of one Anthropic delta event
_A_DELTA_OVERHEAD = 100
#: same for one OpenAI chunk
_O_CHUNK_OVERHEAD = 130


def _cut(tail: bytes, chunk: bytes) -> tuple[bytes, bytes]:
    """(complete events, incomplete tail) of ``tail + chunk``; CRLF framing normalised."""
    data = tail + chunk if tail else chunk
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    end = data.rfind(b"\n\n")
    if end < 0:
        return b"", data
    return data[: end + 2], data[end + 2 :]


class AnthropicRelay:
    """Watches an Anthropic stream going by: usage, completeness, errors."""

    __slots__ = ("errored", "events", "stopped", "tail", "text_bytes", "usage")

    def __init__(self, usage: Usage) -> None:
        self.usage = usage
        self.stopped = False
        self.errored = False
        self.tail = b""
        self.text_bytes = 0
        self.events = 0

    def feed(self, chunk: bytes) -> None:
        complete, self.tail = _cut(self.tail, chunk)
        if not complete:
            return
        n = complete.count(b"\n\n")
        self.events += n
        self.text_bytes += max(len(complete) - _A_DELTA_OVERHEAD * n, 0)
        if b"message_" not in complete and b"error" not in complete:
            return  # content deltas only: nothing the books need
        for block in complete.split(b"\n\n"):
            if b"event: message_" not in block and b"event: error" not in block:
                continue
            ev = _parse_block(block)
            if ev is None:
                continue
            name = ev.event
            if name == "message_start":
                msg = orjson.loads(ev.data).get("message") or {}
                self.usage.merge_anthropic(msg.get("usage") or {})
            elif name == "message_delta":
                self.usage.merge_anthropic(orjson.loads(ev.data).get("usage") or {})
            elif name == "message_stop":
                self.stopped = True
            elif name == "error":
                self.errored = True

    def finish(self) -> bytes:
        """Bytes to send at upstream EOF: an error event if the stream ended incomplete."""
        if self.stopped or self.errored:
            return b""
        if self.usage.output_tokens <= 1 and self.text_bytes:
            # cut short before message_delta: charge what was delivered (errs high)
            self.usage.output_tokens = self.text_bytes // 3 + 1
            self.usage.estimated = True
        return anthropic_frame(
            "error",
            {
                "type": "error",
                "error": {"type": "api_error", "message": "upstream stream ended early"},
            },
        )


class OpenAIRelay:
    """Relays OpenAI chunks, reading usage and hiding the usage chunk we asked for ourselves."""

    __slots__ = ("done", "error", "inject", "tail", "text_bytes", "usage")

    def __init__(self, usage: Usage, inject: bool) -> None:
        self.usage = usage
        self.inject = inject
        self.done = False
        self.error: str | None = None
        self.tail = b""
        self.text_bytes = 0

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to forward: whole events only (upstreams flush per event, so this adds
        no delay in practice)."""
        complete, self.tail = _cut(self.tail, chunk)
        if not complete:
            return b""
        if b'"usage":{' not in complete and b"error" not in complete and b"[DONE]" not in complete:
            n = complete.count(b"\n\n")
            self.text_bytes += max(len(complete) - _O_CHUNK_OVERHEAD * n, 0)
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
            if b'"usage":{' in block or b'"error"' in block:
                ev = _parse_block(block)
                obj = orjson.loads(ev.data) if ev is not None and ev.data else {}
                if isinstance(obj, dict):
                    if "error" in obj and "choices" not in obj:
                        err = obj.get("error") or {}
                        msg = err.get("message") if isinstance(err, dict) else None
                        self.error = str(msg or "upstream error")
                    elif obj.get("usage"):
                        u = Usage.from_openai(obj["usage"])
                        self.usage.input_tokens = u.input_tokens
                        self.usage.output_tokens = u.output_tokens
                        self.usage.cache_creation_input_tokens = u.cache_creation_input_tokens
                        self.usage.cache_read_input_tokens = u.cache_read_input_tokens
                        if self.inject and not obj.get("choices"):
                            continue  # the client did not ask for the usage chunk
            else:
                self.text_bytes += max(len(raw) - _O_CHUNK_OVERHEAD, 0)
            out.append(raw)
        return b"".join(out)

    def finish(self) -> bytes:
        if self.done:
            return b""
        if self.usage.output_tokens == 0 and self.text_bytes:
            self.usage.output_tokens = self.text_bytes // 3 + 1
            self.usage.estimated = True
        if self.error is not None:
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
