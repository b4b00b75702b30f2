"""Pure translation between Anthropic Messages and OpenAI Chat Completions (no I/O)."""

from .a2o import anthropic_to_openai_request, openai_to_anthropic_response
from .completions import (
    ChatToCompletionStream,
    chat_response_to_completion,
    completion_request_to_chat,
)
from .context import ResponseContext, Target
from .errors import anthropic_upstream_error, openai_stream_error_to_error, openai_upstream_error
from .names import (
    is_synthetic_signature,
    sanitize_tool_id,
    shorten_tool_name,
    strip_synthetic_thinking,
    synthetic_signature,
)
from .o2a import anthropic_to_openai_response, openai_to_anthropic_request
from .stream_a2o import AnthropicToOpenAIStream
from .stream_o2a import OpenAIToAnthropicStream

__all__ = [
    "AnthropicToOpenAIStream",
    "ChatToCompletionStream",
    "OpenAIToAnthropicStream",
    "ResponseContext",
    "Target",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "anthropic_upstream_error",
    "chat_response_to_completion",
    "completion_request_to_chat",
    "is_synthetic_signature",
    "openai_stream_error_to_error",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
    "openai_upstream_error",
    "sanitize_tool_id",
    "shorten_tool_name",
    "strip_synthetic_thinking",
    "synthetic_signature",
]
