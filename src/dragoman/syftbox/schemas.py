"""The wire models of SyftBox callers, re-declared from the seed (docs/syftbox.md, "Wire contract").

``syft-llm-router`` is not on PyPI, so its models are declared here: the legacy app's
(``routers/<app>``: ``accounting_token``, snake_case replies) and syft-hub's (``<app>``:
``transaction_token``, ``user_email``, camelCase replies, ``cost``). Inputs accept snake_case and
camelCase alike, as the seed's ``SchemaBase`` did.

No ``from __future__ import annotations`` here: syft-event reads the handlers' type hints to
publish ``rpc.schema.json``, and these models must resolve at run time.
"""

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field


def to_camel(name: str) -> str:
    """``finish_reason`` -> ``finishReason`` (the seed's alias generator)."""
    first, *rest = name.split("_")
    return first + "".join(w.title() for w in rest)


class SchemaBase(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, loc_by_alias=False)


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"


class Message(SchemaBase):
    role: Role
    content: str
    name: str | None = None


class GenerationOptions(SchemaBase):
    max_tokens: int | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    stop_sequences: list[str] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    extensions: dict[str, Any] | None = None


class Usage(SchemaBase):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class LogProbs(SchemaBase):
    token_logprobs: dict[str, float]


# -- requests ---------------------------------------------------------------------------------


class ChatRequest(SchemaBase):
    """Legacy ``/chat`` on a priced router: the token pays for the request."""

    model: str
    messages: list[Message]
    options: GenerationOptions | None = None
    accounting_token: str


class FreeChatRequest(SchemaBase):
    """Legacy ``/chat`` on a free router (``price_per_request: 0``): no token needed."""

    model: str
    messages: list[Message]
    options: GenerationOptions | None = None
    accounting_token: str | None = None


class CompletionRequest(SchemaBase):
    model: str
    prompt: str
    options: GenerationOptions | None = None


class HubChatRequest(SchemaBase):
    """syft-hub's ``/chat``: the payer is ``user_email``; the token is needed when priced."""

    user_email: EmailStr
    model: str
    messages: list[Message]
    options: GenerationOptions | None = None
    transaction_token: str | None = None


# -- replies ----------------------------------------------------------------------------------


class ChatResponse(SchemaBase):
    id: uuid.UUID
    model: str
    message: Message
    finish_reason: FinishReason | None = None
    usage: Usage
    provider_info: dict[str, Any] | None = None
    logprobs: LogProbs | None = None


class HubChatResponse(ChatResponse):
    """syft-hub's reply adds what the request cost."""

    cost: float = 0.0


class CompletionResponse(SchemaBase):
    id: uuid.UUID
    model: str
    text: str
    finish_reason: FinishReason | None = None
    usage: Usage
    provider_info: dict[str, Any] | None = None
    logprobs: LogProbs | None = None


class RouterError(BaseModel):
    """The legacy app's error, answered in-band (SyftStatus 200), as the seed did."""

    code: int
    message: str
    data: dict[str, Any] | None = None


class HealthResponse(SchemaBase):
    status: str
    project_name: str
    services: dict[str, str]
