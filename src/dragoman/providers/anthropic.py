"""Native Anthropic Messages backend."""

from __future__ import annotations

from collections.abc import Mapping

from .base import Provider
from .betas import allow_list, forwarded

DEFAULT_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    kind = "anthropic"
    messages_path = "/v1/messages"
    count_tokens_path = "/v1/messages/count_tokens"

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self._base_headers = {"content-type": "application/json", **self.config.headers}
        if self.api_key:
            self._base_headers["x-api-key"] = self.api_key
        #: the betas forwarded (None = all, () = none): providers/betas.py
        self._betas = allow_list(self.config.forward_betas)

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key} if self.api_key else {}

    def headers_for(self, client: Mapping[str, str] | None) -> dict[str, str]:
        """Upstream headers: our key, the client's anthropic-version and (if allowed) betas."""
        h = dict(self._base_headers)
        version = client.get("anthropic-version") if client else None
        h["anthropic-version"] = version or DEFAULT_VERSION
        if client and self._betas != ():
            beta = client.get("anthropic-beta")
            if beta:
                beta = forwarded(beta, self._betas, self.name)
                if beta:
                    h["anthropic-beta"] = beta
        return h

    async def health(self) -> tuple[bool, str]:
        h = {**self.auth_headers(), "anthropic-version": DEFAULT_VERSION}
        return await self._probe([self.url("/v1/models")], h)
