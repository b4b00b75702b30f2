"""The pass-through rows (A->A, O->O): the client's request goes to a server of its own dialect
with the model swapped and the server's quirks smoothed; answers go back as they came, watched
for usage, completeness and errors (``dialects/*/watch.py``), byte for byte on the hot path."""

from __future__ import annotations

from typing import Any

import orjson

from ..dialects.anthropic import watch as aw
from ..dialects.openai import watch as ow
from ..dialects.openai.compat import adapt_chat_request
from ..dialects.openai.flavors import capabilities, reasoning_with_tool_calls
from ..errors import DragomanError
from ..providers.anthropic import AnthropicProvider
from ..providers.openai import OpenAIProvider
from ..translate.context import ResponseContext
from ..translate.tool_ids import (
    OPENAI_PREFIX,
    ToolIds,
    map_openai_request,
    map_openai_response,
    map_openai_sse,
)
from .base import Attempt, Decoded, Prepared, StreamCodec
from .target import for_anthropic_server, known_reasoning_field, room, tool_id_format


class AnthropicPassthrough:
    """Anthropic client -> Anthropic-speaking server."""

    def prepare(self, at: Attempt) -> Prepared:
        prov, ex = at.provider, at.ex
        assert isinstance(prov, AnthropicProvider)
        b = for_anthropic_server(dict(ex.body), capabilities(at.detection.flavor))
        b["model"] = at.dep.upstream_model
        path = prov.messages_path + (f"?{ex.query}" if ex.query else "")
        return Prepared(path, orjson.dumps(b), prov.headers_for(ex.headers))

    def decode(self, at: Attempt, prep: Prepared, raw: bytes) -> Decoded:
        resp = _object(raw)
        usage = aw.anthropic_body_usage(resp, at.ex.input_estimate)
        return Decoded(raw, usage, resp.get("stop_reason") == "refusal")

    def codec(self, at: Attempt, prep: Prepared) -> StreamCodec:
        return aw.AnthropicWatch(None, at.provider.secrets, at.ex.input_estimate)

    def first_event_error(self, first: bytes) -> DragomanError | None:
        return aw.first_event_error(first)

    def error_ending(self, err: DragomanError) -> bytes:
        return aw.error_ending(err)


class OpenAIPassthrough:
    """OpenAI client -> OpenAI-compatible server."""

    def prepare(self, at: Attempt) -> Prepared:
        prov, ex = at.provider, at.ex
        assert isinstance(prov, OpenAIProvider)
        # only the model and, for upstreams with their own tool-call id format, the ids
        # change (docs/translation.md, "Tool-call ids")
        ids = ToolIds(tool_id_format(at), OPENAI_PREFIX)
        b = dict(map_openai_request(ex.body, ids))
        b["model"] = at.dep.upstream_model
        caps = capabilities(at.detection.flavor)
        known = known_reasoning_field(at, caps)
        b = adapt_chat_request(
            b,
            caps,
            reasoning_field=known,
            pad_reasoning=reasoning_with_tool_calls(caps, at.dep.upstream_model, known or ""),
            output_cap=room(at, b),
        )
        inject = False
        # api.mistral.ai rejects stream_options (and reports usage on its last chunk anyway)
        if ex.stream and caps.accepts_stream_options:
            so = b.get("stream_options") or {}
            if not so.get("include_usage"):
                b["stream_options"] = {**so, "include_usage": True}
                inject = True
        rctx = ResponseContext(ex.requested_model, tool_ids=ids if ids.active else None)
        return Prepared(prov.chat_path, orjson.dumps(b), prov.headers_for(), rctx, inject)

    def decode(self, at: Attempt, prep: Prepared, raw: bytes) -> Decoded:
        resp = _object(raw)
        learn_from_answer(at, resp)
        usage = ow.openai_body_usage(resp, at.ex.input_estimate)
        refusal = openai_refused(resp)
        ids = prep.rctx.tool_ids if prep.rctx is not None else None
        if ids is not None and map_openai_response(resp, ids):
            return Decoded(orjson.dumps(resp), usage, refusal)
        return Decoded(raw, usage, refusal)

    def codec(self, at: Attempt, prep: Prepared) -> StreamCodec:
        ids = prep.rctx.tool_ids if prep.rctx is not None else None
        det, model = at.detection, at.dep.upstream_model
        if ids is None and model in det.reasoning_fields:
            # nothing to map, nothing to learn: the watcher alone (the hot path)
            return ow.OpenAIWatch(
                None, prep.inject_usage, at.provider.secrets, at.ex.input_estimate
            )
        return _LearningWatch(at, prep.inject_usage, ids)

    def first_event_error(self, first: bytes) -> DragomanError | None:
        return ow.first_event_error(first)

    def error_ending(self, err: DragomanError) -> bytes:
        return ow.error_ending(err)


class _LearningWatch(ow.OpenAIWatch):
    """The O->O watcher that also maps tool-call ids and notes the field the server streams
    reasoning in: it comes first, so the first few chunks tell."""

    __slots__ = ("det", "ids", "looking", "model")

    def __init__(self, at: Attempt, inject: bool, ids: ToolIds | None) -> None:
        super().__init__(None, inject, at.provider.secrets, at.ex.input_estimate)
        self.det, self.model, self.ids = at.detection, at.dep.upstream_model, ids
        self.looking = 0 if self.model in self.det.reasoning_fields else 8

    def start(self, first: bytes) -> bytes:
        if self.looking and self.det.learn_from_chunk(self.model, first):
            self.looking = 0
        out = super().feed(first)
        return map_openai_sse(out, self.ids) if out and self.ids is not None else out

    def feed(self, chunk: bytes) -> bytes:
        if self.looking:
            self.looking = 0 if self.det.learn_from_chunk(self.model, chunk) else self.looking - 1
        out = super().feed(chunk)
        return map_openai_sse(out, self.ids) if out and self.ids is not None else out


def learn_from_answer(at: Attempt, resp: dict[str, Any]) -> None:
    """Note the field the upstream answered its reasoning in (sent back in it later)."""
    choices = resp.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        at.detection.learn_from_message(at.dep.upstream_model, choices[0].get("message"))


def openai_refused(resp: dict[str, Any]) -> bool:
    ch = resp.get("choices") or []
    return bool(ch) and isinstance(ch[0], dict) and ch[0].get("finish_reason") == "content_filter"


def _object(raw: bytes) -> dict[str, Any]:
    resp = orjson.loads(raw)
    if not isinstance(resp, dict):
        raise TypeError(f"a JSON {type(resp).__name__}, not an object")
    return resp
