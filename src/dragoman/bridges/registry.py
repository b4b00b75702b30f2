"""The bridge table: one row per (client dialect, upstream dialect). A new dialect pair is a new
row; nothing else branches on the path."""

from __future__ import annotations

from ..core.exchange import ANTHROPIC, OPENAI
from ..errors import ServerError
from .a2o import AnthropicToOpenAI
from .base import Bridge
from .o2a import OpenAIToAnthropic
from .passthrough import AnthropicPassthrough, OpenAIPassthrough

BRIDGES: dict[tuple[str, str], Bridge] = {
    (ANTHROPIC, ANTHROPIC): AnthropicPassthrough(),
    (OPENAI, OPENAI): OpenAIPassthrough(),
    (ANTHROPIC, OPENAI): AnthropicToOpenAI(),
    (OPENAI, ANTHROPIC): OpenAIToAnthropic(),
}


def bridge_for(front: str, upstream: str) -> Bridge:
    try:
        return BRIDGES[(front, upstream)]
    except KeyError:
        raise ServerError(f"no bridge from {front} clients to {upstream} upstreams") from None
