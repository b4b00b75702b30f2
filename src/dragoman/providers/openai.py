"""OpenAI-compatible Chat Completions backend (OpenAI, vLLM, Ollama, llama.cpp, DeepSeek...)."""

from __future__ import annotations

from .base import Provider


class OpenAIProvider(Provider):
    kind = "openai"
    chat_path = "/chat/completions"
    completions_path = "/completions"

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self._headers = {"content-type": "application/json", **self.config.headers}
        if self.api_key:
            self._headers["authorization"] = f"Bearer {self.api_key}"

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def headers_for(self, client: object = None) -> dict[str, str]:
        return self._headers

    @property
    def root_url(self) -> str:
        """The server root (vLLM serves /tokenize and /health outside /v1)."""
        base = self.base_url
        return base[: -len("/v1")] if base.endswith("/v1") else base

    async def health(self) -> tuple[bool, str]:
        return await self._probe(
            [self.url("/models"), self.root_url + "/health"], self.auth_headers()
        )
