"""Anthropic client -> OpenAI-compatible upstream: the request translated to Chat Completions,
the answer and the stream translated back (``translate/a2o.py``, ``translate/stream_o2a.py``)."""

from __future__ import annotations

import orjson

from ..dialects.anthropic import watch as aw
from ..dialects.openai import watch as ow
from ..errors import DragomanError
from ..protocols.sse import SSEParser
from ..providers.openai import OpenAIProvider
from ..translate.a2o import anthropic_to_openai_request, openai_to_anthropic_response
from ..translate.context import ResponseContext
from ..translate.stream_o2a import OpenAIToAnthropicStream
from ..usage import Usage
from .base import Attempt, Decoded, Prepared, StreamCodec
from .passthrough import _object, learn_from_answer, openai_refused
from .target import target


class AnthropicToOpenAI:
    def prepare(self, at: Attempt) -> Prepared:
        prov = at.provider
        assert isinstance(prov, OpenAIProvider)
        o, rctx = anthropic_to_openai_request(at.ex.body, target(at))
        return Prepared(prov.chat_path, orjson.dumps(o), prov.headers_for(), rctx)

    def decode(self, at: Attempt, prep: Prepared, raw: bytes) -> Decoded:
        assert prep.rctx is not None
        resp = _object(raw)
        learn_from_answer(at, resp)
        out = openai_to_anthropic_response(resp, prep.rctx)
        usage = ow.openai_body_usage(resp, at.ex.input_estimate)
        return Decoded(orjson.dumps(out), usage, openai_refused(resp))

    def codec(self, at: Attempt, prep: Prepared) -> StreamCodec:
        assert prep.rctx is not None
        return _Codec(at, prep.rctx)

    def first_event_error(self, first: bytes) -> DragomanError | None:
        return ow.first_event_error(first)

    def error_ending(self, err: DragomanError) -> bytes:
        return aw.error_ending(err)


class _Codec:
    """OpenAI chunks -> Anthropic events."""

    __slots__ = ("at", "parser", "tr")

    def __init__(self, at: Attempt, rctx: ResponseContext) -> None:
        self.at = at
        self.tr = OpenAIToAnthropicStream(rctx)
        self.parser = SSEParser()

    def start(self, first: bytes) -> bytes:
        return self.tr.start() + self.feed(first)

    def feed(self, chunk: bytes) -> bytes:
        buf = b""
        for ev in self.parser.feed(chunk):
            if ev.data != "[DONE]":
                buf += self.tr.feed(orjson.loads(ev.data))
        return buf

    def finish(self) -> bytes:
        buf = b""
        for ev in self.parser.flush():
            if ev.data != "[DONE]":
                buf += self.tr.feed(orjson.loads(ev.data))
        buf += self.tr.finish()
        if self.tr.reasoning_key:
            self.at.detection.learn_reasoning(self.at.dep.upstream_model, self.tr.reasoning_key)
        return buf

    def fail(self, err: DragomanError) -> bytes:
        return self.tr.fail(err)

    def failure(self) -> tuple[int, str, str] | None:
        return (502, "upstream stream failed", "api_error") if self.tr.failed else None

    def settled(self) -> Usage:
        return self.tr.usage
