"""Token usage in one neutral shape (Anthropic's split: input excludes cache reads and writes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    #: True when the numbers were counted by us because the upstream reported none
    estimated: bool = False

    @property
    def billable(self) -> bool:
        """Whether any token was counted (so the request costs something)."""
        return bool(
            self.input_tokens
            or self.output_tokens
            or self.cache_creation_input_tokens
            or self.cache_read_input_tokens
        )

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @classmethod
    def from_anthropic(cls, u: dict[str, Any] | None) -> Usage:
        u = u or {}
        return cls(
            int(u.get("input_tokens") or 0),
            int(u.get("output_tokens") or 0),
            int(u.get("cache_creation_input_tokens") or 0),
            int(u.get("cache_read_input_tokens") or 0),
        )

    @classmethod
    def from_openai(cls, u: dict[str, Any] | None) -> Usage:
        u = u or {}
        details = u.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0)
        written = int(details.get("cache_write_tokens") or 0)
        prompt = int(u.get("prompt_tokens") or 0)
        return cls(
            max(prompt - cached - written, 0),
            int(u.get("completion_tokens") or 0),
            written,
            cached,
        )

    def merge_anthropic(self, u: dict[str, Any]) -> None:
        """Apply a cumulative Anthropic usage update (message_delta overwrites what it carries)."""
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            v = u.get(k)
            if v is not None:
                setattr(self, k, int(v))
