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
        u = u if isinstance(u, dict) else {}  # an upstream's object: any shape may come
        return cls(
            _count(u.get("input_tokens")),
            _count(u.get("output_tokens")),
            _count(u.get("cache_creation_input_tokens")),
            _count(u.get("cache_read_input_tokens")),
        )

    @classmethod
    def from_openai(cls, u: dict[str, Any] | None) -> Usage:
        u = u if isinstance(u, dict) else {}
        details = u.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        cached = _count(details.get("cached_tokens"))
        written = _count(details.get("cache_write_tokens"))
        prompt = _count(u.get("prompt_tokens"))
        return cls(
            max(prompt - cached - written, 0),
            _count(u.get("completion_tokens")),
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
                setattr(self, k, _count(v))


def _count(v: Any) -> int:
    """A token count from an upstream's JSON: a non-negative int, else 0 (never an exception:
    a malformed usage must not break the settlement of a stream)."""
    if isinstance(v, str) and v.isdigit():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return 0
    try:
        return max(int(v), 0)
    except (OverflowError, ValueError):  # inf, nan
        return 0
