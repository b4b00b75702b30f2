"""Caps on one request: messages, tools, tool calls, nesting depth (docs/limits.md, "Request
caps"). A request over a cap gets a 400 naming it before any translation, so the work done for
one request stays bounded and no JSON value is too deep to re-serialise (audit #4, #21)."""

from __future__ import annotations

from typing import Any

from ..config import RequestLimits
from ..errors import InvalidRequestError

ANTHROPIC = "anthropic"
_CALL_BLOCKS = ("tool_use", "server_tool_use")


def _over(what: str, n: int, cap: int, setting: str, param: str | None) -> InvalidRequestError:
    return InvalidRequestError(
        f"{what}: {n} is over this gateway's limit of {cap} per request "
        f"(server.request_limits.{setting})",
        param=param,
        code="request_too_large",
    )


def _tool_calls(front: str, msgs: list[Any]) -> int:
    n = 0
    for m in msgs:
        if not isinstance(m, dict):
            continue
        if front == ANTHROPIC:
            c = m.get("content")
            if isinstance(c, list):
                n += sum(1 for b in c if isinstance(b, dict) and b.get("type") in _CALL_BLOCKS)
        else:
            calls = m.get("tool_calls")
            if isinstance(calls, list):
                n += len(calls)
    return n


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels deep (iterative:
    the check itself cannot overflow the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        items = v.values() if isinstance(v, dict) else v
        if d > limit:
            return True
        for x in items:
            if isinstance(x, dict | list):
                stack.append((x, d + 1))
    return False


def check_caps(front: str, body: dict[str, Any], limits: RequestLimits) -> None:
    """Raise a 400 naming the first cap ``body`` is over (``front``: the caller's dialect)."""
    msgs = body.get("messages")
    msgs = msgs if isinstance(msgs, list) else []
    if len(msgs) > limits.max_messages:
        raise _over("messages", len(msgs), limits.max_messages, "max_messages", "messages")
    tools = body.get("tools")
    if isinstance(tools, list) and len(tools) > limits.max_tools:
        raise _over("tools", len(tools), limits.max_tools, "max_tools", "tools")
    calls = _tool_calls(front, msgs)
    if calls > limits.max_tool_calls:
        raise _over("tool calls", calls, limits.max_tool_calls, "max_tool_calls", "messages")
    if isinstance(body, dict | list) and deeper_than(body, limits.max_depth):
        raise InvalidRequestError(
            f"request body nests JSON values more than {limits.max_depth} levels deep "
            "(server.request_limits.max_depth)",
            code="request_too_large",
        )
