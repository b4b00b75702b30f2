"""Anthropic Messages dialect: error envelope, request checks, ids."""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import DragomanError, InvalidRequestError

ROLES = {"user", "assistant", "system"}
#: non-standard roles Claude Code has been seen sending; read as user turns (docs/protocols.md §1.3)
LENIENT_ROLES = {"ctx", "msg"}


def error_body(err: DragomanError, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": err.type, "message": err.message}}
    if request_id:
        body["request_id"] = request_id
    return body


def error_event(err: DragomanError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": err.type, "message": err.message}}


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18).replace("-", "A").replace("_", "b")


def validate_messages_request(body: Any, *, count_tokens: bool = False) -> None:
    """Reject what the real API rejects with a 400 naming the field, in its words, before any
    backend is chosen (the same 400 on every path); accept everything else."""
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: Field required", param="model")
    if not count_tokens:
        mt = body.get("max_tokens")
        if mt is None:
            raise InvalidRequestError("max_tokens: Field required", param="max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 0:
            raise InvalidRequestError(
                "max_tokens: Input should be a valid non-negative integer", param="max_tokens"
            )
    msgs = body.get("messages")
    if msgs is None:
        raise InvalidRequestError("messages: Field required", param="messages")
    if not isinstance(msgs, list):
        raise InvalidRequestError("messages: Input should be a valid list", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise InvalidRequestError(f"messages.{i}: Input should be an object")
        for key in ("role", "content"):
            if key not in m:
                raise InvalidRequestError(
                    f"messages.{i}.{key}: Field required", param=f"messages.{i}.{key}"
                )
        role = m["role"]
        if not isinstance(role, str) or (role not in ROLES and role not in LENIENT_ROLES):
            raise InvalidRequestError(
                f"messages.{i}.role: Input should be 'user' or 'assistant'",
                param=f"messages.{i}.role",
            )
        content = m["content"]
        if not isinstance(content, str | list):
            raise InvalidRequestError(
                f"messages.{i}.content: Input should be a valid string or list of content blocks",
                param=f"messages.{i}.content",
            )
        if isinstance(content, list):
            for j, b in enumerate(content):
                if not isinstance(b, dict) or not isinstance(b.get("type"), str):
                    raise InvalidRequestError(
                        f"messages.{i}.content.{j}: content block needs a 'type'",
                        param=f"messages.{i}.content.{j}",
                    )
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidRequestError("system: Input should be a string or a list of text blocks")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequestError("tools: Input should be a valid list", param="tools")
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise InvalidRequestError(f"tools.{i}.name: Field required", param=f"tools.{i}")
    if body.get("stream") not in (None, True, False):
        raise InvalidRequestError("stream: Input should be a valid boolean", param="stream")
