"""OpenAI Chat Completions dialect: error body, request checks, ids."""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import DragomanError, InvalidRequestError

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}

# Anthropic error type -> OpenAI error type (protocols.md §7.11)
_TYPE = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "billing_error": "insufficient_quota",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "api_error": "server_error",
    "overloaded_error": "server_error",
    "timeout_error": "timeout",
}
_CODE = {
    "authentication_error": "invalid_api_key",
    "not_found_error": "model_not_found",
    "billing_error": "budget_exceeded",
    "rate_limit_error": "rate_limit_exceeded",
    "overloaded_error": "overloaded",
    "request_too_large": "request_too_large",
}

#: status an OpenAI client gets for an error whose Anthropic status has no OpenAI counterpart
OPENAI_STATUS = {529: 503}


def error_body(err: DragomanError) -> dict[str, Any]:
    return {
        "error": {
            "message": err.message,
            "type": _TYPE.get(err.type, "server_error"),
            "param": err.param,
            "code": err.code or _CODE.get(err.type),
        }
    }


def status_for(err: DragomanError) -> int:
    return OPENAI_STATUS.get(err.status, err.status)


def new_completion_id(prefix: str = "chatcmpl-") -> str:
    return prefix + secrets.token_hex(12)


def validate_chat_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: Field required", param="model")
    msgs = body.get("messages")
    if msgs is None:
        raise InvalidRequestError("messages: Field required", param="messages")
    if not isinstance(msgs, list) or not msgs:
        raise InvalidRequestError("messages: Input should be a non-empty list", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise InvalidRequestError(f"messages[{i}]: Input should be an object")
        role = m.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role: Input should be 'system', 'developer', 'user', "
                f"'assistant' or 'tool' (got {role!r})",
                param=f"messages[{i}].role",
            )
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise InvalidRequestError(
                f"messages[{i}].tool_call_id: Field required", param=f"messages[{i}].tool_call_id"
            )
    for k in ("max_tokens", "max_completion_tokens", "n"):
        v = body.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise InvalidRequestError(f"{k}: Input should be a valid integer", param=k)
    if body.get("stream") not in (None, True, False):
        raise InvalidRequestError("stream: Input should be a valid boolean", param="stream")


def validate_completion_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body.get("model"):
        raise InvalidRequestError("model: Field required", param="model")
    p = body.get("prompt")
    if p is None:
        raise InvalidRequestError("prompt: Field required", param="prompt")
    if not isinstance(p, str | list):
        raise InvalidRequestError("prompt: Input should be a string or a list", param="prompt")
