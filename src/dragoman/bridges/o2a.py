"""OpenAI client -> Anthropic upstream: the request translated to Messages, the answer and the
stream translated back (``translate/o2a.py``, ``translate/stream_a2o.py``)."""

from __future__ import annotations

import orjson

from ..dialects.anthropic import watch as aw
from ..dialects.openai import watch as ow
from ..errors import DragomanError
from ..protocols.sse import SSEEvent, SSEParser
from ..providers.anthropic import AnthropicProvider
from ..translate.context import ResponseContext
from ..translate.o2a import anthropic_to_openai_response, openai_to_anthropic_request
from ..translate.stream_a2o import AnthropicToOpenAIStream
from ..usage import Usage
from .base import Attempt, Decoded, Prepared, StreamCodec
from .passthrough import _object
from .target import target


class OpenAIToAnthropic:
    def prepare(self, at: Attempt) -> Prepared:
        prov = at.provider
        assert isinstance(prov, AnthropicProvider)
        a, rctx = openai_to_anthropic_request(at.ex.body, target(at))
        return Prepared(prov.messages_path, orjson.dumps(a), prov.headers_for(None), rctx)

    def decode(self, at: Attempt, prep: Prepared, raw: bytes) -> Decoded:
        assert prep.rctx is not None
        resp = _object(raw)
        out = anthropic_to_openai_response(resp, prep.rctx)
        usage = aw.anthropic_body_usage(resp, at.ex.input_estimate)
        return Decoded(orjson.dumps(out), usage, resp.get("stop_reason") == "refusal")

    def codec(self, at: Attempt, prep: Prepared) -> StreamCodec:
        assert prep.rctx is not None
        return _Codec(prep.rctx)

    def first_event_error(self, first: bytes) -> DragomanError | None:
        return aw.first_event_error(first)

    def error_ending(self, err: DragomanError) -> bytes:
        return ow.error_ending(err)


class _Codec:
    """Anthropic events -> OpenAI chunks."""

    __slots__ = ("parser", "tr")

    def __init__(self, rctx: ResponseContext) -> None:
        self.tr = AnthropicToOpenAIStream(rctx)
        self.parser = SSEParser()

    def start(self, first: bytes) -> bytes:
        return self.feed(first)

    def feed(self, chunk: bytes) -> bytes:
        return self._events(self.parser.feed(chunk))

    def _events(self, events: list[SSEEvent]) -> bytes:
        buf = b""
        for ev in events:
            if ev.event is None and not ev.data:
                continue
            buf += self.tr.feed(ev.event or "", orjson.loads(ev.data))
        return buf

    def finish(self) -> bytes:
        return self._events(self.parser.flush()) + self.tr.finish()

    def fail(self, err: DragomanError) -> bytes:
        return self.tr.fail(err)

    def failure(self) -> tuple[int, str, str] | None:
        return (502, "upstream stream failed", "api_error") if self.tr.failed else None

    def settled(self) -> Usage:
        return self.tr.usage
