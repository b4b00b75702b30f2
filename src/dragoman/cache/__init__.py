"""The response cache: exact match on the normalised request, replayed in the client's dialect
as a body or a stream (docs/limits.md)."""

from __future__ import annotations

from .entry import Entry, decode, encode
from .key import cache_key, namespace
from .policy import BYPASS, HEADER, HIT, MISS, Use, decide
from .record import AnthropicRecorder, OpenAIRecorder, recorder
from .replay import anthropic_stream, fresh_body, openai_stream, stream
from .store import ResponseCache, build_cache

__all__ = [
    "BYPASS",
    "HEADER",
    "HIT",
    "MISS",
    "AnthropicRecorder",
    "Entry",
    "OpenAIRecorder",
    "ResponseCache",
    "Use",
    "anthropic_stream",
    "build_cache",
    "cache_key",
    "decide",
    "decode",
    "encode",
    "fresh_body",
    "namespace",
    "openai_stream",
    "recorder",
    "stream",
]
