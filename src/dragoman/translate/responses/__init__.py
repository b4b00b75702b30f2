"""The OpenAI Responses API over Chat Completions: pure translation, no I/O.

``responses_to_chat`` turns a ``POST /v1/responses`` body into the Chat Completions body the
OpenAI front already serves (pass-through or bridged to Anthropic); ``chat_to_response`` and
``ChatToResponsesStream`` turn the answer back. Reasoning round-trips statelessly in sealed
``encrypted_content`` through an injected :class:`Sealer` (docs/responses-integration.md).
"""

from .context import ResponsesContext
from .reasoning import THINKING_CARRIER, Reasoning, Sealer, open_reasoning, seal_reasoning
from .request import responses_to_chat
from .response import chat_to_response, chat_to_response_with_usage
from .stream import ChatToResponsesStream
from .tools import ToolIndex, ToolRef, unwrap_custom_input
from .wire import usage_from_responses, usage_to_responses

__all__ = [
    "THINKING_CARRIER",
    "ChatToResponsesStream",
    "Reasoning",
    "ResponsesContext",
    "Sealer",
    "ToolIndex",
    "ToolRef",
    "chat_to_response",
    "chat_to_response_with_usage",
    "open_reasoning",
    "responses_to_chat",
    "seal_reasoning",
    "unwrap_custom_input",
    "usage_from_responses",
    "usage_to_responses",
]
