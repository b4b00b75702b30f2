"""Pure conversions between the SyftBox wire models and OpenAI Chat Completions.

The gateway speaks OpenAI chat to the transport (``seam.Gateway``), so a SyftBox request
becomes a chat request here and the answer becomes the seed's ``ChatResponse`` /
``CompletionResponse``. System messages are kept (the seed dropped them); a completion prompt is
one user message, served by the chat path as every completion is.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import DragomanError
from .schemas import (
    ChatResponse,
    CompletionResponse,
    FinishReason,
    GenerationOptions,
    HubChatResponse,
    Message,
    Role,
    RouterError,
    Usage,
)

#: OpenAI ``finish_reason`` -> the seed's (a tool-call stop is a stop: the seed knows no other)
FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.STOP,
    "function_call": FinishReason.STOP,
}

#: statuses a SyftBox reply cannot carry (``SyftStatus`` holds HTTP's): Anthropic's 529
STATUS_FOR_SYFT = {529: 503}


def chat_request(
    model: str, messages: list[Message], options: GenerationOptions | None
) -> dict[str, Any]:
    """The OpenAI chat request for a SyftBox chat."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": m.role.value, "content": m.content, **({"name": m.name} if m.name else {})}
            for m in messages
        ],
    }
    if options is not None:
        if options.max_tokens is not None:
            body["max_tokens"] = options.max_tokens
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.top_p is not None:
            body["top_p"] = options.top_p
        if options.stop_sequences:
            body["stop"] = options.stop_sequences
    return body


def completion_request(
    model: str, prompt: str, options: GenerationOptions | None
) -> dict[str, Any]:
    """A completion is one user message (Claude has no text-completion API any more)."""
    return chat_request(model, [Message(role=Role.USER, content=prompt)], options)


def _choice(body: dict[str, Any]) -> tuple[str, FinishReason | None]:
    choices = body.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message") or {}
    content = message.get("content")
    return (content if isinstance(content, str) else ""), FINISH_REASONS.get(
        str(first.get("finish_reason"))
    )


def usage(body: dict[str, Any]) -> Usage:
    u = body.get("usage") or {}
    prompt = int(u.get("prompt_tokens") or 0)
    completion = int(u.get("completion_tokens") or 0)
    total = int(u.get("total_tokens") or prompt + completion)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def chat_response(
    body: dict[str, Any], *, model: str, info: dict[str, Any] | None = None
) -> ChatResponse:
    """The seed's ``ChatResponse`` for an OpenAI chat completion (``model``: as requested)."""
    text, finish = _choice(body)
    return ChatResponse(
        id=uuid.uuid4(),
        model=model,
        message=Message(role=Role.ASSISTANT, content=text),
        finish_reason=finish,
        usage=usage(body),
        provider_info=info,
    )


def hub_chat_response(
    body: dict[str, Any], *, model: str, cost: float, info: dict[str, Any] | None = None
) -> HubChatResponse:
    base = chat_response(body, model=model, info=info)
    return HubChatResponse(**base.model_dump(), cost=cost)


def completion_response(
    body: dict[str, Any], *, model: str, info: dict[str, Any] | None = None
) -> CompletionResponse:
    text, finish = _choice(body)
    return CompletionResponse(
        id=uuid.uuid4(),
        model=model,
        text=text,
        finish_reason=finish,
        usage=usage(body),
        provider_info=info,
    )


def syft_status(status: int) -> int:
    """An error's status as a SyftBox reply can carry it."""
    return STATUS_FOR_SYFT.get(status, status)


def router_error(err: DragomanError) -> RouterError:
    """The legacy app's in-band error (``data`` carries ``retry_after`` when there is one)."""
    data = {"retry_after": err.retry_after} if err.retry_after is not None else None
    return RouterError(code=syft_status(err.status), message=err.message, data=data)


def hub_error(err: DragomanError) -> dict[str, Any]:
    """syft-hub's error body: it reads ``detail`` (as FastAPI writes it)."""
    out: dict[str, Any] = {"detail": err.message, "errorType": err.type}
    if err.retry_after is not None:
        out["retryAfter"] = err.retry_after
    return out
