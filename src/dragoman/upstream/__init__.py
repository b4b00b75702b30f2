"""How bytes travel to an upstream and back; knows nothing of dialects (docs/upstream.md)."""

from __future__ import annotations

from .transport import Transport, UpstreamRequest, UpstreamResponse

__all__ = ["Transport", "UpstreamRequest", "UpstreamResponse"]
