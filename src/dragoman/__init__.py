"""dragoman: an LLM gateway between the Anthropic Messages and OpenAI Chat Completions dialects.

The library API (``Gateway``, ``ModelInstance``) runs the same gateway core as the server.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    AuthenticationError,
    BadUpstreamResponse,
    BudgetExceededError,
    ContextOverflow,
    DragomanError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UpstreamConnectionError,
    UpstreamCredentialsRejected,
    UpstreamError,
    UpstreamRefusal,
    UpstreamStatusError,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncStream",
    "AuthenticationError",
    "BadUpstreamResponse",
    "BudgetExceededError",
    "ContextOverflow",
    "DragomanError",
    "Gateway",
    "InvalidRequestError",
    "Meta",
    "ModelInstance",
    "ModelNotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "Reply",
    "ServerError",
    "Stream",
    "UpstreamConnectionError",
    "UpstreamCredentialsRejected",
    "UpstreamError",
    "UpstreamRefusal",
    "UpstreamStatusError",
    "load_config",
]


def __getattr__(name: str) -> Any:  # lazy: importing dragoman.errors must stay cheap
    if name in ("AsyncStream", "Gateway", "Meta", "ModelInstance", "Reply", "Stream"):
        from . import library

        return getattr(library, name)
    if name == "load_config":
        from .config import load_config

        return load_config
    raise AttributeError(name)
