"""OpenAI Chat Completions dialect: error body, request checks, ids."""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import DragomanError, InvalidRequestError

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}

# Anthropic error type -> OpenAI error type (docs/protocols.md §7.11)
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
            "type": err.openai_type or _TYPE.get(err.type, "server_error"),
            "param": err.param,
            "code": err.code or _CODE.get(err.type),
        }
    }


def status_for(err: DragomanError) -> int:
    return OPENAI_STATUS.get(err.status, err.status)


def new_completion_id(prefix: str = "chatcmpl-") -> str:
    return prefix + secrets.token_hex(12)


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _missing(loc: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Missing required parameter: '{loc}'.", param=loc, code="missing_required_parameter"
    )


#: roles whose messages must carry ``content`` (assistant may carry tool calls instead)
_CONTENT_REQUIRED = {"system", "developer", "user", "tool"}


def validate_chat_request(body: Any) -> None:
    """Reject what api.openai.com rejects, in its words, before any backend is chosen: the
    same 400 on every path (docs/translation.md, "Validation")."""
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: Field required", param="model")
    msgs = body.get("messages")
    if msgs is None:
        raise _missing("messages")
    if not isinstance(msgs, list) or not msgs:
        raise InvalidRequestError("messages: Input should be a non-empty list", param="messages")
    for i, m in enumerate(msgs):
        loc = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidRequestError(
                f"Invalid type for '{loc}': expected an object, but got {_jtype(m)} instead.",
                param=loc,
                code="invalid_type",
            )
        if "role" not in m:
            raise _missing(f"{loc}.role")
        role = m["role"]
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequestError(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'function', 'tool', and 'developer'.",
                param=f"{loc}.role",
                code="invalid_value",
            )
        if role in _CONTENT_REQUIRED:
            if "content" not in m:
                raise _missing(f"{loc}.content")
            if m["content"] is None:
                raise InvalidRequestError(
                    "Invalid value for 'content': expected a string, got null.",
                    param=f"messages.[{i}].content",
                )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequestError(
                f"Invalid type for '{loc}.content': expected one of a string or array of "
                f"objects, but got {_jtype(content)} instead.",
                param=f"{loc}.content",
                code="invalid_type",
            )
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise _missing(f"{loc}.tool_call_id")
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
