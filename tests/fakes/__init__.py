"""Fake upstreams speaking the exact wire protocols of api.anthropic.com and OpenAI-compatible
servers (vLLM, api.openai.com, Ollama). See tests/fixtures/README.md for usage notes."""

from .anthropic_upstream import (
    ErrorReply,
    FakeAnthropic,
    Reply,
    error_reply,
    text_block,
    thinking_block,
    tool_use_block,
)
from .common import RawStream, RecordedRequest
from .openai_responses import ResponsesReply, r_call, r_custom, r_message, r_reasoning
from .openai_upstream import ChatReply, FakeOpenAI, ToolCall
from .openai_upstream import ErrorReply as OpenAIErrorReply

__all__ = [
    "ChatReply",
    "ErrorReply",
    "FakeAnthropic",
    "FakeOpenAI",
    "OpenAIErrorReply",
    "RawStream",
    "RecordedRequest",
    "Reply",
    "ResponsesReply",
    "ToolCall",
    "error_reply",
    "r_call",
    "r_custom",
    "r_message",
    "r_reasoning",
    "text_block",
    "thinking_block",
    "tool_use_block",
]
