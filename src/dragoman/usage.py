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
    #: of ``cache_creation_input_tokens``, those written to the 1-hour cache (a dearer rate)
    cache_write_1h_tokens: int = 0
    #: server-side web searches the upstream ran (priced per search)
    web_search_requests: int = 0

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
        out = cls(
            _count(u.get("input_tokens")),
            _count(u.get("output_tokens")),
            _count(u.get("cache_creation_input_tokens")),
            _count(u.get("cache_read_input_tokens")),
        )
        out._anthropic_extras(u)
        return out

    def _anthropic_extras(self, u: dict[str, Any]) -> None:
        """What an Anthropic usage bills beyond tokens at the base rates: 1-hour cache writes
        (``cache_creation.ephemeral_1h_input_tokens``) and server tools
        (``server_tool_use.web_search_requests``)."""
        cc = u.get("cache_creation")
        if isinstance(cc, dict) and isinstance(cc.get("ephemeral_1h_input_tokens"), int):
            self.cache_write_1h_tokens = max(cc["ephemeral_1h_input_tokens"], 0)
        st = u.get("server_tool_use")
        if isinstance(st, dict) and isinstance(st.get("web_search_requests"), int):
            self.web_search_requests = max(st["web_search_requests"], 0)

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
        self._anthropic_extras(u)


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
