"""``seam.Gateway`` over ``dragoman.Gateway``: the library's gateway answers SyftBox callers.

The library runs the pipeline the server runs, without client keys (SyftBox callers are
identified by their sender, not a key: docs/syftbox.md), so routing, aliases, fallbacks,
retries, budgets and the books apply to them as to HTTP callers.
"""

from __future__ import annotations

from typing import Any

from ..library import Gateway as LibraryGateway
from ..usage import Usage
from .seam import Caller, ChatResult


class GatewaySeam:
    """Answers each SyftBox chat with ``dragoman.Gateway`` (async API, the caller's loop)."""

    def __init__(self, gateway: LibraryGateway) -> None:
        self.gateway = gateway

    async def chat(self, body: dict[str, Any], caller: Caller) -> ChatResult:
        model = self.gateway.get_model_instance(str(body.get("model") or ""))
        reply = await model.ainvoke_llm(body)
        return ChatResult(
            dict(reply),
            reply.meta.model,
            reply.meta.request_id,
            Usage.from_openai(reply.get("usage")),
        )
