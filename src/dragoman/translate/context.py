"""What a translator needs to know about the upstream, and what it hands on to the response side.

Translation functions are pure: everything they depend on arrives in a ``Target`` (facts about the
upstream model, from config) or a ``ResponseContext`` (facts about the request that shape the
response: the name the client asked for, the tool-name map, the stop sequences...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .names import sanitize_tool_id
from .tool_ids import ToolIds


@dataclass(frozen=True, slots=True)
class Target:
    """The upstream a request is being translated for."""

    #: upstream model id to put in the request
    model: str
    #: model name the client asked for; echoed back in responses
    requested_model: str
    #: total context of the upstream model (prompt + output), if known
    context_window: int | None = None
    #: the upstream's output cap, if known
    max_output_tokens: int | None = None
    #: the upstream's row in the capability table (``dialects/openai/flavors.py``): "vllm",
    #: "openai", "deepseek", "generic"...; translators look its columns up, never branch on it
    flavor: str = "vllm"
    #: assistant-message field that carries reasoning upstream ("reasoning", "reasoning_content",
    #: or "" to drop thinking on the way up)
    reasoning_field: str = "reasoning"
    #: every assistant turn with tool calls carries ``reasoning_field``, empty when the client
    #: kept no thinking (DeepSeek thinking mode rejects such a turn without it)
    reasoning_with_tool_calls: bool = False
    #: default max_tokens for OpenAI clients reaching an Anthropic backend without one
    default_max_tokens: int = 4096
    #: the upstream model reasons (accepts ``reasoning_effort`` / thinking switches); False
    #: drops them, e.g. for api.openai.com models that reject ``reasoning_effort``
    reasoning: bool = True
    #: the caller's estimate of the client request's prompt tokens, when it already has one
    #: (computed once for routing and the ledger; translators reuse it)
    input_tokens_estimate: int | None = None
    #: tool-call ids the upstream accepts: "any", or "mistral9" (exactly 9 ``[a-zA-Z0-9]``,
    #: and no user turn right after a tool result: ``mistral_common``'s rules); see
    #: :mod:`.tool_ids`
    tool_id_format: str = "any"


@dataclass(slots=True)
class ResponseContext:
    """Produced by request translation; consumed by response/stream translation."""

    requested_model: str
    #: shortened (upstream) tool name -> original client name
    tool_names: dict[str, str] = field(default_factory=dict)
    #: stop sequences the client sent (to report which one fired)
    stop_sequences: list[str] = field(default_factory=list)
    #: OpenAI client asked for ``stream_options.include_usage``
    include_usage: bool = False
    #: local estimate of the prompt's tokens (seeds message_start when the upstream gives none)
    input_tokens_estimate: int = 0
    #: this request's tool-call id map (None: ids pass as they are)
    tool_ids: ToolIds | None = None

    def client_tool_id(self, upstream_id: Any) -> str:
        """The id an Anthropic client sees for a tool call in the upstream's answer: mapped back
        when this request maps ids, else the upstream's own id made Anthropic-valid."""
        if self.tool_ids is not None and self.tool_ids.active:
            return self.tool_ids.down(upstream_id)
        return sanitize_tool_id(upstream_id if isinstance(upstream_id, str) else None)
