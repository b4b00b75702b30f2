"""Backends: one module per kind. ``make_provider`` builds the right one from config."""

from __future__ import annotations

from ..config import ProviderConfig
from ..upstream.transport import Transport
from .anthropic import AnthropicProvider
from .base import Provider, UpstreamReply, UpstreamStream
from .openai import OpenAIProvider

__all__ = [
    "AnthropicProvider",
    "OpenAIProvider",
    "Provider",
    "UpstreamReply",
    "UpstreamStream",
    "make_provider",
]


def make_provider(
    name: str,
    config: ProviderConfig,
    api_key: str | None = None,
    transport: Transport | None = None,
) -> Provider:
    """The provider for ``config``, over ``transport`` (default: its own aiohttp pool)."""
    cls: type[Provider] = AnthropicProvider if config.kind == "anthropic" else OpenAIProvider
    return cls(name, config, api_key, transport)
