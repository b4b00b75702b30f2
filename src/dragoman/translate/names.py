"""Deterministic name/id transforms and synthetic thinking signatures (docs/protocols.md §7.12).

Everything here is pure and stateless: the same input always gives the same output, so tool
names and ids survive a round trip through the client without the gateway remembering anything.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")

#: prefix of every signature we mint; real Anthropic signatures are opaque base64 and never
#: start with this
SIGNATURE_PREFIX = "dragoman.sig."


def shorten_tool_name(name: str, limit: int = 64) -> str:
    """Name usable as an OpenAI function name: charset ``[a-zA-Z0-9_-]``, at most ``limit`` chars.

    Names that already comply come back unchanged; longer ones become
    ``prefix[:55] + "_" + sha256(name)[:8]`` (LiteLLM's scheme, deterministic).
    """
    clean = name if _VALID_NAME.match(name) else _INVALID_CHARS.sub("_", name)
    if not clean:
        clean = "_"
    if len(clean) <= limit and clean == name:
        return name
    if len(clean) + 9 <= limit:
        # charset changed: append a short hash so distinct names cannot collide
        return clean + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = max(limit - 9, 1)
    return clean[:keep] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]


def sanitize_tool_id(id: str | None) -> str:
    """A tool-use id matching ``^[a-zA-Z0-9_-]+$`` (invalid chars -> ``_``); mint one if missing."""
    if not id:
        return "toolu_" + secrets.token_hex(12)
    if _VALID_NAME.match(id):
        return id
    return _INVALID_CHARS.sub("_", id)


def synthetic_signature(text: str) -> str:
    """A recognisable signature for thinking that did not come from Anthropic."""
    return SIGNATURE_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:24]


def signature_from_digest(hexdigest: str) -> str:
    """Same as :func:`synthetic_signature` for a sha256 hexdigest computed incrementally."""
    return SIGNATURE_PREFIX + hexdigest[:24]


def is_synthetic_signature(sig: object) -> bool:
    return isinstance(sig, str) and sig.startswith(SIGNATURE_PREFIX)


def _has_synthetic(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for b in content:
        if (
            isinstance(b, dict)
            and b.get("type") == "thinking"
            and is_synthetic_signature(b.get("signature"))
        ):
            return True
    return False


def _opens_with_thinking(msg: Any) -> bool:
    content = msg.get("content") if isinstance(msg, dict) else None
    return (
        isinstance(content, list)
        and bool(content)
        and isinstance(content[0], dict)
        and content[0].get("type") in ("thinking", "redacted_thinking")
    )


def _has_tool_result(msg: Any) -> bool:
    content = msg.get("content") if isinstance(msg, dict) else None
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def loop_lacks_thinking(messages: list[Any]) -> bool:
    """The request ends inside a tool loop whose opening assistant message does not start with
    a thinking block: the real API rejects that with thinking on (docs/translation.md)."""
    if not messages or not isinstance(messages[-1], dict):
        return False
    if messages[-1].get("role") != "user" or not _has_tool_result(messages[-1]):
        return False
    start = 0
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, dict) and m.get("role") == "user" and not _has_tool_result(m):
            start = i + 1
            break
    for m in messages[start:]:
        if isinstance(m, dict) and m.get("role") == "assistant":
            return not _opens_with_thinking(m)
    return False


def strip_synthetic_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """Remove thinking blocks we signed ourselves before a request goes to real Anthropic.

    Returns ``body`` itself (no copy) when there is nothing to strip. Otherwise returns a shallow
    copy with new ``messages``; assistant messages left empty are dropped, and if that leaves an
    ongoing tool loop without the thinking block that must open it while thinking is on,
    ``thinking`` is removed (the real API would reject the request; turns before the loop need
    no thinking, so a conversation that merely began elsewhere keeps its thinking).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    hit = False
    for m in messages:
        if (
            isinstance(m, dict)
            and m.get("role") == "assistant"
            and _has_synthetic(m.get("content"))
        ):
            hit = True
            break
    if not hit:
        return body
    new_messages: list[Any] = []
    for m in messages:
        if not (
            isinstance(m, dict) and m.get("role") == "assistant" and _has_synthetic(m["content"])
        ):
            new_messages.append(m)
            continue
        kept = [
            b
            for b in m["content"]
            if not (
                isinstance(b, dict)
                and b.get("type") == "thinking"
                and is_synthetic_signature(b.get("signature"))
            )
        ]
        if kept:
            nm = dict(m)
            nm["content"] = kept
            new_messages.append(nm)
    out = dict(body)
    out["messages"] = new_messages
    thinking = body.get("thinking")
    if (
        isinstance(thinking, dict)
        and thinking.get("type") in ("enabled", "adaptive")
        and loop_lacks_thinking(new_messages)
    ):
        del out["thinking"]
    return out
